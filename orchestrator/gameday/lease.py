"""One game day per cluster: a `coordination.k8s.io/v1` Lease, the cluster's own lock.

The lease is taken before the first drill, renewed every third of its duration and released
(holder cleared) at the end. A holder that died stops renewing, so its lease expires and the
next game day takes it over. Every write carries the resourceVersion it read: two game days
racing for the same lease cannot both win (the loser's write gets 409 Conflict).

Expiry compares the lease's renewTime with our wall clock, as `kubectl` users read it; hosts
whose clocks disagree by more than the duration would misjudge it, so keep the duration well
above any expected skew (the default, 60s, is).

All calls run in one worker thread with its own event loop (`LeaseHolder`), because the drills
run in the main thread, each in its own `asyncio.run`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import math
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from orchestrator.errors import BackendError, PreflightError
from orchestrator.kube.access import KubeAccess, KubeConnection, connect, endpoint, status_of
from orchestrator.kube.watch_cache import event_lines
from orchestrator.model.gameday import LeaseSpec

FIELD_MANAGER = "drillctl-gameday"


def new_identity(gameday: str) -> str:
    """Who holds the lease, as people read it: game day, host, process, and a nonce against pid reuse."""
    return f"{gameday}@{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def micro_time(moment: datetime) -> str:
    """RFC 3339 with exactly six fractional digits, as the API's MicroTime wants it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaseConfig:
    name: str
    namespace: str
    duration: int
    """leaseDurationSeconds."""
    identity: str

    @property
    def renew_every(self) -> float:
        return self.duration / 3


@dataclass(frozen=True)
class Holder:
    """Someone else's live lease."""

    identity: str
    expires_at: datetime


class LeaseBusy(PreflightError):
    """Another game day holds the lease (and it has not expired)."""

    def __init__(self, lease: LeaseConfig, holder: Holder) -> None:
        self.holder = holder
        super().__init__(
            f"another game day holds lease {lease.namespace}/{lease.name}: {holder.identity}, "
            f"until {holder.expires_at.isoformat(timespec='seconds')} unless renewed"
        )


def live_holder(lease: client.V1Lease, me: str, now: datetime) -> Holder | None:
    """The holder of `lease` if it is someone else and the lease has not expired; None if it is free for us."""
    spec = lease.spec
    if spec is None or not spec.holder_identity or spec.holder_identity == me:
        return None
    renewed = spec.renew_time or spec.acquire_time
    if renewed is None or spec.lease_duration_seconds is None:
        return None
    expires = renewed + timedelta(seconds=spec.lease_duration_seconds)
    return Holder(spec.holder_identity, expires) if expires > now else None


class ClusterLease:
    """The lease operations against the API server; each call under the connection's deadline."""

    def __init__(self, connection: KubeConnection, config: LeaseConfig) -> None:
        self.connection = connection
        self.config = config
        self.api = client.CoordinationV1Api(connection.api)

    async def read(self) -> client.V1Lease | None:
        try:
            return await self.connection.call(self.api.read_namespaced_lease, self.config.name, self.config.namespace)
        except BackendError as e:
            if status_of(e) == 404:
                return None
            raise

    async def try_acquire(self) -> Holder | None:
        """Take the lease if it is free, ours or expired; return the live holder otherwise."""
        cfg = self.config
        now = datetime.now(UTC)
        current = await self.read()
        if current is None:
            body = self._body(now, acquired=now, transitions=0)
            try:
                await self.connection.call(
                    self.api.create_namespaced_lease, cfg.namespace, body, field_manager=FIELD_MANAGER
                )
                return None
            except BackendError as e:
                if status_of(e) != 409:
                    raise
                current = await self.read()  # someone created it between our read and create
                if current is None:
                    raise BackendError(f"lease {cfg.namespace}/{cfg.name} appeared and vanished") from e
        holder = live_holder(current, cfg.identity, now)
        if holder is not None:
            return holder
        spec = current.spec
        ours = spec is not None and spec.holder_identity == cfg.identity
        transitions = (spec.lease_transitions or 0) if spec is not None else 0
        acquired = spec.acquire_time if ours and spec is not None and spec.acquire_time else now
        body = self._body(now, acquired=acquired, transitions=transitions if ours else transitions + 1)
        body["metadata"]["resourceVersion"] = _version(current)
        try:
            await self._replace(body)
        except BackendError as e:
            if status_of(e) != 409:
                raise
            latest = await self.read()  # lost the race: report whoever won
            winner = None if latest is None else live_holder(latest, cfg.identity, datetime.now(UTC))
            if winner is None:
                raise
            return winner
        return None

    async def renew(self) -> bool:
        """Push renewTime forward; False if the lease is no longer ours (taken over or deleted)."""
        current = await self.read()
        spec = self._our_spec(current)
        if spec is None:
            return False
        body = self._body(datetime.now(UTC), acquired=spec.acquire_time, transitions=spec.lease_transitions or 0)
        body["metadata"]["resourceVersion"] = _version(current)
        try:
            await self._replace(body)
        except BackendError as e:
            if status_of(e) == 409:  # written in between (by us or by whoever took it): read it again
                return await self.renew()
            raise
        return True

    async def release(self) -> None:
        """Clear the holder (the object stays, with its history) so the next game day need not wait."""
        current = await self.read()
        spec = self._our_spec(current)
        if spec is None:
            return
        body: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.config.name, "resourceVersion": _version(current)},
            "spec": {"leaseDurationSeconds": 1, "leaseTransitions": spec.lease_transitions or 0},
        }
        await self._replace(body)

    async def changed(self, within: float) -> None:
        """Return when the lease is modified or deleted, or after `within` seconds: a watch, not polling."""
        seconds = max(1, math.ceil(within))
        api, cfg = self.api, self.config
        request_timeout = seconds + self.connection.request_timeout

        def watch_once() -> None:
            """The watch cache's reader, not `kubernetes.watch`: each event within KUBE_WATCH_EVENT_BYTES."""
            response: Any = api.list_namespaced_lease(  # raw (urllib3) with _preload_content=False
                cfg.namespace,
                field_selector=f"metadata.name={cfg.name}",
                watch=True,
                timeout_seconds=seconds,
                _preload_content=False,
                _request_timeout=request_timeout,
            )
            try:
                for line in event_lines(response, endpoint(response, self.connection.server)):
                    event = json.loads(line)
                    if isinstance(event, dict) and event.get("type") in ("MODIFIED", "DELETED"):
                        return
            finally:
                response.close()
                response.release_conn()

        try:
            await asyncio.wait_for(asyncio.to_thread(watch_once), request_timeout + 2)
        except TimeoutError:
            return
        except (ApiException, HTTPError, OSError, ValueError, RecursionError) as e:
            raise BackendError(f"watch of lease {cfg.namespace}/{cfg.name} at {self.connection.server}: {e}") from e

    def _our_spec(self, lease: client.V1Lease | None) -> client.V1LeaseSpec | None:
        """The lease's spec while we hold it; None once it is gone or someone else's."""
        spec = None if lease is None else lease.spec
        return spec if spec is not None and spec.holder_identity == self.config.identity else None

    async def _replace(self, body: dict[str, Any]) -> None:
        """Write the whole lease; `body` carries the resourceVersion read, so a write in between is a 409."""
        await self.connection.call(
            self.api.replace_namespaced_lease,
            self.config.name,
            self.config.namespace,
            body,
            field_manager=FIELD_MANAGER,
        )

    def _body(self, now: datetime, acquired: datetime | None, transitions: int) -> dict[str, Any]:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.config.name, "labels": {"app.kubernetes.io/managed-by": "drillctl"}},
            "spec": {
                "holderIdentity": self.config.identity,
                "leaseDurationSeconds": self.config.duration,
                "acquireTime": micro_time(acquired or now),
                "renewTime": micro_time(now),
                "leaseTransitions": transitions,
            },
        }


def _version(lease: client.V1Lease | None) -> str | None:
    return None if lease is None or lease.metadata is None else lease.metadata.resource_version


class LeaseHolder:
    """Holds the lease for the length of a game day, from a worker thread of its own.

    `acquire` blocks until the lease is ours (or raises LeaseBusy / BackendError), `lost` is set
    when a renewal finds the lease gone or cannot renew before it expires, and `release` stops
    renewing and clears the holder.
    """

    def __init__(
        self, lease: ClusterLease, wait: float | None = None, on_wait: Callable[[Holder], None] | None = None
    ) -> None:
        self.lease = lease
        self.wait = wait
        """Seconds to wait for a live holder to let go; None refuses at once."""
        self.on_wait = on_wait
        """Told once (from the lease's thread), when a live holder makes us wait, who it is."""
        self.lost = threading.Event()
        self.lost_reason: str | None = None
        self._acquired: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="gameday-lease", daemon=True)

    def acquire(self) -> None:
        self._thread.start()
        budget = (self.wait or 0.0) + 4 * (self.lease.connection.request_timeout + 2)
        try:
            self._acquired.result(timeout=budget)
        except concurrent.futures.TimeoutError as e:
            self.release()
            raise BackendError(f"could not take the lease within {budget:g}s") from e

    def release(self, timeout: float = 30.0) -> None:
        """Stop renewing and clear the holder; bounded by `timeout`."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _main(self) -> None:
        asyncio.run(self._hold())

    async def _hold(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self._take()
        except BaseException as e:
            self._acquired.set_exception(e)
            return
        self._acquired.set_result(None)
        try:
            await self._renew_until_stopped(self._stop)
        finally:
            with contextlib.suppress(BackendError):  # if not, it expires by itself within its duration
                await self.lease.release()

    async def _take(self) -> None:
        deadline = None if self.wait is None else self._loop_time() + self.wait
        told = False
        while True:
            holder = await self.lease.try_acquire()
            if holder is None:
                return
            left = 0.0 if deadline is None else deadline - self._loop_time()
            if left <= 0:
                raise LeaseBusy(self.lease.config, holder)
            if not told and self.on_wait is not None:
                told = True
                self.on_wait(holder)
            until_expiry = (holder.expires_at - datetime.now(UTC)).total_seconds()
            await self.lease.changed(min(left, max(until_expiry, 0.0) + 0.5))

    async def _renew_until_stopped(self, stop: asyncio.Event) -> None:
        cfg = self.lease.config
        valid_until = self._loop_time() + cfg.duration
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), cfg.renew_every)
                return
            except TimeoutError:
                pass
            try:
                if not await self.lease.renew():
                    self._lose(f"lease {cfg.namespace}/{cfg.name} was taken over or deleted")
                    return
                valid_until = self._loop_time() + cfg.duration
            except BackendError as e:
                if self._loop_time() >= valid_until:
                    self._lose(f"could not renew lease {cfg.namespace}/{cfg.name} before it expired: {e}")
                    return

    def _lose(self, reason: str) -> None:
        self.lost_reason = reason
        self.lost.set()

    @staticmethod
    def _loop_time() -> float:
        return asyncio.get_running_loop().time()


def hold_lease(
    spec: LeaseSpec,
    gameday: str,
    kube: KubeAccess,
    namespace: str | None,
    wait: float | None,
    on_wait: Callable[[Holder], None] | None = None,
) -> LeaseHolder:
    """The game day's lease, taken (waiting up to `wait` seconds for another holder, `on_wait` told who once;
    None: not at all) and renewed until `release`. Raises LeaseBusy, or PreflightError/BackendError when the
    cluster cannot be used."""
    config = LeaseConfig(
        name=spec.name,
        namespace=namespace or spec.namespace,
        duration=int(spec.duration),
        identity=new_identity(gameday),
    )
    holder = LeaseHolder(ClusterLease(connect(kube), config), wait, on_wait)
    holder.acquire()
    return holder
