"""What a runs folder holds, as the server lists it: runs under way, game days, and `serve.json`.

`serve.json` is how a game day knows a server is watching its runs folder: the server writes it (atomically,
mode 0600) when it starts listening and removes it when it stops; `serving_url` gives its address while the
process that wrote it lives. It holds no token.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from orchestrator.abort import CONTROL
from orchestrator.bounded_io import read_file
from orchestrator.errors import DrillError
from orchestrator.files import replace_file
from orchestrator.gameday.report import GAMEDAY_FILE
from orchestrator.limits import LIVE_STATUS_BYTES, SPEC_FILE_BYTES, LimitExceeded
from orchestrator.live_status import FILE_NAME as LIVE_FILE
from orchestrator.model.spec import DrillSpec
from orchestrator.serve.live import LiveDoc, LiveFormatError, parse_live
from orchestrator.serve.pages import GameDayRow, RunningRun

SERVE_FILE = "serve.json"
GAMEDAYS_LISTED = 50


def run_dir_of(runs_dir: Path, name: str) -> Path | None:
    """The folder `name` directly under the runs folder, or None for anything else (a path, `..`, a dot file)."""
    if not name or name.startswith(".") or "/" in name or "\\" in name or "\0" in name:
        return None
    folder = runs_dir / name
    return folder if folder.is_dir() else None


def live_doc(run_dir: Path) -> LiveDoc | None:
    try:
        return parse_live(read_file(run_dir / LIVE_FILE, LIVE_STATUS_BYTES))
    except (OSError, LimitExceeded, LiveFormatError):
        return None


def running(runs_dir: Path) -> list[RunningRun]:
    """Runs whose control FIFO is still there (it goes once the report is written), newest first."""
    found = []
    with os.scandir(runs_dir) as entries:
        for entry in entries:
            if entry.is_dir() and os.path.exists(os.path.join(entry.path, CONTROL)):
                doc = live_doc(Path(entry.path))
                if doc is not None:
                    found.append(RunningRun(entry.name, doc.drill, doc.phase, doc.started_at))
    return sorted(found, key=lambda r: r.started_at, reverse=True)


def gamedays(runs_dir: Path) -> list[GameDayRow]:
    """Game-day folders (`gameday-<name>-<time>`) with their gameday.json, newest first."""
    from orchestrator.reporting.document import ReportFormatError, read_document

    names = sorted((e.name for e in os.scandir(runs_dir) if e.name.startswith("gameday-") and e.is_dir()), reverse=True)
    rows = []
    for name in names:
        path = runs_dir / name / GAMEDAY_FILE
        if not path.is_file():
            continue
        try:
            doc = read_document(path)
            rows.append(GameDayRow(name, str(doc["gameday"]), str(doc["status"]), str(doc["started_at"])))
        except (ReportFormatError, KeyError, TypeError):
            rows.append(GameDayRow(name, "?", "unreadable", ""))
        if len(rows) >= GAMEDAYS_LISTED:
            break
    return rows


def load_spec(drill_file: str, sha256: str | None) -> DrillSpec:
    """The drill a run was started from, if its file still reads as it did then (DrillError saying why not)."""
    from orchestrator.loading import load_drill

    path = Path(drill_file)
    try:
        data = read_file(path, SPEC_FILE_BYTES)
    except (OSError, LimitExceeded) as e:
        raise DrillError(f"the drill file {path} cannot be read: {e}") from e
    if sha256 is None or hashlib.sha256(data).hexdigest() != sha256:
        raise DrillError(f"the drill file {path} changed since the run started")
    return load_drill(path).spec


def write_serving(runs_dir: Path, url: str) -> Path:
    path = runs_dir / SERVE_FILE
    replace_file(path, json.dumps({"url": url, "pid": os.getpid()}), 0o600)
    return path


def remove_serving(runs_dir: Path) -> None:
    """Only our own file: a second server on the same folder may have replaced it."""
    path = runs_dir / SERVE_FILE
    try:
        if json.loads(read_file(path, LIVE_STATUS_BYTES)).get("pid") == os.getpid():
            path.unlink()
    except (OSError, LimitExceeded, ValueError, AttributeError):
        return


def serving_url(runs_dir: Path) -> str | None:
    """The address of the `drillctl serve` watching this runs folder, if one is."""
    try:
        doc = json.loads(read_file(runs_dir / SERVE_FILE, LIVE_STATUS_BYTES))
        url, pid = doc["url"], doc["pid"]
    except (OSError, LimitExceeded, ValueError, KeyError, TypeError):
        return None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or not isinstance(pid, int):
        return None
    return url if process_alive(pid) else None


def process_alive(pid: int) -> bool:
    """Whether a process of this host has that pid (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
