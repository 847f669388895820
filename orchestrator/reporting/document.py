"""Reading report.json as JSON, within REPORT_BYTES, with nothing heavy imported: `drillctl report` and
`compare` refuse a file over the bound in the time Python takes to start, before loading the renderers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator.bounded_io import read_file
from orchestrator.limits import REPORT_BYTES, LimitExceeded


class ReportFormatError(ValueError):
    """report.json is missing, not JSON, of another schema, or not shaped as this version writes it."""


def report_path(run_dir: Path) -> Path:
    """The report.json of a run directory, or the file itself."""
    return run_dir / "report.json" if run_dir.is_dir() else run_dir


def read_document(path: Path) -> Any:
    """The decoded JSON of a report.json file; ReportFormatError saying why it cannot be one."""
    try:
        return json.loads(read_file(path, REPORT_BYTES).decode("utf-8"))
    except LimitExceeded as e:
        raise ReportFormatError(str(e)) from e
    except OSError as e:
        raise ReportFormatError(f"cannot read {path}: {e.strerror or e}") from e
    except ValueError as e:
        raise ReportFormatError(f"{path} is not JSON: {e}") from e
    except RecursionError as e:
        raise ReportFormatError(f"{path} is not a report: its JSON is nested deeper than Python can read") from e
