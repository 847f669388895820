"""An informer-like cache: one list, then a watch, per (cluster, kind, namespace), shared by every probe.

Probes sample at 10 Hz or more; asking the API server each time would cost one request per
sample per probe. Instead one worker thread per cache lists the objects, then watches from the
list's resourceVersion (with a server-side timeout, so a silent connection cannot last), applies
each event to an in-memory copy, and re-lists when the watch expires (410 Gone) or breaks.
`snapshot()` hands the asyncio side an immutable copy without any API call.

A probe must never pass on stale data: the snapshot says when the server last showed a sign of
life (a list, an event, a watch that ended on time) and whether the last list/watch failed, and
`problem()` turns "not synced", "failing" or "older than `stale_after`" into an error string.

Caches are shared through `acquire`/`release` with a reference count; the last release stops the
thread (it shuts down the socket of the watch in progress, so stopping takes milliseconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError, MaxRetryError

from orchestrator.errors import DrillError
from orchestrator.kube.access import KubeConnection, endpoint, read_answer
from orchestrator.limits import KUBE_LIST_ITEMS, KUBE_LIST_PAGE, KUBE_WATCH_EVENT_BYTES, check_answer

Kind = Literal["Deployment", "StatefulSet", "Pod", "Node"]
Obj = Mapping[str, Any]

WATCH_TIMEOUT = 5.0
"""Server-side timeout of one watch request; a healthy watch proves the server alive at least this often."""
READ_GRACE = 5.0
"""Extra client read timeout beyond the watch timeout before a silent connection counts as broken."""
RETRY_MIN, RETRY_MAX = 0.2, 2.0
"""Back-off between failed lists: fast enough to see the server come back within a sampling second."""
READ_CHUNK = 1 << 16
"""Most bytes of a watch answer read at once."""
STOP_TIMEOUT = 3.0
"""How long `release` waits for the worker thread; a list blocked in connect ends by its own timeout."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    objects: Mapping[str, Obj]
    """Objects by name (namespace-scoped kinds: within the cache's namespace)."""
    synced: bool
    """A list succeeded and no list or watch has failed since."""
    error: str | None
    """Why the last list or watch failed, until a list succeeds again."""
    heard_at: float | None
    """time.monotonic() of the server's last sign of life."""


@dataclass(frozen=True, slots=True)
class CacheStats:
    lists: int
    watches: int
    events: int


class _Expired(Exception):
    """The watch's resourceVersion is too old (410 Gone): re-list."""


class WatchCache:
    """The objects of one kind in one namespace (or cluster-wide for Node), kept current by a watch."""

    def __init__(
        self,
        conn: KubeConnection,
        kind: Kind,
        namespace: str | None,
        watch_timeout: float = WATCH_TIMEOUT,
    ) -> None:
        if kind != "Node" and namespace is None:
            raise ValueError(f"{kind} caches need a namespace")
        self.kind = kind
        self.namespace = None if kind == "Node" else namespace
        self.watch_timeout = watch_timeout
        self.stale_after = 2 * watch_timeout
        self._conn = conn
        self._list: Callable[..., Any] = _unset
        self._lock = threading.Lock()
        self._objects: dict[str, Obj] = {}
        self._version = 0
        self._published: tuple[int, Mapping[str, Obj]] = (0, MappingProxyType({}))
        self._synced = False
        self._error: str | None = None
        self._heard_at: float | None = None
        self._stats = CacheStats(0, 0, 0)
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._response: Any = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{self.describe()}", daemon=True)
        self.refs = 0

    def describe(self) -> str:
        return f"{self.kind}s in {self.namespace}" if self.namespace else f"{self.kind}s"

    # --- asyncio side ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def snapshot(self) -> Snapshot:
        """The current state; the object map is copied once per change, not once per read."""
        with self._lock:
            if self._published[0] != self._version:
                self._published = (self._version, MappingProxyType(dict(self._objects)))
            return Snapshot(self._published[1], self._synced, self._error, self._heard_at)

    def stats(self) -> CacheStats:
        with self._lock:
            return self._stats

    def problem(self, snap: Snapshot, now: float) -> str | None:
        """Why `snap` must not be trusted, or None."""
        where = f"watch of {self.describe()} at {self._conn.server}"
        if snap.error is not None:
            return f"{where}: {snap.error}"
        if not snap.synced or snap.heard_at is None:
            return f"{where}: not synced yet"
        age = now - snap.heard_at
        if age > self.stale_after:
            return f"{where}: stale, no word from the API server for {age:.1f}s (bound {self.stale_after:g}s)"
        return None

    async def wait_settled(self) -> None:
        """Wait until the first list succeeded or failed (the caller bounds it with `asyncio.timeout`)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._synced or self._error is not None:
                return
            self._waiters.append((loop, future))
        try:
            await future
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._waiters.remove((loop, future))

    def stop(self) -> None:
        """Ask the thread to end and unblock its read (thread-safe, idempotent)."""
        self._stopping.set()
        with self._lock:
            response = self._response
        if response is not None:
            with contextlib.suppress(Exception):  # already closed or released: nothing to unblock
                response.shutdown()

    def join(self, timeout: float) -> bool:
        """Wait for the worker thread; True when it has ended."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    # --- worker thread --------------------------------------------------------------------------

    def _run(self) -> None:
        # Here, not in __init__: the first use of an API class imports its module (half a second), off the loop.
        self._list = _list_function(self._conn.api, self.kind, self.namespace)
        delay = RETRY_MIN
        while not self._stopping.is_set():
            try:
                version = self._relist()
                delay = RETRY_MIN
                while not self._stopping.is_set():
                    started = time.monotonic()
                    version = self._watch(version)
                    if time.monotonic() - started < RETRY_MIN:  # a server ending watches at once: no busy loop
                        self._stopping.wait(RETRY_MIN)
            except _Expired:
                continue
            # KeyError and below: a malformed answer; DrillError: an answer over its bound.
            except (ApiException, HTTPError, OSError, DrillError, ValueError, KeyError, TypeError, RecursionError) as e:
                if self._stopping.is_set():
                    break
                self._fail(_describe(e))
                self._stopping.wait(delay)
                delay = min(delay * 2, RETRY_MAX)

    def _relist(self) -> str:
        """Every object, a page of KUBE_LIST_PAGE at a time (one consistent snapshot through `continue`)."""
        self._count(lists=1)
        objects: dict[str, Obj] = {}
        token: str | None = None
        while True:
            response = self._list(
                limit=KUBE_LIST_PAGE,
                _continue=token,
                _preload_content=False,
                _request_timeout=self._conn.request_timeout,
            )
            items, token, version = list_page(json.loads(self._read_all(response)))
            for item in items:
                objects[item["metadata"]["name"]] = item
                check_answer(KUBE_LIST_ITEMS, len(objects), self._where())
            if token is None:
                break
            if self._stopping.is_set():
                return version  # a part of the list: never published as if it were all of it
        with self._lock:
            self._objects = objects
            self._version += 1
            self._synced = True
            self._error = None
            self._heard_at = time.monotonic()
            self._wake()
        return version

    def _watch(self, version: str) -> str:
        """One watch request from `version`; returns the last resourceVersion seen when it ends on time."""
        self._count(watches=1)
        response = self._list(
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=max(1, round(self.watch_timeout)),
            _preload_content=False,
            _request_timeout=(self._conn.request_timeout, self.watch_timeout + READ_GRACE),
        )
        with self._lock:
            self._response = response
        try:
            if self._stopping.is_set():
                return version
            for line in event_lines(response, endpoint(response, self._conn.server)):
                version = self._apply(json.loads(line), version)
        finally:
            with self._lock:
                self._response = None
            response.close()
        if not self._stopping.is_set():
            with self._lock:
                self._heard_at = time.monotonic()
        return version

    def _apply(self, event: Any, version: str) -> str:
        """One decoded watch event; ValueError for one shaped otherwise (the worker then re-lists)."""
        if not isinstance(event, dict) or not isinstance(obj := event.get("object") or {}, dict):
            raise ValueError("a watch event that is not an object holding an object")
        kind = event.get("type")
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Expired
            raise ValueError(f"watch error {obj.get('code')}: {obj.get('message')}")
        metadata = obj.get("metadata") or {}
        if not isinstance(metadata, dict) or (kind in ("ADDED", "MODIFIED", "DELETED") and "name" not in metadata):
            raise ValueError(f"a {kind} watch event whose object has no name")
        with self._lock:
            self._heard_at = time.monotonic()
            self._stats = CacheStats(self._stats.lists, self._stats.watches, self._stats.events + 1)
            if kind in ("ADDED", "MODIFIED"):
                self._objects[metadata["name"]] = obj
                self._version += 1
                check_answer(KUBE_LIST_ITEMS, len(self._objects), self._where())
            elif kind == "DELETED":
                self._objects.pop(metadata["name"], None)
                self._version += 1
        return str(metadata.get("resourceVersion") or version)

    def _read_all(self, response: Any) -> bytes:
        with self._lock:
            self._response = response
        try:
            return read_answer(response, endpoint(response, self._conn.server))
        finally:
            with self._lock:
                self._response = None

    def _where(self) -> str:
        return f"{self._conn.server} ({self.describe()})"

    def _fail(self, error: str) -> None:
        with self._lock:
            self._synced = False
            self._error = error
            self._wake()

    def _count(self, lists: int = 0, watches: int = 0) -> None:
        with self._lock:
            s = self._stats
            self._stats = CacheStats(s.lists + lists, s.watches + watches, s.events)

    def _wake(self) -> None:
        """Under the lock: resolve the futures of `wait_settled` on their own loops."""
        for loop, future in self._waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
                loop.call_soon_threadsafe(_resolve, future)
        self._waiters.clear()


def _unset(**kwargs: Any) -> Any:
    raise RuntimeError("the watch thread has not started")


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def event_lines(response: Any, where: str) -> Iterator[str]:
    """The newline-delimited JSON events of a watch response, each within KUBE_WATCH_EVENT_BYTES.

    Read in pieces of at most READ_CHUNK (the server's own chunks can be of any size), and only the
    event being read is held.
    """
    event = bytearray()
    for chunk in response.stream(READ_CHUNK, decode_content=False):
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            event += chunk[start:end]
            check_answer(KUBE_WATCH_EVENT_BYTES, len(event), where)
            if event.strip():
                yield event.decode("utf-8", errors="replace")
            event.clear()
            start = end + 1
        event += chunk[start:]
        check_answer(KUBE_WATCH_EVENT_BYTES, len(event), where)


def list_page(body: Any) -> tuple[list[Obj], str | None, str]:
    """The items of one page of a list answer, the `continue` token of the next page (None: last) and the
    list's resourceVersion; ValueError for anything shaped otherwise."""
    if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
        raise ValueError("a list answer without metadata")
    items = body.get("items") or []
    if not isinstance(items, list) or not all(
        isinstance(i, dict) and isinstance(i.get("metadata"), dict) and isinstance(i["metadata"].get("name"), str)
        for i in items
    ):
        raise ValueError("a list answer whose items are not named objects")
    metadata = body["metadata"]
    token = metadata.get("continue") or None
    return items, None if token is None else str(token), str(metadata["resourceVersion"])


def _list_function(api: client.ApiClient, kind: Kind, namespace: str | None) -> Callable[..., Any]:
    if kind == "Node":
        core = client.CoreV1Api(api)
        return core.list_node
    if kind == "Pod":
        fn: Callable[..., Any] = client.CoreV1Api(api).list_namespaced_pod
    elif kind == "Deployment":
        fn = client.AppsV1Api(api).list_namespaced_deployment
    else:
        fn = client.AppsV1Api(api).list_namespaced_stateful_set

    def namespaced(**kwargs: Any) -> Any:
        return fn(namespace, **kwargs)

    return namespaced


def _describe(error: Exception) -> str:
    if isinstance(error, ApiException):
        try:
            message = json.loads(error.body or "{}").get("message") or error.reason
        except ValueError:
            message = error.reason
        return f"HTTP {error.status}: {message}"
    if isinstance(error, MaxRetryError) and error.reason is not None:
        return _describe(error.reason)  # the cause, not urllib3's wrapper around it
    return f"{type(error).__name__}: {error}"


# --- sharing ------------------------------------------------------------------------------------

_Key = tuple[str | None, str, str, Kind, str | None]
_shared: dict[_Key, WatchCache] = {}
_shared_lock = threading.Lock()


def acquire(conn: KubeConnection, kind: Kind, namespace: str | None) -> WatchCache:
    """The cache of (cluster, kind, namespace), started on first use; pair with `release`."""
    key: _Key = (conn.kubeconfig, conn.context, conn.server, kind, None if kind == "Node" else namespace)
    with _shared_lock:
        cache = _shared.get(key)
        if cache is None:
            cache = _shared[key] = WatchCache(conn, kind, namespace)
            cache.start()
        cache.refs += 1
        return cache


async def release(cache: WatchCache) -> None:
    """Drop one reference; the last one stops the watch thread (waiting up to STOP_TIMEOUT)."""
    with _shared_lock:
        cache.refs -= 1
        if cache.refs > 0:
            return
        for key, value in list(_shared.items()):
            if value is cache:
                del _shared[key]
    cache.stop()
    await asyncio.to_thread(cache.join, STOP_TIMEOUT)
