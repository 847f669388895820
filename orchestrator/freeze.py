"""The global freeze of a machine: `drillctl freeze` stops every live run under a runs folder, and no run or game day
starts there until `drillctl unfreeze`.

The freeze is a file, `<runs-dir>/freeze.json` (reason, since, by), so it outlives the command and is seen by every
drillctl that uses the folder. Nothing polls it: `drillctl freeze` tells each live run through its control FIFO
(a `freeze REASON` request, as `drillctl abort` sends `abort REASON`), and waits for all of them at once; a new run
reads the file when it starts, a game day before each drill, and a run's watchdog whenever it wakes while faults
are in place (as a backstop: a run that does not stop on the request has its faults reverted by its watchdog).

No run slips through between the two: the freeze writes its file (fsynced) before it looks for control FIFOs, and a
run opens its control FIFO before it reads the file, so a run that starts meanwhile either finds the freeze or is
found by it. A freeze file that cannot be read still freezes: it is a brake, and a broken brake must not release.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.abort import FREEZE, AbortFailed, AbortSent, NotRunning, clean_reason, live_runs, request_stops
from orchestrator.bounded_io import read_file
from orchestrator.limits import FREEZE_FILE_BYTES, LimitExceeded
from orchestrator.model.freeze import Freeze

FREEZE_FILE = "freeze.json"


def freeze_path(runs_dir: Path) -> Path:
    return runs_dir / FREEZE_FILE


def new_freeze(reason: str, now: datetime) -> Freeze:
    """A freeze for `reason`, signed with who froze: user@host/pid."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a uid without a passwd entry (a container's)
        user = str(os.getuid())
    return Freeze(clean_reason(reason), now, f"{user}@{socket.gethostname()}/{os.getpid()}")


def read_freeze(runs_dir: Path) -> Freeze | None:
    """The freeze that holds on `runs_dir`, or None. A file that cannot be read is a freeze saying so."""
    path = freeze_path(runs_dir)
    try:
        return Freeze.from_json(json.loads(read_file(path, FREEZE_FILE_BYTES)))
    except FileNotFoundError:
        return None
    except (OSError, LimitExceeded, ValueError, RecursionError) as e:
        with contextlib.suppress(OSError):
            since = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            return Freeze(f"{path} cannot be read ({e}); it still freezes until removed", since, "unknown")
        return None  # gone while we read it: unfrozen meanwhile


def is_frozen(runs_dir: Path) -> bool:
    """For the watchdog, which only needs to know: one stat."""
    return freeze_path(runs_dir).exists()


@dataclass(frozen=True)
class Frozen:
    """What `freeze` did."""

    freeze: Freeze
    """The freeze that holds: this one, or an earlier one that is kept."""
    already: bool
    stopped: list[AbortSent]
    """Each live run told to stop, whether it ended within the wait, and how long it took."""
    failed: list[AbortFailed]
    """Live runs that could not be told (another user's run, a FIFO that is full)."""


def freeze(runs_dir: Path, reason: str, wait: float, now: datetime) -> Frozen:
    """Freeze `runs_dir` (idempotent: an earlier freeze and its reason are kept) and stop every live run there,
    waiting up to `wait` seconds for all of them to roll back and write their reports."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    held, already = _write_once(runs_dir, new_freeze(reason, now))
    stopped, failed = [], []
    for outcome in request_stops(live_runs(runs_dir), FREEZE, held.reason, wait):
        if isinstance(outcome, AbortSent):
            stopped.append(outcome)
        elif not isinstance(outcome, NotRunning):  # a FIFO left by a dead run: its watchdog settles it
            failed.append(outcome)
    return Frozen(held, already, stopped, failed)


def unfreeze(runs_dir: Path) -> Freeze | None:
    """Lift the freeze; returns the one it cleared (None: there was none)."""
    held = read_freeze(runs_dir)
    try:
        freeze_path(runs_dir).unlink()
    except FileNotFoundError:
        return None
    _sync_dir(runs_dir)
    return held


def _write_once(runs_dir: Path, wanted: Freeze) -> tuple[Freeze, bool]:
    """Write the freeze file unless one exists (a link cannot replace a file: of two freezes at once, one wins);
    returns the freeze that holds and whether it was there already."""
    path = freeze_path(runs_dir)
    temporary = runs_dir / f".{FREEZE_FILE}.{os.getpid()}.tmp"
    with temporary.open("w", encoding="utf-8") as f:
        json.dump(wanted.to_json(), f)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    try:
        for _ in range(2):  # a second try only if an unfreeze removed the one we found in between
            try:
                os.link(temporary, path)
            except FileExistsError:
                if (held := read_freeze(runs_dir)) is not None:
                    return held, True
                continue
            _sync_dir(runs_dir)
            return wanted, False
        raise OSError(f"{path} keeps appearing and vanishing: another drillctl freezes and unfreezes it")
    finally:
        temporary.unlink()


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def freeze_lines(where: str, held: Freeze, already: bool) -> list[str]:
    """What `drillctl freeze` says of one place it froze (a runs folder, a cluster's ConfigMap)."""
    if already:
        return [f"{where}: already {held.describe()} (kept)"]
    return [f"{where}: {held.describe()}"]


def stopped_lines(frozen: Frozen, status_of: Callable[[Path], str]) -> list[str]:
    """Each run the freeze stopped, how it ended (`status_of` its run directory) and after how long."""
    lines = [
        f"  stopped {s.run_dir}: {status_of(s.run_dir)} after {s.waited:.3f}s"
        if s.ended
        else f"  NOT STOPPED {s.run_dir}: still running after {s.waited:.3f}s"
        for s in frozen.stopped
    ]
    lines += [f"  COULD NOT TELL {e}" for e in frozen.failed]
    return lines or ["  no run was running"]


def frozen_json(runs_dir: Path, frozen: Frozen, status_of: Callable[[Path], str]) -> dict[str, object]:
    return {
        "runs_dir": str(runs_dir),
        "freeze": frozen.freeze.to_json(),
        "already_frozen": frozen.already,
        "stopped": [
            {
                "run_dir": str(s.run_dir),
                "ended": s.ended,
                "waited": round(s.waited, 6),
                "status": status_of(s.run_dir) if s.ended else None,
            }
            for s in frozen.stopped
        ],
        "failed": [str(e) for e in frozen.failed],
    }
