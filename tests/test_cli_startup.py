"""What the commands that touch nothing import: start-up is most of their time (bench/cli_startup.py).

Checked as module names, not as time: an import that creeps onto these paths (a driver, a client
library, structlog with asyncio) fails here on any machine, however loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

QUICKSTART = str(ROOT / "drills" / "examples" / "quickstart.yaml")
RUNTIME_ONLY = {
    "asyncio",
    "structlog",
    "aiohttp",
    "requests",
    "toxiproxy",
    "kubernetes",
    "tenacity",
    "prometheus_client",
}
"""What a run needs and validate or --help never should."""

_PROBE = """
import json, sys
sys.argv = ["drillctl", *json.loads(sys.argv[1])]
from orchestrator.cli import main
try:
    main()
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def imported_by(*argv: str) -> tuple[int, set[str]]:
    """The exit code of `drillctl ARGV` and the modules it had imported by its end (packages and their modules)."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(argv)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    answer = json.loads(done.stderr.strip().splitlines()[-1])
    return answer["code"], set(answer["modules"])


@pytest.mark.parametrize(
    "argv",
    [("validate", QUICKSTART), ("validate", str(ROOT / "drills")), ("validate", "--output", "json", QUICKSTART)],
    ids=["one", "folder", "json"],
)
def test_validate_imports_nothing_a_run_needs(argv: tuple[str, ...]) -> None:
    code, modules = imported_by(*argv)
    assert code in (0, None)
    assert {"pydantic", "yaml"} <= modules, "the probe must see what validate really imports"
    assert not modules & RUNTIME_ONLY


def test_an_invalid_drill_is_reported_with_the_same_few_imports(tmp_path: Path) -> None:
    drill = tmp_path / "bad.yaml"
    drill.write_text("apiVersion: drillctl.dev/v1\nkind: Drill\nmetadata: {name: Not-Valid}\nspec: {}\n")
    code, modules = imported_by("validate", str(drill))
    assert code == 2
    assert not modules & RUNTIME_ONLY


def test_help_imports_neither_pydantic_nor_yaml() -> None:
    code, modules = imported_by("--help")
    assert code in (0, None)
    assert "click" in modules
    assert not modules & (RUNTIME_ONLY | {"pydantic", "yaml"})


def test_history_imports_what_it_reads_and_shows_and_no_more(tmp_path: Path) -> None:
    """Not the baselines, the verdicts or statistics (41 M of the 98 M instructions its own imports once took,
    bench/RESULTS.md section 10)."""
    from orchestrator.history.sqlite import SqliteStore
    from tests.history.support import record

    store = SqliteStore(tmp_path / "history.sqlite")
    store.record([record(i, 0.5) for i in range(3)])
    store.close()
    code, modules = imported_by("history", "orders", "--history", str(tmp_path / "history.sqlite"))
    assert code in (0, None)
    assert {"sqlite3", "orchestrator.history.sqlite", "orchestrator.history.render"} <= modules
    unneeded = {"statistics", "orchestrator.history.trends", "orchestrator.model.verdict"}
    assert not modules & (RUNTIME_ONLY | {"pydantic", "yaml"} | unneeded)
