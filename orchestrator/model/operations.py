"""The operation history of a workload: every operation sent, and every value the verification read back.

Columns of machine numbers, as `SampleLog` holds samples: a million operations are about 40 MB and nothing
for the garbage collector to walk. Keys are numbers in the key space (the client gets `prefix + number`);
a write's value is its own schedule index, unique in the run, so any value read back names the write that
put it there. Times are seconds since the run's t0; `at` is when the operation was meant to start (open
loop), `latency` runs from then to its completion (NaN: it never started), `lag` is how late it started.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.model.timeline import ErrorTexts, intern

READ, WRITE, VERIFY, MORE = 0, 1, 2, 3
"""Kinds. MORE: one more value of the read (or read-back) just before it, for a key that holds several."""
KINDS = ("read", "write", "verify", "more")
FAIL, OK, UNKNOWN = 0, 1, 2
"""Outcomes: failed (known not to have taken effect), acknowledged, unknown (a timeout: it may have)."""
OUTCOMES = ("fail", "ok", "unknown")
ABSENT, FOREIGN, NO_VALUE = -1, -2, -3
"""Values of reads besides a write's index: the key held nothing; it held a value this workload never wrote;
the read failed. A write's value is its index."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation for a client: `key` and `value` as it sends them (value None for a read)."""

    kind: str
    key: str
    value: str | None = None


class OperationLog:
    """Operations and read-back values in columns; `append` is what the workload and verification call."""

    def __init__(self, clean: Callable[[str], str] | None = None) -> None:
        self.phases: list[str] = []
        self._phase_ids: dict[str, int] = {}
        self._texts = ErrorTexts(clean)
        self.errors = self._texts.texts
        self.error_id = self._texts.id
        self.kind = bytearray()
        self.outcome = bytearray()
        self.phase = bytearray()
        self.key = array("I")
        self.value = array("q")
        self.at = array("d")
        self.latency = array("d")
        self.lag = array("d")
        self.error = array("I")

    def phase_id(self, name: str) -> int:
        return intern(name, self.phases, self._phase_ids, 0xFF)

    def append(
        self,
        kind: int,
        outcome: int,
        phase: int,
        key: int,
        value: int,
        at: float,
        latency: float,
        lag: float,
        error: int,
    ) -> None:
        self.kind.append(kind)
        self.outcome.append(outcome)
        self.phase.append(phase)
        self.key.append(key)
        self.value.append(value)
        self.at.append(at)
        self.latency.append(latency)
        self.lag.append(lag)
        self.error.append(error)

    def define(self, table: str, text: str) -> None:
        """Add a phase name or error text in id order (reading operations.bin back)."""
        if table == "phase":
            self.phase_id(text)
        else:
            self._texts.define(text)

    def nbytes(self) -> int:
        columns = (self.key, self.value, self.at, self.latency, self.lag, self.error)
        return sum(sys.getsizeof(c) for c in columns) + 3 * sys.getsizeof(self.kind)

    def __len__(self) -> int:
        return len(self.at)
