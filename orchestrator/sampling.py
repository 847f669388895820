"""Open-loop samplers: sample k of a probe starts at t0 + k * interval, come what may.

A slow or hung target therefore shows up as a run of failed samples instead of fewer
samples, and latency percentiles are free of coordinated omission. Samples in flight
are bounded per probe; a sample that cannot start is recorded as failed.
"""

from __future__ import annotations

import asyncio
import gc
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from orchestrator.model.timeline import Sample, SampleFile, SampleLog
from orchestrator.probes.base import Probe
from orchestrator.sample_store import SampleStream


def default_max_in_flight(timeout: float, interval: float) -> int:
    """Enough to keep the cadence against a target that hangs every sample until its timeout."""
    return min(10000, math.ceil(timeout / interval) + 1)


class Recorder:
    """Collects samples; tells waiters each time one lands.

    Samples stay in memory (a compact `SampleLog`, the source of analysis) and, given a file,
    stream to it in batches as they land (`sample_store.py`), so that a long run's report.json
    can refer to them instead of holding them all. Error texts go through `clean` once each.
    """

    def __init__(self, stream_to: Path | None = None, clean: Callable[[str], str] | None = None) -> None:
        self.samples = SampleLog(clean)
        self.stream = None if stream_to is None else SampleStream(stream_to, self.samples)
        self.phase = "baseline"
        self.landed = asyncio.Event()
        self.listeners: list[Callable[[Sample], None]] = []

    def close(self) -> SampleFile | None:
        """Writes the samples not yet on disk; where they are, or None without a (working) stream."""
        return None if self.stream is None else self.stream.close()

    def add(self, sample: Sample) -> None:
        self.samples.append(sample)
        if self.stream is not None:
            self.stream.landed()
        for listener in self.listeners:
            listener(sample)
        self.landed.set()


class Schedule(Protocol):
    """When the k-th operation of an open loop is due, in seconds after t0 (never decreasing in k)."""

    def at(self, k: int) -> float: ...

    def first(self, t: float) -> int:
        """The index of the first operation due at or after `t`."""
        ...


@dataclass(frozen=True)
class Periodic:
    """A probe's schedule: every `interval`."""

    interval: float

    def at(self, k: int) -> float:
        return k * self.interval

    def first(self, t: float) -> int:
        return math.ceil(max(0.0, t) / self.interval)


async def open_loop(schedule: Schedule, t0: float, start: Callable[[int, float, float], None]) -> None:
    """Call `start(k, at, lag)` at t0 + schedule.at(k) for each k from now on, whatever earlier ones are doing,
    until cancelled. `start` must not block: it starts a task or records that it could not.

    While it runs, every object alive at its start (modules, spec, clients: they outlive it anyway) sits in
    the collector's permanent generation, so that a full collection, which stops the loop, walks only what
    sampling allocates: at 5,000 samples/s the 45,000-object heap of a run made those pauses 10-20 ms long
    and they set the p99 lag. They go back when it stops, so that whatever of them became garbage (a game
    day runs drill after drill in one process) can still be collected.
    """
    gc.freeze()
    loop = asyncio.get_running_loop()
    k = schedule.first(max(0.0, loop.time() - t0))
    try:
        while True:
            scheduled = t0 + schedule.at(k)
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            start(k, scheduled - t0, loop.time() - scheduled)
            k += 1
    finally:
        gc.unfreeze()


class InFlight:
    """Tasks started and not finished yet, at most `limit` of them: what bounds an open loop against a hung target."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def full(self) -> bool:
        return len(self._tasks) >= self.limit

    def start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, within: float) -> None:
        """Give what is still running up to `within` seconds to finish, then cancel it."""
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=within)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=1.0)


class Sampler:
    def __init__(self, probe: Probe, interval: float, t0: float, max_in_flight: int, recorder: Recorder) -> None:
        self.probe = probe
        self.interval = interval
        self.t0 = t0
        self.max_in_flight = max_in_flight
        self.recorder = recorder
        self._in_flight = InFlight(max_in_flight)

    async def run(self) -> None:
        """Sample until cancelled; samples still running then get up to their timeout to land."""
        try:
            await open_loop(Periodic(self.interval), self.t0, self._start)
        finally:
            await self._in_flight.drain(self.probe.timeout + 0.5)

    def _start(self, k: int, at: float, lag: float) -> None:
        phase = self.recorder.phase
        if self._in_flight.full():
            error = f"not started: {len(self._in_flight)} samples already in flight"
            self.recorder.add(Sample(self.probe.name, at, phase, False, None, None, error))
            return
        self._in_flight.start(self._observe(at, lag, phase))

    async def _observe(self, at: float, lag: float, phase: str) -> None:
        try:
            seen = await self.probe.observe()
        except Exception as e:  # a probe bug must cost one sample, not the sampler
            self.recorder.add(Sample(self.probe.name, at, phase, False, None, lag, f"probe error: {e!r}"))
            return
        self.recorder.add(Sample(self.probe.name, at, phase, seen.ok, seen.latency, lag, seen.error))
