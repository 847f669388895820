"""Two real runs of one drill, shared by the report tests: `drillctl run` with a private
toxiproxy-server, the demo upstream as a real process, and a real network.down fault.

The runs differ only in how long the upstream is cut off, so the second one breaches the
recovery SLA (and quotes its runbook) and is a regression of the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.browser import browser, trap  # noqa: F401  (fixtures of the browser tests)
from tests.support import proxied_upstream_drill, run, run_dirs, write

RUNBOOK = """\
# Orders

## Overview

Owned by the orders team.

## Slow recovery

1. Check the connection pool of the API: `pool_size` and `pool_timeout`.
2. Restart the API if the pool does not drain within 1 minute.

## Errors

Look at the logs.
"""


@dataclass(frozen=True)
class Runs:
    quick: Path
    """The upstream cut off for 400ms: every SLA passes."""
    slow: Path
    """The same drill with a 1500ms cut: the recovery SLA fails."""
    folder: Path


def _document(outage: str) -> dict[str, object]:
    return proxied_upstream_drill(
        "report-drill",
        interval="50ms",
        probe_timeout="500ms",
        phases={"baseline": "500ms", "fault": "2s", "recovery": "5s"},
        faults=[
            {
                "name": "cut",
                "type": "network.down",
                "proxy": "up",
                "start": "200ms",
                "duration": outage,
                "runbook": "runbooks/orders.md#slow-recovery",
            }
        ],
        slas=[
            {
                "name": "stock-recovers",
                "type": "recovery_window",
                "from": "fault_start",
                "max": "1s",
                "stable_for": "300ms",
                "runbook": "runbooks/orders.md#slow-recovery",
            },
            {"name": "baseline-errors", "type": "error_rate", "phase": "baseline", "max": 0.5},
            {"name": "baseline-latency", "type": "latency", "probe": "stock", "phase": "baseline", "p99": "400ms"},
        ],
    )


def _run(folder: Path, name: str, outage: str) -> Path:
    path = write(folder, _document(outage), f"{name}.yaml")
    runs = folder / "runs" / name
    result = run("run", str(path), "--runs-dir", str(runs), "--quiet")
    assert result.returncode in (0, 1), result.stdout + result.stderr
    (run_dir,) = run_dirs(runs)
    return run_dir


@pytest.fixture(scope="session")
def real_runs(toxiproxy_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    folder = tmp_path_factory.mktemp("report-runs")
    (folder / "runbooks").mkdir()
    (folder / "runbooks" / "orders.md").write_text(RUNBOOK, encoding="utf-8")
    return Runs(quick=_run(folder, "quick", "400ms"), slow=_run(folder, "slow", "1500ms"), folder=folder)
