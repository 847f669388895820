"""Loops that drillctl runs in ephemeral containers of a pod (gc.pause, memory.pressure), and ending them early.

An ephemeral container cannot be removed from a pod, so a loop ends by itself after its lifetime,
and drillctl ends it earlier by `pods/exec` into it: SIGTERM to the loop's pid (written at
`PID_FILE` by the loop), whose trap undoes its effect first. A run's revert and `drillctl recover
--cluster` end loops this way; the outcome says which way it ended (KWOK serves exec without
running anything, so there the stop cannot be confirmed and the loop is left to its deadline).

The loop is the ephemeral container's main process, so when it exits the runtime ends the container
and the exec with it, often before the exec can say so (a real node showed it). The exec therefore
says `SIGNALLED` as soon as the signal is sent, and the container's terminated status confirms the end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from kubernetes import client
from kubernetes.stream import stream
from websocket import WebSocketException
from websocket._abnf import frame_buffer

from orchestrator.errors import BackendError
from orchestrator.kube.access import KubeConnection
from orchestrator.kube.objects import shell_command, wait_pod
from orchestrator.limits import KUBE_EXEC_OUTPUT, check_answer

PID_FILE = "/tmp/drillctl-loop.pid"
SIGNALLED = "drillctl-loop-signalled"
"""Printed by the exec once it sent SIGTERM; its absence means the exec did not run in a container."""
STOPPED = "drillctl-loop-stopped"
"""Printed by the exec if it saw the loop gone before the runtime ended the container (and it)."""
EXEC_TIMEOUT = 15.0
END_TIMEOUT = 10.0
"""How long a signalled loop may take until the pod's status says its container terminated (the kubelet
reports container ends within a second or two)."""

STOP_COMMAND = [
    "sh",
    "-c",
    f'p=$(cat {PID_FILE}) || exit 1; kill -TERM "$p" || exit 1; echo {SIGNALLED}; i=0; '
    f'while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; '
    f'kill -0 "$p" 2>/dev/null || echo {STOPPED}',
]


def container(name: str, image: str, target: str, script: str, env: Mapping[str, str]) -> dict[str, Any]:
    """An ephemeral container running `script`, sharing the process namespace of container `target`."""
    return {
        "name": name,
        "image": image,
        "targetContainerName": target,
        "command": shell_command(script),
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


async def stop_loop(conn: KubeConnection, pod: Mapping[str, Any], name: str, deadline: str) -> str:
    """End the loop of ephemeral container `name` in `pod` (as stored) early.

    Returns `stopped by exec`, `already ended`, `never added`, or `not stopped: ...; <deadline>`
    (`deadline` says when it ends by itself).
    """
    if name not in {c["name"] for c in pod["spec"].get("ephemeralContainers") or []}:
        return "never added"
    if _terminated(pod, name):
        return "already ended"
    meta = pod["metadata"]
    try:
        output = await exec_in(conn, meta["name"], meta["namespace"], name, STOP_COMMAND)
    except BackendError as e:
        return f"not stopped: exec failed ({e}); {deadline}"
    if STOPPED in output:
        return "stopped by exec"
    if SIGNALLED not in output:
        return f"not stopped: exec did not confirm (output {output.strip()[:80]!r}); {deadline}"
    if await _ends(conn, meta["name"], meta["namespace"], name):
        return "stopped by exec"
    return f"not stopped: signalled by exec, but its container still runs after {END_TIMEOUT:g}s; {deadline}"


def _terminated(pod: Mapping[str, Any], name: str) -> bool:
    statuses = {s["name"]: s for s in pod.get("status", {}).get("ephemeralContainerStatuses") or []}
    return "terminated" in statuses.get(name, {}).get("state", {})


async def _ends(conn: KubeConnection, pod: str, namespace: str, name: str) -> bool:
    """Whether ephemeral container `name` is reported terminated (or its pod gone) within END_TIMEOUT."""
    return await wait_pod(conn, namespace, pod, END_TIMEOUT, lambda found: found is None or _terminated(found, name))


class _BudgetedFrames(frame_buffer):
    """websocket-client's frame reader, refusing a frame once the frames read so far pass a byte budget.

    The kubernetes client's exec collects every frame whole (a frame of any declared length, and every
    frame already waiting, before it returns), so the bound is checked where a frame's length is read,
    before its payload is: an endless or huge output costs the budget, not its own size.
    """

    def __init__(self, replaced: frame_buffer, where: str) -> None:
        super().__init__(replaced.recv, replaced.skip_utf8_validation)
        self.where = where
        self.spent = 0

    def recv_length(self) -> None:
        super().recv_length()
        self.spent += self.length or 0
        check_answer(KUBE_EXEC_OUTPUT, self.spent, self.where)


async def exec_in(conn: KubeConnection, pod: str, namespace: str, container: str, command: list[str]) -> str:
    """Run a command in a container over the exec websocket, with a deadline; its output, within KUBE_EXEC_OUTPUT.

    `stream` swaps `call_api` on the ApiClient it is given while it runs, so it gets one of its own.
    """
    own = client.CoreV1Api(client.ApiClient(conn.api.configuration))
    where = f"{conn.server}/api/v1/namespaces/{namespace}/pods/{pod}/exec"

    def run() -> str:
        ws = stream(
            own.connect_get_namespaced_pod_exec,
            pod,
            namespace,
            container=container,
            command=command,
            stderr=True,
            stdout=True,
            stdin=False,
            tty=False,
            _preload_content=False,
        )
        try:
            ws.sock.frame_buffer = _BudgetedFrames(ws.sock.frame_buffer, where)
            ws.run_forever(timeout=EXEC_TIMEOUT)
            return str(ws.read_all())
        finally:
            ws.close()

    try:
        return await asyncio.wait_for(asyncio.to_thread(run), EXEC_TIMEOUT + 5)
    except TimeoutError as e:
        raise BackendError(f"no answer in {EXEC_TIMEOUT + 5:g}s") from e
    except (client.exceptions.ApiException, WebSocketException, OSError, ValueError) as e:
        raise BackendError(str(e)[:200]) from e
    finally:
        own.api_client.close()
