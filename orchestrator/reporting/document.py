"""Reading report.json as JSON, within REPORT_BYTES and REPORT_VALUES, with nothing heavy imported:
`drillctl report` and `compare` refuse a file over a bound before loading the renderers."""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

from orchestrator.bounded_io import read_file
from orchestrator.limits import REPORT_BYTES, REPORT_VALUES, LimitExceeded


class ReportFormatError(ValueError):
    """report.json is missing, not JSON, of another schema, or not shaped as this version writes it."""


def report_path(run_dir: Path) -> Path:
    """The report.json of a run directory, or the file itself."""
    return run_dir / "report.json" if run_dir.is_dir() else run_dir


def _decoded(data: bytes) -> Any:
    """json.loads, with the cyclic garbage collector paused: a report is millions of new containers, none of
    them garbage, and each collection pass over them would cost more than the whole decoding."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return json.loads(data.decode("utf-8"))
    finally:
        if enabled:
            gc.enable()


def read_document(path: Path) -> Any:
    """The decoded JSON of a report.json file; ReportFormatError saying why it cannot be one."""
    try:
        data = read_file(path, REPORT_BYTES)
        REPORT_VALUES.check(data.count(b",") + 1, str(path))
        return _decoded(data)
    except LimitExceeded as e:
        raise ReportFormatError(str(e)) from e
    except OSError as e:
        raise ReportFormatError(f"cannot read {path}: {e.strerror or e}") from e
    except ValueError as e:
        raise ReportFormatError(f"{path} is not JSON: {e}") from e
    except RecursionError as e:
        raise ReportFormatError(f"{path} is not a report: its JSON is nested deeper than Python can read") from e
