"""The checker: a workload's operation history in, findings out. Pure: no clock, no I/O.

Every key is a register. A write's value is its own index, so a value read names the write behind it.
Write F *precedes* write W when F was acknowledged before W was meant to start (F's completion < W's
intended start): then F cannot be what a correct system holds after W. A write that failed or whose
outcome is unknown may have taken effect at any time after it started, so it never precedes anything.

- **lost**: an acknowledged write W whose key, read back after recovery, holds nothing, or holds only
  writes that precede W (so W cannot have been overwritten: it is gone). Keys whose read-back failed are
  unverified and say nothing.
- **failed_present / unknown_present**: a write reported failed (or unknown) whose value was read.
- **duplicate**: a value the read-back found more than once (twice at one key, or at two keys).
- **stale_read**: a read R of a key that, before R was meant to start, had a write W acknowledged, yet R
  found nothing or only writes preceding W.
- **foreign**: a value read that no write of this workload put at that key.
- **RPO**: from the intended start of the first lost write to the acknowledgement of the last.
- **write unavailability**: the longest stretch from a write that was not acknowledged to the next write
  (by intended start) that was; its resolution is the spacing of writes around its edges.

Why columns and index arrays rather than an object per operation: a million operations are checked in a
few seconds within a small multiple of the log's own 40 MB (bench/checker.py).
"""

from __future__ import annotations

import bisect
import math
import operator
from array import array
from collections.abc import Callable, Iterator
from itertools import chain, compress, filterfalse

from orchestrator.analysis import percentile
from orchestrator.model.findings import FINDINGS, Example, OperationFile, OperationStats, WorkloadResult
from orchestrator.model.operations import (
    ABSENT,
    FAIL,
    KINDS,
    MORE,
    OK,
    READ,
    UNKNOWN,
    VERIFY,
    WRITE,
    OperationLog,
)

EXAMPLES = 5
"""Operations quoted per finding kind."""
FINDING_ORDER = {name: i for i, name in enumerate(FINDINGS)}


def _mask(column: bytearray, value: int) -> bytes:
    """1 where the column holds `value`, else 0: for `compress`."""
    return bytes(column).translate(bytes(int(k == value) for k in range(256)))


class _Writes:
    """Writes by index (their value): row in the log, key, intended start, completion (inf unless acknowledged)."""

    def __init__(self, log: OperationLog) -> None:
        rows = array("q", compress(range(len(log)), _mask(log.kind, WRITE)))
        value = log.value
        size = max(map(value.__getitem__, rows), default=-1) + 1
        self.size = size
        self.row = array("q", [-1]) * size
        for r in rows:
            self.row[value[r]] = r
        self.rows = array("q", (r for r in self.row if r >= 0))
        """Rows of every write in the order they were meant to start (by index)."""
        at, latency, outcome = log.at, log.latency, log.outcome
        self.starts = array("d", map(at.__getitem__, self.rows))
        self.end = array("d", [math.inf]) * size
        for r in self.rows:
            if outcome[r] == OK:
                self.end[value[r]] = at[r] + latency[r]

    def of_key(self, v: int, key: int, log: OperationLog) -> bool:
        """Whether value `v` is a write of this workload to `key`."""
        return 0 <= v < self.size and (r := self.row[v]) >= 0 and log.key[r] == key

    def gap_around(self, *moments: float) -> float:
        """The widest spacing of write starts around any of these moments."""
        return max(map(self.gap_at, moments))

    def gap_at(self, t: float) -> float:
        """The spacing of write starts around moment `t`: how precisely an edge there is known."""
        starts = self.starts
        i = bisect.bisect_right(starts, t)
        before = starts[i - 1] if i > 0 else t
        after = starts[i] if i < len(starts) else t
        return after - before


class _Found:
    """Rows of one kind that answered (ok), and what each found: its own value, and those of MORE rows after it."""

    def __init__(self, log: OperationLog, base: int) -> None:
        kind, value = log.kind, log.value
        answered = bytes(map(operator.and_, _mask(kind, base), _mask(log.outcome, OK)))
        self.rows = array("q", compress(range(len(log)), answered))
        self.more: dict[int, list[int]] = {}
        if MORE in kind:
            for r in self.rows:
                j = r + 1
                while j < len(kind) and kind[j] == MORE:
                    self.more.setdefault(r, []).append(value[j])
                    j += 1
        self._value = value

    def __len__(self) -> int:
        return len(self.rows)

    def values(self, row: int) -> list[int]:
        return [self._value[row], *self.more.get(row, ())]

    def pairs(self) -> Iterator[tuple[int, int]]:
        """(row, value) for every value found."""
        value, more = self._value, self.more
        for r in self.rows:
            yield r, value[r]
            for v in more.get(r, ()):
                yield r, v


def check(
    log: OperationLog, client: str, rate: float, verified: bool, file: OperationFile | None = None
) -> WorkloadResult:
    writes = _Writes(log)
    key, at, outcome = log.key, log.at, log.outcome
    examples: list[Example] = []

    def note(finding: str, row: int, value: int, detail: str) -> None:
        if sum(e.finding == finding for e in examples) < EXAMPLES:
            examples.append(Example(finding, key[row], at[row], value, detail))

    reads = _Found(log, READ)
    backs = _Found(log, VERIFY)
    seen = bytearray(writes.size)
    foreign = 0
    for row, v in chain(reads.pairs(), backs.pairs()):
        if v == ABSENT:
            continue
        if writes.of_key(v, key[row], log):
            seen[v] = 1
        else:
            foreign += 1
            note("foreign", row, v, "a value no write of this workload put at this key")

    # The read-back: per key, the latest moment a write may have been applied and still be what it holds.
    keep_from: dict[int, float] = {}
    count: dict[int, int] = {}
    for row, v in backs.pairs():
        k = key[row]
        keep = keep_from.get(k, -math.inf)
        if writes.of_key(v, k, log):
            keep = max(keep, writes.end[v])
            count[v] = count.get(v, 0) + 1
            if count[v] == 2:
                note("duplicate", row, v, f"write {v} read back more than once")
        keep_from[k] = keep
    duplicates = sum(n - 1 for n in count.values())
    written = {key[r] for r in writes.rows}
    verified_keys = written & keep_from.keys()

    lost_rows = []
    failed_present = unknown_present = 0
    value = log.value
    for r in writes.rows:
        state = outcome[r]
        if state == OK:
            k = key[r]
            if k in keep_from and keep_from[k] < at[r]:
                lost_rows.append(r)
                if len(lost_rows) <= EXAMPLES:
                    note("lost", r, value[r], f"acknowledged at {at[r] + log.latency[r]:.6f}s; not read back")
        elif seen[value[r]]:
            if state == UNKNOWN:
                unknown_present += 1
                note("unknown_present", r, value[r], "outcome unknown; its value was read")
            else:
                failed_present += 1
                note("failed_present", r, value[r], "reported failed; its value was read")

    stale = _stale_reads(log, writes, reads, note)
    rpo_from = min(map(at.__getitem__, lost_rows), default=None)
    rpo_to = max((at[r] + log.latency[r] for r in lost_rows), default=None)
    unavailable = _write_unavailability(log, writes)
    return WorkloadResult(
        client=client,
        rate=rate,
        operations=log.kind.count(READ) + len(writes.rows),
        reads=log.kind.count(READ),
        writes=len(writes.rows),
        acknowledged=sum(1 for r in writes.rows if outcome[r] == OK),
        keys_written=len(written),
        keys_verified=len(verified_keys),
        keys_unverified=len(written) - len(verified_keys) if verified else 0,
        lost=len(lost_rows),
        failed_present=failed_present,
        unknown_present=unknown_present,
        duplicates=duplicates,
        stale_reads=stale,
        foreign=foreign,
        rpo=0.0 if rpo_from is None or rpo_to is None else rpo_to - rpo_from,
        rpo_from=rpo_from,
        rpo_to=rpo_to,
        rpo_resolution=None if rpo_from is None or rpo_to is None else writes.gap_around(rpo_from, rpo_to),
        write_unavailable=unavailable[0],
        write_unavailable_total=unavailable[1],
        write_unavailable_from=unavailable[2],
        write_unavailable_to=unavailable[3],
        write_unavailable_resolution=unavailable[4],
        verified=verified,
        examples=tuple(sorted(examples, key=lambda e: (FINDING_ORDER[e.finding], e.at))),
        stats=tuple(operation_stats(log)),
        file=file,
    )


Note = Callable[[str, int, int, str], None]


def _stale_reads(log: OperationLog, writes: _Writes, reads: _Found, note: Note) -> int:
    """One sweep in time: acknowledged writes by completion, reads by intended start; per key the latest
    intended start of a write acknowledged so far (a read must see that write or one not preceding it)."""
    at, key = log.at, log.key
    acked = sorted((v for v in range(writes.size) if writes.end[v] < math.inf), key=writes.end.__getitem__)
    ordered = sorted(reads.rows, key=at.__getitem__)
    latest: dict[int, float] = {}
    stale, w = 0, 0
    for row in ordered:
        start = at[row]
        while w < len(acked) and writes.end[acked[w]] < start:
            r = writes.row[acked[w]]
            k = key[r]
            if at[r] > latest.get(k, -math.inf):
                latest[k] = at[r]
            w += 1
        must = latest.get(key[row])
        if must is None:
            continue
        values = reads.values(row)
        if all(v == ABSENT or (writes.of_key(v, key[row], log) and writes.end[v] < must) for v in values):
            stale += 1
            note("stale_read", row, values[0], f"missed a write acknowledged before it, meant to start at {must:.6f}s")
    return stale


def _write_unavailability(
    log: OperationLog, writes: _Writes
) -> tuple[float, float, float | None, float | None, float | None]:
    """(longest, total, from, to, resolution) of the stretches from a write not acknowledged to the next that was."""
    outcome, starts = log.outcome, writes.starts
    oks = bytes(outcome[r] == OK for r in writes.rows)
    longest, total = 0.0, 0.0
    edges: tuple[float | None, float | None, float | None] = (None, None, None)
    i, n = 0, len(oks)
    while (i := oks.find(0, i)) >= 0:
        j = oks.find(1, i)
        end = starts[j] if j >= 0 else starts[n - 1]
        length = end - starts[i]
        total += length
        if length > longest or edges[0] is None:
            before = starts[i] - starts[i - 1] if i > 0 else 0.0
            after = end - starts[j - 1] if j > 0 else 0.0
            longest, edges = length, (starts[i], end, max(before, after))
        if j < 0:
            break
        i = j
    return longest, total, *edges


def operation_stats(log: OperationLog) -> list[OperationStats]:
    """Per phase (in the order phases were first seen) and kind (read, write)."""
    groups: dict[tuple[int, int], tuple[array[float], array[float], list[int]]] = {}
    kind, phase, outcome, latency, lag = log.kind, log.phase, log.outcome, log.latency, log.lag
    for r in range(len(log)):
        k = kind[r]
        if k not in (READ, WRITE):
            continue
        group = groups.get((phase[r], k))
        if group is None:
            group = groups[(phase[r], k)] = (array("d"), array("d"), [0, 0, 0])
        group[0].append(latency[r])
        group[1].append(lag[r])
        group[2][outcome[r]] += 1
    out = []
    for (p, k), (latencies, lags, states) in sorted(groups.items()):
        done = sorted(filterfalse(math.isnan, latencies))
        late = sorted(filterfalse(math.isnan, lags))
        out.append(
            OperationStats(
                operation=KINDS[k],
                phase=log.phases[p],
                operations=sum(states),
                ok=states[OK],
                failed=states[FAIL],
                unknown=states[UNKNOWN],
                p50=percentile(done, 50),
                p90=percentile(done, 90),
                p99=percentile(done, 99),
                p999=percentile(done, 99.9),
                max=done[-1] if done else None,
                lag_p99=percentile(late, 99),
            )
        )
    return out
