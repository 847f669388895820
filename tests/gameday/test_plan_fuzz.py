"""Hostile game-day files: the example game day mutated in structure, edited as text, and given alias chains.

Every one must load or be rejected with a SpecError whose issues name the game day (or a drill file
it names) and a line where there is one, within the fuzz budget (tests/fuzzing.py). Then the fixed
cases: a game-day alias bomb, a 50 MB game day, a game day naming a drill that is a bomb.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.gameday.plan import load_gameday
from orchestrator.limits import SPEC_FILE_BYTES, YAML_EXPANDED_NODES
from tests.fuzzing import FUZZ, alias_chain, alias_chains, edit_text, issues, loads_or_rejects_clearly, mutated
from tests.support import DRILLCTL, ROOT

EXAMPLE = ROOT / "drills" / "gamedays" / "release-rehearsal.yaml"
HEAD = "apiVersion: drillctl.dev/v1\nkind: GameDay\nmetadata:\n  name: weekly\nspec:\n  drills: [../examples/*.yaml]\n"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project's drills and runbooks: the example game day's drills load from beside it."""
    root = tmp_path_factory.mktemp("gameday-fuzz")
    shutil.copytree(ROOT / "runbooks", root / "runbooks")
    shutil.copytree(ROOT / "drills", root / "drills")
    return root / "drills" / "gamedays"


def test_the_unmutated_example_loads_in_the_fuzz_folder(folder: Path) -> None:
    """The mutants start from a game day that loads, so a rejection is the mutation's doing."""
    path = folder / "example.yaml"
    path.write_text(EXAMPLE.read_text(), encoding="utf-8")
    assert loads_or_rejects_clearly(load_gameday, path, elsewhere=True) == "ok"


@FUZZ
@given(data=st.data())
def test_mutated_game_days_load_or_are_rejected_clearly(folder: Path, data: st.DataObject) -> None:
    path = folder / "mutant.yaml"
    path.write_text(mutated(EXAMPLE, data), encoding="utf-8")
    loads_or_rejects_clearly(load_gameday, path, elsewhere=True)


@FUZZ
@given(data=st.data())
def test_text_edits_of_the_game_day_load_or_are_rejected_clearly(folder: Path, data: st.DataObject) -> None:
    path = folder / "edited.yaml"
    path.write_text(edit_text(EXAMPLE.read_text(), data), encoding="utf-8", errors="surrogatepass")
    loads_or_rejects_clearly(load_gameday, path, elsewhere=True)


@FUZZ
@given(aliases=alias_chains, data=st.data())
def test_alias_chains_in_the_game_day_load_or_are_rejected_within_budget(
    folder: Path, aliases: str, data: st.DataObject
) -> None:
    lines = EXAMPLE.read_text().splitlines(keepends=True)
    at = data.draw(st.integers(min_value=0, max_value=len(lines)))
    path = folder / "aliases.yaml"
    path.write_text("".join(lines[:at]) + aliases + "".join(lines[at:]), encoding="utf-8")
    loads_or_rejects_clearly(load_gameday, path, elsewhere=True)


def test_a_game_day_alias_bomb_is_refused_fast(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(HEAD + alias_chain([9] * 9), encoding="utf-8")
    found = issues(load_gameday, path, seconds=2, memory_mib=64)
    assert [(i.file, i.line, i.field) for i in found] == [(str(path), 12, "l5[1]")]
    assert YAML_EXPANDED_NODES.env in found[0].message


def test_a_50_mb_game_day_is_refused_without_being_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as f:
        f.write(HEAD.encode())
        f.truncate(50_000_000)
    found = issues(load_gameday, path, seconds=2, memory_mib=32)
    assert [(i.file, i.line) for i in found] == [(str(path), None)] and SPEC_FILE_BYTES.env in found[0].message


def test_a_drill_bomb_named_by_a_game_day_is_refused_at_the_drill(tmp_path: Path) -> None:
    (tmp_path / "bombs").mkdir()
    drill = tmp_path / "bombs" / "bomb.yaml"
    drill.write_text(alias_chain([9] * 9), encoding="utf-8")
    path = tmp_path / "names-a-bomb.yaml"
    path.write_text(HEAD.replace("../examples/*.yaml", "bombs/bomb.yaml"), encoding="utf-8")
    found = issues(load_gameday, path, seconds=2, memory_mib=64)
    assert [(i.file, i.line, i.field) for i in found] == [(str(drill), 6, "l5[1]")]


def test_drillctl_gameday_plan_refuses_the_bomb_in_seconds(tmp_path: Path) -> None:
    path = tmp_path / "bomb-plan.yaml"
    path.write_text(HEAD + alias_chain([9] * 9), encoding="utf-8")
    started = time.monotonic()
    result = subprocess.run([DRILLCTL, "gameday", "plan", str(path)], capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert f"error: {path}:12: l5[1]: " in result.stderr and YAML_EXPANDED_NODES.env in result.stderr
    assert elapsed < 10, f"{elapsed:.1f}s"  # about 1 s on a loaded 2-core machine; unbounded, over a minute
