"""The checker on a million operations: time and memory to check a history, and to read it from operations.bin.

A synthetic history shaped like a real drill's (2,000 operations/s for 500 s, 30% reads, 10,000 keys, latencies
of a few milliseconds): a store that loses every write acknowledged in a 1.5 s window (a crash with lagging
persistence), is unwritable for 3 s after it, and answers some reads stale. It is written through the real
OperationStream to operations.bin, read back with read_operations, and checked; it prints the figures (time,
peak RSS of this process) and what the checker found, which must be what was built in. Goal: 1 million
operations checked in under 10 s and under 300 MB. Nothing is asserted.

    .venv/bin/python bench/checker.py
    .venv/bin/python bench/checker.py --operations 2000000
"""

from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from orchestrator.model.operations import ABSENT, FAIL, OK, READ, VERIFY, WRITE, OperationLog
from orchestrator.operation_store import OperationStream, read_operations
from orchestrator.workloads.checker import check

RATE = 2000.0
KEYS = 10_000
LAG, DOWN = 1.5, 3.0
"""The crash comes 30 s before the end: a write lost in it is seen lost only if its key is not written again."""


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthesize(n: int, seed: int = 1) -> tuple[OperationLog, int]:
    """n operations, then the read-back of every key; also how many acknowledged writes the read-back can show
    lost (a lost write whose key is written again afterwards is overwritten: a register cannot show it)."""
    rng = random.Random(seed)
    log = OperationLog()
    phase = log.phase_id("fault")
    last: dict[int, int] = {}  # key -> the write the store holds
    lost: dict[int, int] = {}  # key -> acknowledged writes lost since its last surviving write
    crash = n / RATE - 30.0
    for k in range(n):
        at = k / RATE
        key = rng.randrange(KEYS)
        latency = 0.002 + rng.random() * 0.003
        if crash <= at < crash + DOWN:
            log.append(WRITE if k % 3 else READ, FAIL, phase, key, k, at, latency, 0.0001, 0)
            continue
        if rng.random() < 0.3:
            held = last.get(key, ABSENT)
            log.append(READ, OK, phase, key, held, at, latency, 0.0001, 0)
            continue
        log.append(WRITE, OK, phase, key, k, at, latency, 0.0001, 0)
        if crash - LAG <= at < crash:
            lost[key] = lost.get(key, 0) + 1  # acknowledged, never persisted: the store comes back without it
        else:
            last[key] = k
            lost.pop(key, None)
    for key in range(KEYS):
        log.append(VERIFY, OK, log.phase_id("verify"), key, last.get(key, ABSENT), n / RATE + 1, 0.001, 0.0, 0)
    return log, sum(lost.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--operations", type=int, default=1_000_000)
    parser.add_argument("--write", type=Path, help=argparse.SUPPRESS)  # the child that synthesizes
    args = parser.parse_args()
    if args.write is not None:
        started = time.perf_counter()
        built, expected = synthesize(args.operations)
        stream = OperationStream(args.write, built)
        stream.flush()
        ref = stream.close()
        assert ref is not None
        print(
            f"synthesized and wrote {len(built):,} records in {time.perf_counter() - started:.2f}s: operations.bin "
            f"{ref.bytes / 1e6:.1f} MB, columns {built.nbytes() / 1e6:.0f} MB; {expected:,} acknowledged writes "
            "lost by construction (and not overwritten later)"
        )
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "operations.bin"
        child = [sys.executable, __file__, "--operations", str(args.operations), "--write", str(path)]
        subprocess.run(child, check=True)  # in a process of its own: this one's peak RSS is the reading and checking
        before = rss_mb()
        started = time.perf_counter()
        log = read_operations(path)
        read = time.perf_counter() - started
    cpu = time.process_time()
    started = time.perf_counter()
    result = check(log, "synthetic", RATE, True)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        f"read back in {read:.2f}s; checked {result.operations:,} operations in {wall:.2f}s (CPU {cpu:.2f}s); "
        f"peak RSS {rss_mb():.0f} MB (at start {before:.0f} MB)"
    )
    resolution = (result.rpo_resolution or 0) * 1e3
    print(
        f"found: lost {result.lost:,}, RPO {result.rpo:.3f}s ±{resolution:.1f}ms, write unavailability "
        f"{result.write_unavailable:.3f}s, stale reads {result.stale_reads:,}, duplicates {result.duplicates}, "
        f"foreign {result.foreign}"
    )


if __name__ == "__main__":
    main()
