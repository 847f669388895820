"""Open-loop samplers: sample k of a probe starts at t0 + k * interval, come what may.

A slow or hung target therefore shows up as a run of failed samples instead of fewer
samples, and latency percentiles are free of coordinated omission. Samples in flight
are bounded per probe; a sample that cannot start is recorded as failed.
"""

from __future__ import annotations

import asyncio
import gc
import math
from array import array
from collections.abc import Callable, Iterator, Sequence
from typing import overload

from orchestrator.model.timeline import Sample
from orchestrator.probes.base import Probe


def default_max_in_flight(timeout: float, interval: float) -> int:
    """Enough to keep the cadence against a target that hangs every sample until its timeout."""
    return min(10000, math.ceil(timeout / interval) + 1)


class SampleLog(Sequence[Sample]):
    """Samples in columns of machine numbers, read back as `Sample` objects.

    Why not a list of `Sample`s: every dataclass instance (and its floats) is an object the
    cyclic garbage collector tracks, so each full collection walked every sample taken so far:
    at 5,000 samples/s those pauses were the p99 cadence lag (bench/sampler_scale.py). Arrays
    and a dict of str hold nothing the collector tracks, and take about 30 bytes a sample.
    Readers iterate, index or slice it like the list it replaces.
    """

    def __init__(self) -> None:
        self._names: list[str] = []
        self._name_ids: dict[str, int] = {}
        self._probe = array("I")
        self._phase = array("I")
        self._at = array("d")
        self._ok = bytearray()
        self._latency = array("d")
        self._lag = array("d")
        self._errors: dict[int, str] = {}

    def _id(self, name: str) -> int:
        found = self._name_ids.get(name)
        if found is None:
            found = self._name_ids[name] = len(self._names)
            self._names.append(name)
        return found

    def append(self, sample: Sample) -> None:
        i = len(self._at)
        self._probe.append(self._id(sample.probe))
        self._phase.append(self._id(sample.phase))
        self._at.append(sample.at)
        self._ok.append(sample.ok)
        self._latency.append(math.nan if sample.latency is None else sample.latency)
        self._lag.append(math.nan if sample.lag is None else sample.lag)
        if sample.error is not None:
            self._errors[i] = sample.error

    def __len__(self) -> int:
        return len(self._at)

    def _sample(self, i: int) -> Sample:
        latency, lag = self._latency[i], self._lag[i]
        return Sample(
            self._names[self._probe[i]],
            self._at[i],
            self._names[self._phase[i]],
            bool(self._ok[i]),
            None if math.isnan(latency) else latency,
            None if math.isnan(lag) else lag,
            self._errors.get(i),
        )

    @overload
    def __getitem__(self, index: int) -> Sample: ...

    @overload
    def __getitem__(self, index: slice) -> list[Sample]: ...

    def __getitem__(self, index: int | slice) -> Sample | list[Sample]:
        if isinstance(index, slice):
            return [self._sample(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("sample index out of range")
        return self._sample(index)

    def __iter__(self) -> Iterator[Sample]:
        return (self._sample(i) for i in range(len(self)))


class Recorder:
    """Collects samples; tells waiters each time one lands. Samples stay in memory for the report."""

    def __init__(self) -> None:
        self.samples = SampleLog()
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
        """Sample until cancelled; samples still running then get up to their timeout to land.

        While sampling, every object alive at its start (modules, spec, clients: they outlive
        it anyway) sits in the collector's permanent generation, so that a full collection,
        which stops the loop, walks only what sampling allocates: at 5,000 samples/s the
        45,000-object heap of a run made those pauses 10-20 ms long and they set the p99 lag.
        They go back when sampling stops, so that whatever of them became garbage (a game day
        runs drill after drill in one process) can still be collected.
        """
        gc.freeze()
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
            try:
                await self._drain()
            finally:
                gc.unfreeze()

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
