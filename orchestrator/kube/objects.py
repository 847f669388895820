"""Reading, patching and deleting API objects as the server stores them, shared by every Kubernetes driver
and by `drillctl recover --cluster`.

Objects are the API's own JSON (camelCase dicts, no client model in between), which is what undo
records and marks hold. A 404 is an answer here (the object is gone), not an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from kubernetes import client, watch
from urllib3.exceptions import HTTPError

from orchestrator.errors import BackendError, FaultError
from orchestrator.kube.access import KubeApiError, KubeConnection

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"


def shell_command(script: str) -> list[str]:
    """A container `command` that runs `script` under sh as written.

    The kubelet expands `$(VAR)` in a container's command and turns `$$` into `$` (a real node showed
    the loop's `echo $$` writing "$" as its pid); every `$` doubled comes out as the script's own.
    """
    return ["sh", "-c", script.replace("$", "$$")]


async def read_object(conn: KubeConnection, fn: Callable[..., Any], *args: Any) -> dict[str, Any] | None:
    """The object as the API server stores it, None if it is gone."""
    try:
        return await conn.call_json(fn, *args)
    except KubeApiError as e:
        if e.status == 404:
            return None
        raise


async def json_patch(
    conn: KubeConnection, fn: Callable[..., Any], name: str, namespace: str, ops: Sequence[dict[str, Any]]
) -> None:
    """A JSON patch (RFC 6902) of a namespaced object; its `test` operations make a concurrent change a 422."""
    await conn.call(fn, name, namespace, list(ops), _content_type=JSON_PATCH)


def same_uid(uid: str) -> dict[str, Any]:
    """A JSON-patch `test` that the object is still the one a record was made from."""
    return {"op": "test", "path": "/metadata/uid", "value": uid}


async def patch_pod(conn: KubeConnection, namespace: str, name: str, uid: str, ops: Sequence[dict[str, Any]]) -> None:
    """A JSON patch of the pod with that uid (a pod recreated under the same name is a 422, untouched)."""
    core = client.CoreV1Api(conn.api)
    await json_patch(conn, core.patch_namespaced_pod, name, namespace, [same_uid(uid), *ops])


async def delete_pods(conn: KubeConnection, namespace: str, names: Sequence[str], within: float) -> None:
    """Delete the pods (gone already is fine) and wait until every one has disappeared, `within` seconds each."""
    core = client.CoreV1Api(conn.api)
    for name in names:
        try:
            await conn.call(core.delete_namespaced_pod, name, namespace)
        except KubeApiError as e:
            if e.status != 404:
                raise
    await asyncio.gather(*(wait_pod_gone(conn, namespace, name, within) for name in names))


async def wait_pod_gone(conn: KubeConnection, namespace: str, name: str, within: float) -> None:
    """Wait for the pod object to disappear, on a watch bounded by `within` seconds; FaultError if it stays."""
    if not await wait_pod(conn, namespace, name, within, lambda pod: pod is None):
        raise FaultError(f"pod {namespace}/{name} still there after {within:g}s")


async def wait_pod(
    conn: KubeConnection, namespace: str, name: str, within: float, done: Callable[[dict[str, Any] | None], bool]
) -> bool:
    """Whether `done` holds for the pod as stored (None once it is gone) within `within` seconds, on a watch."""
    core = client.CoreV1Api(conn.api)
    selector = f"metadata.name={name}"
    listed = await conn.call_json(core.list_namespaced_pod, namespace, field_selector=selector)
    if done(listed["items"][0] if listed["items"] else None):
        return True

    def watch_until() -> bool:
        stream = watch.Watch()  # type: ignore[no-untyped-call]
        try:
            for event in stream.stream(  # type: ignore[no-untyped-call]
                core.list_namespaced_pod,
                namespace,
                field_selector=selector,
                resource_version=listed["metadata"]["resourceVersion"],
                timeout_seconds=max(1, int(within)),
                _request_timeout=within + 5,
            ):
                if done(None if event["type"] == "DELETED" else event["raw_object"]):
                    return True
        finally:
            stream.stop()  # type: ignore[no-untyped-call]
        return False

    try:
        return await asyncio.wait_for(asyncio.to_thread(watch_until), within + 10)
    except TimeoutError:
        return False
    except client.exceptions.ApiException as e:
        raise BackendError(f"watching pod {namespace}/{name}: {e.status} {e.reason}") from e
    except (HTTPError, OSError) as e:
        raise BackendError(f"watching pod {namespace}/{name}: {e}") from e
