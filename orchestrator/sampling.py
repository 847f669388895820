"""Open-loop samplers: sample k of a probe starts at t0 + k * interval, come what may.

A slow or hung target therefore shows up as a run of failed samples instead of fewer
samples, and latency percentiles are free of coordinated omission. Samples in flight
are bounded per probe; a sample that cannot start is recorded as failed.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

from orchestrator.model.timeline import Sample
from orchestrator.probes.base import Probe


def default_max_in_flight(timeout: float, interval: float) -> int:
    """Enough to keep the cadence against a target that hangs every sample until its timeout."""
    return min(10000, math.ceil(timeout / interval) + 1)


class Recorder:
    """Collects samples; tells waiters each time one lands. Samples stay in memory for the report."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.phase = "baseline"
        self.landed = asyncio.Event()
        self.listeners: list[Callable[[Sample], None]] = []

    def add(self, sample: Sample) -> None:
        self.samples.append(sample)
        for listener in self.listeners:
            listener(sample)
        self.landed.set()


class Sampler:
    def __init__(self, probe: Probe, interval: float, t0: float, max_in_flight: int, recorder: Recorder) -> None:
        self.probe = probe
        self.interval = interval
        self.t0 = t0
        self.max_in_flight = max_in_flight
        self.recorder = recorder
        self._in_flight: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Sample until cancelled; samples still running then get up to their timeout to land."""
        loop = asyncio.get_running_loop()
        k = math.ceil(max(0.0, loop.time() - self.t0) / self.interval)
        try:
            while True:
                scheduled = self.t0 + k * self.interval
                delay = scheduled - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                self._start(scheduled - self.t0, loop.time() - scheduled)
                k += 1
        finally:
            await self._drain()

    def _start(self, at: float, lag: float) -> None:
        phase = self.recorder.phase
        if len(self._in_flight) >= self.max_in_flight:
            error = f"not started: {len(self._in_flight)} samples already in flight"
            self.recorder.add(Sample(self.probe.name, at, phase, False, None, None, error))
            return
        task = asyncio.create_task(self._observe(at, lag, phase))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _observe(self, at: float, lag: float, phase: str) -> None:
        try:
            seen = await self.probe.observe()
        except Exception as e:  # a probe bug must cost one sample, not the sampler
            self.recorder.add(Sample(self.probe.name, at, phase, False, None, lag, f"probe error: {e!r}"))
            return
        self.recorder.add(Sample(self.probe.name, at, phase, seen.ok, seen.latency, lag, seen.error))

    async def _drain(self) -> None:
        if not self._in_flight:
            return
        pending = set(self._in_flight)
        _, late = await asyncio.wait(pending, timeout=self.probe.timeout + 0.5)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=1.0)
