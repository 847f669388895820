"""What happened during a run, on the monotonic clock (seconds since the run's t0)."""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from orchestrator.model.alerts import AlertObservations
from orchestrator.model.findings import WorkloadResult


@dataclass(frozen=True, slots=True)
class Sample:
    """One observation. `at` is when it was scheduled (open loop), `lag` how late it really started."""

    probe: str
    at: float
    phase: str
    ok: bool
    latency: float | None
    lag: float | None
    error: str | None = None

    @property
    def started(self) -> float:
        """When it really started, which dates what it saw: `at + lag` (`at` for one never started)."""
        return self.at if self.lag is None else self.at + self.lag


@dataclass(frozen=True)
class PhaseMark:
    name: str
    start: float
    end: float


@dataclass(frozen=True)
class FaultMark:
    """A fault as it really ran: `injected_at`/`reverted_at` are measured, not scheduled."""

    name: str
    type: str
    params: Mapping[str, Any]
    scheduled_start: float
    scheduled_end: float
    injected_at: float | None
    reverted_at: float | None
    runbook: str | None = None
    error: str | None = None
    ended_at: float | None = None
    """When its duration ended: its revert began (not when the revert returned), unless the fault stays in place
    to the end (restore: false)."""
    touched: tuple[str, ...] = ()
    """What it touched, as its driver read it from the undo record (`node/kwok-node-1`); redacted."""
    seed: int | None = None
    """The seed that chose those targets, for drivers that choose."""
    revert_notes: tuple[str, ...] = ()
    """What its revert found and did (a target that vanished, a value changed meanwhile and kept); redacted."""

    @property
    def end(self) -> float | None:
        """The `fault_end` that recovery is measured from."""
        return self.ended_at if self.ended_at is not None else self.reverted_at


@dataclass(frozen=True)
class SampleFile:
    """Where every sample of a run is on disk (`sample_store.py`), for reports that do not hold them all."""

    path: str
    """Relative to the run directory: `samples.bin`."""
    sha256: str
    bytes: int
    samples: int


@dataclass(frozen=True, slots=True)
class Bucket:
    """The samples of one probe scheduled in [start, start + width): one point of a long run's chart."""

    probe: str
    start: float
    samples: int
    failures: int
    min: float | None
    """Lowest latency of its passing samples (None: none passed)."""
    p99: float | None
    max: float | None
    failed_at: float | None
    """When its first failed sample was scheduled, and that sample's error: a failure always shows."""
    error: str | None


@dataclass(frozen=True)
class SampleSeries:
    """A long run's samples, downsampled for charts: what report.json keeps instead of every sample."""

    width: float
    samples: int
    until: float
    """When the last sample was scheduled."""
    buckets: tuple[Bucket, ...]


@dataclass(frozen=True)
class Timeline:
    interval: float
    probes: tuple[str, ...]
    samples: Sequence[Sample]
    """A tuple, or the run's own `SampleLog` (columns, never copied into objects)."""
    phases: tuple[PhaseMark, ...]
    faults: tuple[FaultMark, ...]
    end: float = field(default=0.0)
    samples_file: SampleFile | None = None
    workload: WorkloadResult | None = None
    """What the workload's checker found (`workloads/checker.py`), with where its operations are; None: no workload."""
    alerts: AlertObservations | None = None
    """What the drill's alert watcher and webhook receiver saw (drills with `spec.alerts`)."""

    def phase(self, name: str) -> PhaseMark | None:
        return next((p for p in self.phases if p.name == name), None)

    def fault(self, name: str) -> FaultMark | None:
        return next((f for f in self.faults if f.name == name), None)


MAX_ERROR_CHARS = 500
"""Longest probe error kept per sample; longer ones are cut (an error can quote a whole response)."""
MAX_ERROR_TEXTS = 1000
"""Most distinct error texts kept per run: errors that quote ports or times would otherwise grow without end."""
ERROR_OVERFLOW = f"(error text not kept: more than {MAX_ERROR_TEXTS} distinct error texts in this run)"


def intern(name: str, table: list[str], ids: dict[str, int], limit: int) -> int:
    """The id of a name in a small table (its index), added when first seen; at most `limit` names."""
    found = ids.get(name)
    if found is None:
        if len(table) >= limit:
            raise ValueError(f"more than {limit} distinct names in a log")
        found = ids[name] = len(table)
        table.append(name)
    return found


class ErrorTexts:
    """Error texts interned by id (0: none), each cut at MAX_ERROR_CHARS and passed once through `clean`
    (redaction) when first seen; at most MAX_ERROR_TEXTS distinct ones, then one shared overflow text."""

    def __init__(self, clean: Callable[[str], str] | None = None) -> None:
        self.clean = clean
        self.texts: list[str] = [""]
        self._ids: dict[str, int] = {}

    def id(self, error: str | None) -> int:
        if error is None:
            return 0
        key = error[: MAX_ERROR_CHARS + 1]
        found = self._ids.get(key)
        if found is not None:
            return found
        if len(self.texts) > MAX_ERROR_TEXTS:  # full: every new text shares one id, and the table stops growing
            found = self._ids.get(ERROR_OVERFLOW)
            if found is None:
                found = self._ids[ERROR_OVERFLOW] = len(self.texts)
                self.texts.append(ERROR_OVERFLOW)
            return found
        text = self.clean(error) if self.clean is not None else error
        if len(text) > MAX_ERROR_CHARS:
            text = text[: MAX_ERROR_CHARS - 1] + "…"
        found = self._ids[key] = len(self.texts)
        self.texts.append(text)
        return found

    def define(self, text: str) -> None:
        """Add a text in id order (reading a file back)."""
        self._ids.setdefault(text, len(self.texts))
        self.texts.append(text)


class SampleLog(Sequence[Sample]):
    """Samples in columns of machine numbers, read back as `Sample` objects.

    Why not a list of `Sample`s: every dataclass instance (and its floats) is an object the
    cyclic garbage collector tracks, so each full collection walked every sample taken so far:
    at 5,000 samples/s those pauses were the p99 cadence lag (bench/sampler_scale.py). Arrays
    hold nothing the collector tracks: 32 bytes a sample (bench/long_gameday.py), so an hour at
    1,000 samples/s is about 115 MB, and the log stays the source of analysis. Probe and phase
    names and error texts are interned into small tables (ids are indexes; error id 0 is none):
    error texts are cut at MAX_ERROR_CHARS and at most MAX_ERROR_TEXTS distinct ones are kept,
    each passed once through `clean` (redaction) when first seen. Readers iterate, index or
    slice it like the list it replaces.
    """

    def __init__(self, clean: Callable[[str], str] | None = None) -> None:
        self.probes: list[str] = []
        self.phases: list[str] = []
        self._texts = ErrorTexts(clean)
        self.errors = self._texts.texts
        self.error_id = self._texts.id
        self._probe_ids: dict[str, int] = {}
        self._phase_ids: dict[str, int] = {}
        self.probe = array("H")
        self.phase = array("B")
        self.error = array("I")
        self.at = array("d")
        self.ok = bytearray()
        self.latency = array("d")
        self.lag = array("d")

    _intern = staticmethod(intern)

    def append(self, sample: Sample) -> None:
        self.append_ids(
            self._intern(sample.probe, self.probes, self._probe_ids, 0xFFFF),
            self._intern(sample.phase, self.phases, self._phase_ids, 0xFF),
            self.error_id(sample.error),
            sample.at,
            sample.ok,
            math.nan if sample.latency is None else sample.latency,
            math.nan if sample.lag is None else sample.lag,
        )

    def append_ids(self, probe: int, phase: int, error: int, at: float, ok: bool, latency: float, lag: float) -> None:
        """One sample by table ids, None as NaN: how a reader of samples.bin fills a log."""
        self.probe.append(probe)
        self.phase.append(phase)
        self.error.append(error)
        self.at.append(at)
        self.ok.append(ok)
        self.latency.append(latency)
        self.lag.append(lag)

    def define(self, table: str, text: str) -> None:
        """Add a name or error text to a table in id order (reading samples.bin back)."""
        if table == "probe":
            self._intern(text, self.probes, self._probe_ids, 0xFFFF)
        elif table == "phase":
            self._intern(text, self.phases, self._phase_ids, 0xFF)
        else:
            self._texts.define(text)

    def started(self, i: int) -> float:
        """When sample `i` really started (`Sample.started`), read from the columns."""
        lag = self.lag[i]
        return self.at[i] if math.isnan(lag) else self.at[i] + lag

    def nbytes(self) -> int:
        """Bytes of the columns as allocated (arrays over-allocate as they grow)."""
        columns = (self.probe, self.phase, self.error, self.at, self.latency, self.lag)
        return sum(sys.getsizeof(c) for c in columns) + sys.getsizeof(self.ok)

    def __len__(self) -> int:
        return len(self.at)

    def _sample(self, i: int) -> Sample:
        latency, lag, error = self.latency[i], self.lag[i], self.error[i]
        return Sample(
            self.probes[self.probe[i]],
            self.at[i],
            self.phases[self.phase[i]],
            bool(self.ok[i]),
            None if math.isnan(latency) else latency,
            None if math.isnan(lag) else lag,
            self.errors[error] if error else None,
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
