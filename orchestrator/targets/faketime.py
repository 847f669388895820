"""libfaketime plumbing: a process started with it preloaded reads its clock offset from a file.

drillctl rewrites that file to skew the clock while the process runs; FAKETIME_NO_CACHE makes
libfaketime re-read it on every clock call, so a change applies at once.
"""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.errors import PreflightError

LIBRARY_DIRS = (
    "/usr/lib/x86_64-linux-gnu/faketime",
    "/usr/lib/aarch64-linux-gnu/faketime",
    "/usr/lib/faketime",
    "/usr/local/lib/faketime",
)
ENV_LIBRARY = "DRILLCTL_LIBFAKETIME"
NO_SKEW = "+0"


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

    libfaketime fakes CLOCK_MONOTONIC as well unless told not to; drills keep it real by default so
    timers and timeouts inside the target behave, and only the wall clock jumps.
    """
    env = {
        "LD_PRELOAD": str(library),
        "FAKETIME_TIMESTAMP_FILE": str(offset_file),
        "FAKETIME_NO_CACHE": "1",
    }
    if not fake_monotonic:
        env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
    return env


def write_offset(offset_file: Path, spec: str) -> None:
    """Atomically replace the offset (`+90s`, `-300s x1.01`, `+0`), so a reader never sees half a line."""
    tmp = offset_file.with_suffix(".tmp")
    tmp.write_text(spec + "\n", encoding="ascii")
    os.replace(tmp, offset_file)


def read_offset(offset_file: Path) -> str:
    return offset_file.read_text(encoding="ascii").strip()
