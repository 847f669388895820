"""Reading /proc: every process's files in one scan."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path


def proc_files(name: str) -> Iterator[tuple[int, bytes]]:
    """(pid, /proc/<pid>/<name>) of every process whose file can still be read: one scan of /proc."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            yield int(entry.name), (entry / name).read_bytes()
        except OSError:
            continue
