"""The cluster's freeze watched from a worker thread while a game day (or a lone run of a Kubernetes drill) runs:
a watch, not polling.

Drills run in the main thread, each in its own `asyncio.run`, so the watch lives in a thread of its own (as the
Lease does). Each watch request names the ConfigMap by a field selector (what a Role limited to that name may
list and watch) and carries no resourceVersion, so it begins with the object as it is, if it exists: a freeze
made while a watch was being set up (first, or again) is not missed. Once a freeze is seen, `on_freeze` is called
once (the game day or the run then tells its live drill through the control FIFO); the thread ends.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from typing import Any

import structlog
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from orchestrator.errors import DrillError
from orchestrator.kube.freeze import FREEZE_CONFIGMAP, ClusterFreeze, freeze_of
from orchestrator.kube.watch_cache import READ_GRACE, RETRY_MAX, RETRY_MIN, event_lines
from orchestrator.model.freeze import Freeze

WATCH_SECONDS = 30
"""Server-side timeout of one watch request; a new one follows at once."""
STOP_TIMEOUT = 3.0


class FreezeWatch:
    def __init__(self, freeze: ClusterFreeze, on_freeze: Callable[[Freeze], None]) -> None:
        self.freeze = freeze
        self.on_freeze = on_freeze
        self.seen: Freeze | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._response: Any = None
        self._thread = threading.Thread(target=self._run, name="freeze-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the watch (its socket is shut down, so this takes milliseconds) and wait for the thread, bounded."""
        self._stopping.set()
        with self._lock:
            response = self._response
        if response is not None:
            with contextlib.suppress(Exception):  # already closed: nothing to unblock
                response.shutdown()
        if self._thread.ident is not None:
            self._thread.join(STOP_TIMEOUT)

    def _run(self) -> None:
        delay = RETRY_MIN
        while not self._stopping.is_set():
            try:
                found = self._watch_once()
                delay = RETRY_MIN
            except (ApiException, HTTPError, OSError, DrillError, ValueError, RecursionError) as e:
                if self._stopping.is_set():
                    return
                structlog.get_logger().warning("freeze_watch_failed", where=self.freeze.where, error=str(e))
                self._stopping.wait(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            if found is not None:
                self.seen = found
                self.on_freeze(found)
                return

    def _watch_once(self) -> Freeze | None:
        """One watch request; the freeze if it exists or appears, None when the request ends on time."""
        conn, cm = self.freeze.connection, self.freeze
        response: Any = cm.api.list_namespaced_config_map(  # raw (urllib3) with _preload_content=False
            cm.namespace,
            field_selector=f"metadata.name={FREEZE_CONFIGMAP}",
            watch=True,
            timeout_seconds=WATCH_SECONDS,
            _preload_content=False,
            _request_timeout=(conn.request_timeout, WATCH_SECONDS + READ_GRACE),
        )
        with self._lock:
            self._response = response
        try:
            if self._stopping.is_set():
                return None
            for line in event_lines(response, cm.where):
                event = json.loads(line)
                kind = event.get("type") if isinstance(event, dict) else None
                if kind == "ERROR":
                    raise ValueError(f"watch error: {event.get('object')}")
                if kind in ("ADDED", "MODIFIED"):
                    return freeze_of(event.get("object"), cm.where)
        finally:
            with self._lock:
                self._response = None
            response.close()
            response.release_conn()
        return None
