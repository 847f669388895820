"""Bounds on drill files: an input just under each bound passes it, one just over is refused, fast.

Every case loads a real file in a forked child under a time and memory budget (tests/budget.py):
with a bound gone, the over case fails on its budget (or on the missing refusal) instead of
taking the machine down. A refusal names the bound's variable, and the file, line and field
where the bound was hit. Inputs are built at the default limits, except where an environment
override keeps them small.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.errors import SpecIssue
from orchestrator.limits import (
    RUNBOOK_FILE_BYTES,
    SPEC_FILE_BYTES,
    YAML_DEPTH,
    YAML_EXPANDED_NODES,
    YAML_LIST_ITEMS,
    YAML_MAPPING_KEYS,
    YAML_NODES,
    YAML_STRING_CHARS,
    Limit,
)
from orchestrator.loading import find_drills, load_drill
from tests.budget import run_bounded
from tests.fuzzing import alias_chain, issues
from tests.support import DRILLCTL, ROOT

QUICKSTART = ROOT / "drills" / "examples" / "quickstart.yaml"
DRILL_HEAD = "apiVersion: drillctl.dev/v1\nkind: Drill\n"


def refused_for(found: list[SpecIssue], limit: Limit) -> list[SpecIssue]:
    return [i for i in found if limit.env in i.message]


def write(folder: Path, text: str, name: str = "drill.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A drill folder with the project's runbooks, so the quickstart's links resolve."""
    shutil.copytree(ROOT / "runbooks", tmp_path / "runbooks")
    return tmp_path


def long_string(n: int) -> str:
    return DRILL_HEAD + f"metadata:\n  name: x\n  description: {'d' * n}\n"


def long_list(n: int) -> str:
    return DRILL_HEAD + f"spec:\n  faults: [{', '.join(['0'] * n)}]\n"


def big_mapping(n: int) -> str:
    return DRILL_HEAD + "spec:\n  env:\n" + "".join(f"    k{i}: 0\n" for i in range(n))


def nested_lists(levels: int) -> str:
    """`levels` levels of lists and mappings in all: the document and `spec` are two of them."""
    return DRILL_HEAD + "spec:\n  x: " + "[" * (levels - 2) + "]" * (levels - 2) + "\n"


def many_nodes(n: int) -> str:
    """`n` nodes written: the document, 3 keys and their values, 5 keys under spec with their lists, and items."""
    items = n - 1 - 6 - 10
    sizes = [10_000] * 4 + [items - 40_000]
    return DRILL_HEAD + "spec:\n" + "".join(f"  a{k}: [{', '.join(['0'] * size)}]\n" for k, size in enumerate(sizes))


def expanded_nodes(n: int) -> str:
    """`n` nodes once aliases are expanded: a list of 998, then 99 aliases to it, then a list that pads to n."""
    pad = n - (1 + (1 + 999) + (1 + 1 + 99 * 999) + 1 + 1)
    a = ", ".join(["0"] * 998)
    aliases = ", ".join(["*a"] * 99)
    return f"a: &a [{a}]\nb: [{aliases}]\np: [{', '.join(['0'] * pad)}]\n"


BOUNDS: list[tuple[Limit, Callable[[int], str], int, str]] = [
    (YAML_STRING_CHARS, long_string, 5, "metadata.description"),
    (YAML_LIST_ITEMS, long_list, 4, "spec.faults"),
    (YAML_MAPPING_KEYS, big_mapping, 4, "spec.env"),
    (YAML_DEPTH, nested_lists, 4, "spec.x" + "[0]" * (YAML_DEPTH.default - 2)),
    (YAML_NODES, many_nodes, 8, ""),  # over 64 KiB: counted on the event stream, which has lines only
    (YAML_EXPANDED_NODES, expanded_nodes, 3, "p"),
]


@pytest.mark.parametrize(("limit", "make"), [b[:2] for b in BOUNDS], ids=[b[0].name for b in BOUNDS])
def test_at_the_default_limit_the_bound_passes(limit: Limit, make: Callable[[int], str], folder: Path) -> None:
    found = issues(load_drill, write(folder, make(limit.default)), seconds=5, memory_mib=128)
    assert found, "the inputs are not drills: the schema rejects them once the bounds pass"
    assert not refused_for(found, limit)


@pytest.mark.parametrize(("limit", "make", "line", "field"), BOUNDS, ids=[b[0].name for b in BOUNDS])
def test_one_over_the_default_limit_is_refused_where_it_was_hit(
    limit: Limit, make: Callable[[int], str], line: int, field: str, folder: Path
) -> None:
    path = write(folder, make(limit.default + 1))
    found = issues(load_drill, path, seconds=5, memory_mib=128)
    assert [(i.file, i.line, i.field) for i in found] == [(str(path), line, field)]
    assert refused_for(found, limit), found
    assert f"over the limit of {limit.default:,} {limit.unit}" in found[0].message


def test_nodes_counted_on_the_graph_name_the_field(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A small file is not counted on the event stream: the count on the graph knows the field."""
    path = write(folder, "a: 1\nb:\n  - x\n  - y\n")  # 7 nodes: the document, 2 keys, 1, the list, 2 items
    monkeypatch.setenv(YAML_NODES.env, "7")
    assert not refused_for(issues(load_drill, path), YAML_NODES)
    monkeypatch.setenv(YAML_NODES.env, "6")
    found = issues(load_drill, path)
    assert [(i.line, i.field) for i in found] == [(2, "b")] and refused_for(found, YAML_NODES)


def test_the_alias_bomb_is_refused_fast_at_the_alias_that_ran_out(folder: Path) -> None:
    """9 levels of 9 aliases: 468 bytes, 490 million nodes expanded; unbounded, minutes and gigabytes."""
    path = write(folder, alias_chain([9] * 9))
    found = issues(load_drill, path, seconds=2, memory_mib=64)
    # l4 expands to 66,430 nodes: the second alias to it, in l5 on line 6, runs past 100,000.
    assert [(i.line, i.field) for i in found] == [(6, "l5[1]")]
    assert refused_for(found, YAML_EXPANDED_NODES)


def test_a_recursive_alias_is_refused(folder: Path) -> None:
    found = issues(load_drill, write(folder, "a: &a [1, *a]\n"))
    assert [(i.line, i.field, i.message) for i in found] == [
        (1, "a[1]", "malformed YAML: an alias refers to a node that contains it")
    ]


def test_a_drill_file_of_exactly_the_size_limit_loads(folder: Path) -> None:
    text = QUICKSTART.read_text()
    padding = SPEC_FILE_BYTES.default - len(text.encode())
    path = write(folder, text + ("#" * 99 + "\n") * (padding // 100) + "#" * (padding % 100))
    assert path.stat().st_size == SPEC_FILE_BYTES.default
    assert issues(load_drill, path, seconds=5) == []


def test_a_drill_file_one_byte_over_the_size_limit_is_refused(folder: Path) -> None:
    text = QUICKSTART.read_text()
    path = write(folder, text + "#" * (SPEC_FILE_BYTES.default + 1 - len(text.encode())))
    found = issues(load_drill, path)
    assert [(i.file, i.line, i.field) for i in found] == [(str(path), None, "")]
    assert f"({SPEC_FILE_BYTES.default + 1:,} bytes)" in found[0].message and refused_for(found, SPEC_FILE_BYTES)


def test_a_50_mb_file_is_refused_without_being_read(folder: Path) -> None:
    """32 MiB of budget: reading the whole file would need 50 MB for its bytes alone."""
    path = folder / "huge.yaml"
    with path.open("wb") as f:
        f.write(DRILL_HEAD.encode())
        f.truncate(50_000_000)
    found = issues(load_drill, path, seconds=2, memory_mib=32)
    assert len(found) == 1 and "(50,000,000 bytes)" in found[0].message and refused_for(found, SPEC_FILE_BYTES)
    assert run_bounded(find_drills, [folder], seconds=2, memory_mib=32).value == [path]


def test_a_runbook_at_the_size_limit_resolves_and_one_over_is_refused(folder: Path) -> None:
    drill = write(folder, QUICKSTART.read_text())
    runbook = folder / "runbooks" / "quickstart.md"
    text = runbook.read_text()
    runbook.write_text(text + "x" * (RUNBOOK_FILE_BYTES.default - len(text.encode())))
    assert issues(load_drill, drill) == []
    runbook.write_text(text + "x" * (RUNBOOK_FILE_BYTES.default + 1 - len(text.encode())))
    found = issues(load_drill, drill)
    assert [(i.line, i.field) for i in found][:1] == [(11, "metadata.runbook")]
    assert all(i.field.endswith("runbook") for i in found) and refused_for(found, RUNBOOK_FILE_BYTES) == found


def test_drillctl_validate_refuses_the_alias_bomb_in_seconds(folder: Path) -> None:
    path = write(folder, alias_chain([9] * 9), "bomb.yaml")
    started = time.monotonic()
    result = subprocess.run([DRILLCTL, "validate", str(path)], capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert f"{path}:6: l5[1]: " in result.stdout and YAML_EXPANDED_NODES.env in result.stdout
    assert elapsed < 10, f"{elapsed:.1f}s"  # about 1 s on a loaded 2-core machine; unbounded, over a minute


def test_drillctl_run_refuses_the_alias_bomb_before_creating_anything(folder: Path) -> None:
    path = write(folder, alias_chain([9] * 9), "bomb.yaml")
    runs = folder / "runs"
    result = subprocess.run(
        [DRILLCTL, "run", str(path), "--runs-dir", str(runs)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert f"error: {path}:6: l5[1]: " in result.stderr and not runs.exists()
