"""The memory.pressure ballast: a small process that holds N bytes resident, then waits to be killed.

Run as `python -m orchestrator.faults.ballast`, in a session of its own and, when the target
has one, inside the target's cgroup. It writes to every page (so the memory is resident and
charged, not just reserved), prints `ready` on stdout once the first ramp step is held, and
exits by itself after `--lifetime` so a drillctl that died without reverting cannot pin
memory forever. `--marker` is unused here: it is how a revert finds this process from /proc.
"""

from __future__ import annotations

import argparse
import mmap
import sys
import time

STEP = 0.1
"""Seconds between ramp steps."""
CHUNK = 1 << 20


def _touch(buffer: mmap.mmap, start: int, end: int) -> None:
    pattern = b"\xa5" * CHUNK
    for offset in range(start, end, CHUNK):
        stop = min(end, offset + CHUNK)
        buffer[offset:stop] = pattern[: stop - offset]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.faults.ballast")
    parser.add_argument("--bytes", type=int, required=True)
    parser.add_argument("--ramp", type=float, default=0.0)
    parser.add_argument("--lifetime", type=float, required=True)
    parser.add_argument("--marker", required=True)
    args = parser.parse_args(argv)
    total: int = args.bytes
    began = time.monotonic()
    buffer = mmap.mmap(-1, max(total, mmap.PAGESIZE))
    steps = max(1, round(args.ramp / STEP))
    held = 0
    for step in range(1, steps + 1):
        goal = total * step // steps
        _touch(buffer, held, goal)
        held = goal
        if step == 1:
            print("ready", flush=True)
        print(f"holding {held} of {total} bytes", file=sys.stderr, flush=True)
        time.sleep(max(0.0, began + args.ramp * step / steps - time.monotonic()))
    time.sleep(max(0.0, began + args.lifetime - time.monotonic()))


if __name__ == "__main__":
    main()
