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
print(json.dumps({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}), file=sys.stderr)
"""


def imported_by(*argv: str) -> tuple[int, set[str]]:
    """The exit code of `drillctl ARGV` and the top-level modules it had imported by its end."""
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
