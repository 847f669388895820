"""A game day's globs and drills within GAMEDAY_GLOB_ENTRIES and GAMEDAY_DRILLS: a glob that would walk the
whole filesystem or a symlink loop is refused at its line and field in well under a second, and the walk finds
what glob.glob finds."""

from __future__ import annotations

import glob as stdlib_glob
from pathlib import Path

import pytest

from orchestrator.bounded_io import glob
from orchestrator.errors import SpecError
from orchestrator.gameday.plan import load_gameday
from orchestrator.limits import GAMEDAY_DRILLS, GAMEDAY_GLOB_ENTRIES, LimitExceeded
from tests.bounds import bounded_said
from tests.gameday.test_plan import HEAD, good_drill
from tests.support import write


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for folder in ("a", "a/b", "a/b/c", "d", ".hidden", "a/.dot"):
        (tmp_path / folder).mkdir()
    for name in ("x.yaml", "a/y.yaml", "a/b/z.yml", "a/b/c/w.yaml", "d/v.txt", ".hidden/h.yaml", "a/.dot/i.yaml"):
        (tmp_path / name).write_text("")
    (tmp_path / "a" / ".e.yaml").write_text("")
    (tmp_path / "a" / "b" / "up").symlink_to(tmp_path / "d")
    return tmp_path


@pytest.mark.parametrize(
    "pattern",
    [
        "*.yaml",
        "**/*.yaml",
        "**/*.y*ml",
        "a/*/*.yml",
        "a/**",
        "**",
        "a/b/?.yml",
        "[ad]/*",
        "a/.*",
        "**/.dot/*",
        "a/b/up/*",
        "nothing/*",
        "x.yaml/*",
        "../*/x.yaml",
    ],
)
def test_the_bounded_walk_finds_what_glob_finds(tree: Path, pattern: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree / "a")  # for "../*/x.yaml": relative to the folder, not to the working directory
    expected = sorted(stdlib_glob.glob(pattern, root_dir=tree, recursive=True))
    assert sorted(set(glob(tree, pattern, GAMEDAY_GLOB_ENTRIES, "here"))) == expected


def test_a_walk_over_its_bound_is_refused(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `**` looks at the entries of every visible folder (4 at the top, 4 in a, 3 in a/b, 1 in a/b/c, 1 in d,
    # 1 in a/b/up: d again by another path), and `*.yaml` at those of each folder `**` found: twice 14.
    monkeypatch.setenv(GAMEDAY_GLOB_ENTRIES.env, "28")
    assert len(glob(tree, "**/*.yaml", GAMEDAY_GLOB_ENTRIES, "here")) == 3
    monkeypatch.setenv(GAMEDAY_GLOB_ENTRIES.env, "27")
    with pytest.raises(LimitExceeded, match="the directory entries a game day's glob looks at is over the limit of 27"):
        glob(tree, "**/*.yaml", GAMEDAY_GLOB_ENTRIES, "here")


def load_issues(path: Path) -> list[tuple[int | None, str, str]]:
    try:
        load_gameday(path)
    except SpecError as e:
        return [(i.line, i.field, i.message) for i in e.issues]
    return []


def test_a_glob_over_the_whole_filesystem_is_refused_at_its_line_and_a_symlink_loop_ends(tmp_path: Path) -> None:
    (tmp_path / "loop").mkdir()
    (tmp_path / "loop" / "again").symlink_to(tmp_path / "loop")
    path = tmp_path / "gameday.yaml"
    path.write_text(HEAD + "  drills:\n    - '/**/*.yaml'\n")
    ((line, field, message),) = bounded_said(load_issues, path, seconds=20, memory_mib=256)
    assert (line, field) == (7, "spec.drills[0]")
    assert "the directory entries a game day's glob looks at is over the limit of 20,000" in message
    assert GAMEDAY_GLOB_ENTRIES.env in message
    path.write_text(HEAD + "  drills:\n    - 'loop/**/*.yaml'\n")  # goes round until the path is too long
    assert bounded_said(load_issues, path, seconds=20, memory_mib=256) == [
        (7, "spec.drills[0]", "'loop/**/*.yaml' matches no drill file")
    ]


def test_drills_just_under_the_bound_are_loaded_and_just_over_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "drills").mkdir()
    for n in range(4):
        write(tmp_path / "drills", good_drill(f"d{n}"), f"d{n}.yaml")
    path = tmp_path / "gameday.yaml"
    path.write_text(HEAD + "  drills: ['drills/*.yaml']\n")
    monkeypatch.setenv(GAMEDAY_DRILLS.env, "4")
    assert len(load_gameday(path).drills) == 4
    monkeypatch.setenv(GAMEDAY_DRILLS.env, "3")
    ((line, field, message),) = load_issues(path)
    assert (line, field) == (6, "spec.drills[0]")
    assert message.startswith("the drills of a game day is over the limit of 3 drills (4 drills)")
