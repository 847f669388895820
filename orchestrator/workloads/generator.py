"""The workload generator: open-loop operations through a client, through every phase, and the read-back after.

Operation k is due at t0 + schedule.at(k) and starts then whatever earlier ones are doing (`sampling.open_loop`,
the samplers' loop), with at most `max_in_flight` running; one that cannot start is recorded as failed.
Latency runs from the intended start, so a slow system shows as slow operations, never as fewer of them
(no coordinated omission). Kinds and keys come from a generator seeded by the drill's seed.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable

from orchestrator.model.operations import (
    ABSENT,
    FAIL,
    FOREIGN,
    MORE,
    NO_VALUE,
    OK,
    READ,
    UNKNOWN,
    VERIFY,
    WRITE,
    Operation,
    OperationLog,
)
from orchestrator.model.workload import WorkloadSpec
from orchestrator.operation_store import OperationStream
from orchestrator.sampling import InFlight, open_loop
from orchestrator.workloads.base import Outcome, Result, WorkloadClient
from orchestrator.workloads.schedule import RateSchedule

OUTCOME_IDS = {"fail": FAIL, "ok": OK, "unknown": UNKNOWN}
GRACE = 0.5
"""Past its timeout, how long an operation's client may take before the generator stops waiting for it."""
MAX_VALUE = 2**31 - 1


def value_id(text: str) -> int:
    """A value read back as the index of the write that put it there; FOREIGN if this workload never wrote it."""
    if not text.isdigit() or len(text) > 10:
        return FOREIGN
    value = int(text)
    return value if value <= MAX_VALUE else FOREIGN


class History:
    """The operation log of a run, streamed to operations.bin if given a stream; what both phases append to."""

    def __init__(self, log: OperationLog, stream: OperationStream | None = None) -> None:
        self.log = log
        self.stream = stream

    def add(
        self, kind: int, result: Result, phase: int, key: int, value: int, at: float, latency: float, lag: float
    ) -> None:
        log = self.log
        error = log.error_id(result.error)
        outcome = OUTCOME_IDS.get(result.outcome, UNKNOWN if kind == WRITE else FAIL)
        if kind == WRITE:
            log.append(kind, outcome, phase, key, value, at, latency, lag, error)
        elif outcome != OK:
            log.append(kind, outcome, phase, key, NO_VALUE, at, latency, lag, error)
        elif not result.values:
            log.append(kind, outcome, phase, key, ABSENT, at, latency, lag, error)
        else:
            for i, text in enumerate(result.values):
                log.append(kind if i == 0 else MORE, outcome, phase, key, value_id(text), at, latency, lag, error)
        if self.stream is not None:
            self.stream.landed()


class Workload:
    def __init__(
        self,
        spec: WorkloadSpec,
        client: WorkloadClient,
        history: History,
        t0: float,
        phase: Callable[[], str],
        key_prefix: str,
        seed: int | None,
    ) -> None:
        self.spec = spec
        self.client = client
        self.history = history
        self.t0 = t0
        self.phase = phase
        self.prefix = key_prefix
        self.schedule = RateSchedule(spec)
        self.written: set[int] = set()
        """Keys written to (whatever the outcome): what the verification reads back."""
        self._random = random.Random(seed)
        self._in_flight = InFlight(spec.in_flight_limit())
        self.loop = asyncio.get_running_loop()

    async def run(self) -> None:
        """Operate until cancelled; operations still running then get up to their timeout to land."""
        try:
            await open_loop(self.schedule, self.t0, self._start)
        finally:
            await self._in_flight.drain(self.spec.timeout + GRACE)

    def _start(self, k: int, at: float, lag: float) -> None:
        kind = READ if self._random.random() < self.spec.reads else WRITE
        key = self._random.randrange(self.spec.keys)
        phase = self.history.log.phase_id(self.phase())
        if kind == WRITE:
            self.written.add(key)
        if self._in_flight.full():
            error = f"not started: {len(self._in_flight)} operations already in flight"
            self.history.add(kind, Result("fail", error=error), phase, key, k, at, math.nan, math.nan)
            return
        self._in_flight.start(self._invoke(kind, key, k, at, lag, phase))

    async def _invoke(self, kind: int, key: int, k: int, at: float, lag: float, phase: int) -> None:
        write = kind == WRITE
        operation = Operation("write" if write else "read", f"{self.prefix}{key}", str(k) if write else None)
        result = await invoke(self.client, operation, self.spec.timeout)
        latency = self.loop.time() - self.t0 - at
        self.history.add(kind, result, phase, key, k, at, latency, lag)


async def invoke(client: WorkloadClient, operation: Operation, within: float) -> Result:
    """One operation, whatever the client does: past `within` seconds (and a grace), or raising, it is unknown
    (a write) or failed (a read)."""
    unsure: Outcome = "unknown" if operation.kind == "write" else "fail"
    try:
        async with asyncio.timeout(within + GRACE):
            return await client.invoke(operation)
    except TimeoutError:
        return Result(unsure, error=f"the client did not answer within {within + GRACE:g}s")
    except Exception as e:  # a client bug must cost one operation, not the workload
        return Result(unsure, error=f"client error: {e!r}")


async def verify(workload: Workload, phase: str, deadline: float) -> None:
    """Read back every key written, `concurrency` at a time, each up to `attempts` times, by `deadline` (loop time).

    Recorded as VERIFY operations; a key that could not be read is recorded failed (the checker then calls it
    unverified: nothing can be said of its writes)."""
    spec, history, loop = workload.spec.verify, workload.history, workload.loop
    phase_id = history.log.phase_id(phase)
    keys = iter(sorted(workload.written))

    async def reader() -> None:
        for key in keys:
            operation = Operation("read", f"{workload.prefix}{key}")
            start = loop.time()
            result = Result("fail", error="not read: the verification's timeout passed")
            for _ in range(spec.attempts):
                if loop.time() >= deadline:
                    break
                result = await invoke(workload.client, operation, min(workload.spec.timeout, deadline - loop.time()))
                if result.outcome == "ok":
                    break
            at = start - workload.t0
            history.add(VERIFY, result, phase_id, key, NO_VALUE, at, loop.time() - start, 0.0)

    await asyncio.gather(*(reader() for _ in range(min(spec.concurrency, max(1, len(workload.written))))))
