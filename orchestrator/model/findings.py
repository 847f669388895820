"""What the checker concludes from a workload's history: correctness findings, the RPO, write availability and
latency per phase. Plain data, rendered by reporting and kept in report.json."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OperationFile:
    """Where every operation of a run is on disk (`operation_store.py`)."""

    path: str
    """Relative to the run directory: `operations.bin`."""
    sha256: str
    bytes: int
    operations: int


FINDINGS = ("lost", "failed_present", "unknown_present", "duplicate", "stale_read", "foreign")
"""Finding kinds, in the order reports list them."""


@dataclass(frozen=True)
class OperationStats:
    """One kind of operation (read or write) in one phase; latencies from the intended start, exact nearest rank."""

    operation: str
    phase: str
    operations: int
    ok: int
    failed: int
    unknown: int
    p50: float | None
    p90: float | None
    p99: float | None
    p999: float | None
    max: float | None
    lag_p99: float | None

    @property
    def availability(self) -> float:
        return self.ok / self.operations if self.operations else 0.0


@dataclass(frozen=True)
class Example:
    """One operation behind a finding, so a reader can look it up in operations.bin or the system's logs."""

    finding: str
    key: int
    at: float
    """When the operation was meant to start (seconds since t0)."""
    value: int
    """The write's index (its value), or for a read the value it found (-1 nothing, -2 never written)."""
    detail: str


@dataclass(frozen=True)
class WorkloadResult:
    client: str
    rate: float
    operations: int
    """Reads and writes sent (the read-back not counted)."""
    reads: int
    writes: int
    acknowledged: int
    """Writes acknowledged (ok)."""
    keys_written: int
    keys_verified: int
    keys_unverified: int
    """Keys written whose read-back failed: nothing is said of their writes."""
    lost: int
    """Acknowledged writes missing from the read-back, with nothing that may have overwritten them there."""
    failed_present: int
    """Writes reported failed whose value was read anyway."""
    unknown_present: int
    """Writes of unknown outcome whose value was read (they took effect)."""
    duplicates: int
    """Values read back more than once (at one key, or at several)."""
    stale_reads: int
    """Reads that missed a write acknowledged before they started, and every write after it."""
    foreign: int
    """Values read that this workload never wrote to that key."""
    rpo: float
    """From the intended start of the first lost acknowledged write to the acknowledgement of the last; 0: none lost."""
    rpo_from: float | None
    rpo_to: float | None
    rpo_resolution: float | None
    """How precisely the edges of the loss are known: the widest spacing of writes around them."""
    write_unavailable: float
    """The longest stretch with no write acknowledged: from the first write that was not to the next that was."""
    write_unavailable_total: float
    write_unavailable_from: float | None
    write_unavailable_to: float | None
    write_unavailable_resolution: float | None
    verified: bool
    """Whether the read-back ran (it does after the recovery phase of a run that completed)."""
    examples: tuple[Example, ...] = ()
    stats: tuple[OperationStats, ...] = ()
    file: OperationFile | None = None

    def count(self, finding: str) -> int:
        return {
            "lost": self.lost,
            "failed_present": self.failed_present,
            "unknown_present": self.unknown_present,
            "duplicate": self.duplicates,
            "stale_read": self.stale_reads,
            "foreign": self.foreign,
        }[finding]
