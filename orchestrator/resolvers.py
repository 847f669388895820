"""Targets named at injection time: ask a command, an HTTP JSON endpoint or Kubernetes which node or process
a fault hits now (the leader, the primary), under the resolver's deadline, with a bounded answer.

The answer must name exactly one declared target: a name (through `names` if given), a pid inside a
started or adopted process, or a TCP port such a process listens on. Nothing, several, garbage or no
answer in time is a ResolveError naming the resolver and what it answered; nothing is injected then.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from orchestrator.errors import BackendError, FaultError
from orchestrator.limits import RESOLVER_ANSWER_BYTES, LimitExceeded
from orchestrator.model.resolution import Resolution, excerpt
from orchestrator.model.spec import TargetResolver
from orchestrator.targets import adopted
from orchestrator.targets.local import LocalFleet

if TYPE_CHECKING:
    from orchestrator.kube.access import KubeAccess  # the kubernetes client loads only for Kubernetes resolvers

Wanted = Literal["node", "process", "either"]
"""What a fault's target may be: node.loss a node, memory.pressure a process, gc.pause, clock.skew and gc.full
either."""
READ_CHUNK = 64 * 2**10


class ResolveError(FaultError):
    """A resolver gave no usable answer: nothing, several targets, garbage, an error, or no answer in time."""


def describe(resolver: TargetResolver) -> str:
    match resolver.source:
        case "command":
            assert resolver.command is not None
            what = "command " + " ".join(resolver.command)
        case "http":
            what = f"http {resolver.url}" + (f" {resolver.pointer}" if resolver.pointer else "")
        case "lease":
            what = f"kubernetes lease {resolver.namespace + '/' if resolver.namespace else ''}{resolver.lease} holder"
        case _:
            where = f" in {resolver.namespace}" if resolver.namespace else ""
            what = f"kubernetes pod matching {resolver.label_selector}{where}"
    return what if resolver.answer == "name" else f"{what} (a {resolver.answer})"


async def resolve(
    resolver: TargetResolver, fleet: LocalFleet, wanted: Wanted, folder: Path, kube: KubeAccess | None
) -> Resolution:
    """Ask the resolver now and map its one answer to a declared target; ResolveError otherwise.

    `kube`: the run's cluster access, for a Lease or label selector resolver; a command runs in `folder`."""
    source = describe(resolver)
    at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    started = time.monotonic()
    try:
        async with asyncio.timeout(resolver.timeout):
            answers, raw = await _ask(resolver, folder, kube)
    except TimeoutError as e:
        raise ResolveError(f"{source}: no answer within {resolver.timeout:g}s") from e
    except ResolveError:
        raise
    except (BackendError, LimitExceeded, OSError) as e:
        raise ResolveError(f"{source}: {e}") from e
    elapsed = time.monotonic() - started
    if not answers:
        raise ResolveError(f"{source}: answered nothing ({raw!r})" if raw else f"{source}: answered nothing")
    if len(answers) > 1:
        raise ResolveError(f"{source}: answered several targets ({', '.join(map(repr, answers[:10]))}), not one")
    target = _target_of(answers[0], resolver, fleet, wanted, source)
    return Resolution(source, excerpt(raw), target, at, round(elapsed, 6))


async def _ask(resolver: TargetResolver, folder: Path, kube: KubeAccess | None) -> tuple[list[str], str]:
    """The answers (words), and the raw answer for the record."""
    match resolver.source:
        case "command":
            assert resolver.command is not None
            raw = await run_command(resolver.command, folder)
            return raw.split(), raw.strip()
        case "http":
            assert resolver.url is not None
            value = pointed(await _get_json(resolver.url), resolver.pointer, resolver.url)
            return _words(value, resolver.url), json.dumps(value)
        case _:
            from orchestrator.kube.resolving import lease_holder, matching_pods  # only for drills that use them

            if resolver.lease is not None:
                holder = await lease_holder(kube, resolver.lease, resolver.namespace)
                return ([holder] if holder else []), holder or ""
            assert resolver.label_selector is not None
            pods = await matching_pods(kube, resolver.label_selector, resolver.namespace)
            return pods, " ".join(pods)


async def run_command(argv: list[str], folder: Path) -> str:
    """Its stdout (bounded); a non-zero exit is an error quoting stderr. Killed with its whole session when the
    deadline cancels it."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=folder,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as e:
        raise ResolveError(f"command {argv[0]}: cannot start: {e}") from e
    try:
        assert proc.stdout is not None and proc.stderr is not None
        out, err = await asyncio.gather(_bounded(proc.stdout, argv[0]), _bounded(proc.stderr, argv[0]))
        code = await proc.wait()
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    if code != 0:
        why = excerpt(err.decode(errors="replace").strip()) or "no output on stderr"
        raise ResolveError(f"command {argv[0]} exited with {code}: {why}")
    return out.decode(errors="replace")


async def _bounded(stream: asyncio.StreamReader, what: str) -> bytes:
    data = bytearray()
    while chunk := await stream.read(READ_CHUNK):
        data += chunk
        RESOLVER_ANSWER_BYTES.check(len(data), f"the output of {what}")
    return bytes(data)


async def _get_json(url: str) -> Any:
    """GET, no redirects, within the resolver's deadline (the caller's); the body bounded."""
    import aiohttp

    from orchestrator.bounded_io import read_answer

    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, allow_redirects=False) as response,
        ):
            body = await read_answer(response, RESOLVER_ANSWER_BYTES, url)
            if response.status != 200:
                raise ResolveError(f"{url}: HTTP {response.status}: {excerpt(body.decode(errors='replace'))!r}")
    except aiohttp.ClientError as e:
        raise ResolveError(f"{url}: {e}") from e
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as e:
        raise ResolveError(f"{url}: answer is not JSON ({excerpt(body.decode(errors='replace'))!r})") from e


def pointed(document: Any, pointer: str, where: str) -> Any:
    """The value at an RFC 6901 JSON pointer; ResolveError naming the first part that is not there."""
    value = document
    for part in pointer.split("/")[1:] if pointer else []:
        key = part.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            raise ResolveError(f"{where}: the answer has nothing at {pointer} (no {key!r})")
    return value


def _words(value: Any, where: str) -> list[str]:
    """A string or number is one answer, a list of them several, null none; anything else is garbage."""
    if value is None:
        return []
    if isinstance(value, list):
        return [w for item in value for w in _words(item, where)]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ResolveError(f"{where}: expected a name, pid or port, got {excerpt(json.dumps(value))}")
    return str(value).split() if isinstance(value, str) else [str(value)]


def _target_of(answer: str, resolver: TargetResolver, fleet: LocalFleet, wanted: Wanted, source: str) -> str:
    """The declared node or process the answer names."""
    if resolver.answer == "name":
        name = resolver.names.get(answer, answer)
        if name not in _names(fleet, wanted):
            known = ", ".join(sorted(_names(fleet, wanted))) or "none"
            raise ResolveError(f"{source}: answered {answer!r}, which is no declared {wanted} (known: {known})")
        return name
    if not answer.isdigit():
        raise ResolveError(f"{source}: answered {answer!r}, which is not a {resolver.answer}")
    number = int(answer)
    if resolver.answer == "port":
        if not 1 <= number <= 65535:
            raise ResolveError(f"{source}: answered {answer!r}, which is not a TCP port")
        pids = adopted.listeners(number)
        if not pids:
            raise ResolveError(f"{source}: answered port {number}, on which nothing listens")
    else:
        pids = {number}
    owners = {owner for pid in pids if (owner := _owner(pid, fleet, wanted)) is not None}
    if len(owners) != 1:
        what = "no declared" if not owners else f"several ({', '.join(sorted(owners))})"
        raise ResolveError(
            f"{source}: answered {answer!r}: pid {', '.join(map(str, sorted(pids)))} is in {what} {wanted}"
        )
    return owners.pop()


def _names(fleet: LocalFleet, wanted: Wanted) -> set[str]:
    processes = set(fleet.processes) | set(fleet.adopted)
    return {"node": set(fleet.nodes), "process": processes, "either": processes | set(fleet.nodes)}[wanted]


def _owner(pid: int, fleet: LocalFleet, wanted: Wanted) -> str | None:
    """The process holding `pid` (a member of a started process's group, or of an adopted one's tree), or its
    node when a node is wanted; None when no declared target holds it, or several nodes do."""
    process = next((p.spec.name for p in fleet.processes.values() if p.running and pid in p.group_pids()), None)
    for candidate in fleet.adopted.values() if process is None else ():
        with contextlib.suppress(adopted.AdoptError):
            if pid in {who.pid for who in candidate.find()}:
                process = candidate.spec.name
                break
    if process is None or wanted != "node":
        return process
    nodes = [n for n in fleet.nodes if process in fleet.node_members(n)]
    return nodes[0] if len(nodes) == 1 else None
