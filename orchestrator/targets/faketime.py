"""libfaketime plumbing: a process started with it preloaded reads its clock offset from a file.

drillctl rewrites that file to skew the clock while the process runs; FAKETIME_NO_CACHE makes
libfaketime re-read it on every clock call, so a change applies at once (without it, libfaketime
keeps what it read for up to FAKETIME_CACHE_DURATION, 10s by default).

What libfaketime 0.9.10 (Debian 12) does with the file, verified against its source and by hand
(docs/faults/clock-skew.md has the commands):
- `+90` / `-300` / `-5m` shift the clock from the real time; a bare number is seconds, and a
  trailing m, h, d or y anywhere in the line multiplies it (so no other letters may appear).
- ` x1.01` makes the faked clock run at that rate, counted from the moment libfaketime started in
  the process, not from the rewrite: switching to a rate after N seconds jumps the clock by
  N * (rate - 1). `clock_offset` compensates for that.
- A rate, once read, stays: a later `+0` keeps running at it. Only an explicit ` x1` ends it.
- Numbers are read with atof(), so a target that sets a comma-decimal LC_NUMERIC reads `x1.01`
  as `x1`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from orchestrator.errors import PreflightError
from orchestrator.files import replace_file

LIBRARY_DIRS = (
    "/usr/lib/x86_64-linux-gnu/faketime",
    "/usr/lib/aarch64-linux-gnu/faketime",
    "/usr/lib/faketime",
    "/usr/local/lib/faketime",
)
ENV_LIBRARY = "DRILLCTL_LIBFAKETIME"
NO_SKEW = "+0"
REAL_RATE = " x1"
"""Appended when a skew that set a rate is reverted: libfaketime keeps the last rate it read."""


def find_library() -> Path:
    """$DRILLCTL_LIBFAKETIME, else the multi-threaded libfaketime of the Debian/Ubuntu package."""
    candidates = [os.environ.get(ENV_LIBRARY)] + [f"{d}/libfaketimeMT.so.1" for d in LIBRARY_DIRS]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise PreflightError(
        f"clock: faketime needs libfaketime (Debian/Ubuntu: apt-get install libfaketime; or set {ENV_LIBRARY})"
    )


def environment(library: Path, offset_file: Path, fake_monotonic: bool) -> dict[str, str]:
    """Environment for a process whose wall clock follows `offset_file`.

    libfaketime fakes CLOCK_MONOTONIC (and _RAW, _COARSE, BOOTTIME) as well unless told not to,
    and then those clocks return the faked *wall* time, so they jump with every skew, backwards
    too. Drills keep them real by default so timers and timeouts inside the target behave, and
    only the wall clock jumps.
    """
    env = {
        "LD_PRELOAD": str(library),
        "FAKETIME_TIMESTAMP_FILE": str(offset_file),
        "FAKETIME_NO_CACHE": "1",
    }
    if not fake_monotonic:
        env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
    return env


def offset_line(offset: float, rate: float | None) -> str:
    """The file's line for a shift in seconds and an optional rate: `+90`, `-299.4 x1.002`."""
    line = f"{offset:+.6f}".rstrip("0").rstrip(".")
    return line if rate is None else f"{line} x{rate!r}"


def has_rate(line: str) -> bool:
    """libfaketime's own test: any `x` in the line sets a rate."""
    return "x" in line


def clock_offset(offset: float, rate: float, origin: float | None, now: float) -> float:
    """The offset to write so the clock reads real time + `offset` now and runs at `rate` from here.

    libfaketime computes origin + written + (now - origin) * rate, with `origin` the wall time it
    started in the process; without a known origin the shift is off by its age * (rate - 1).
    """
    if origin is None:
        return offset
    return offset - (now - origin) * (rate - 1.0)


def process_origin(pid: int) -> float | None:
    """Wall time the process started (libfaketime starts in its constructor, milliseconds later).

    /proc/<pid>/stat field 22 counts clock ticks from boot, on the CLOCK_BOOTTIME scale.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    ticks = int(stat[stat.rindex(")") + 2 :].split()[19])
    since_boot = ticks / os.sysconf("SC_CLK_TCK")
    return time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - since_boot)


def write_offset(offset_file: Path, line: str) -> None:
    """Replace the offset line whole, so a reader never sees half a line (or no file)."""
    replace_file(offset_file, line + "\n")


def read_offset(offset_file: Path) -> str:
    return offset_file.read_text(encoding="ascii").strip()
