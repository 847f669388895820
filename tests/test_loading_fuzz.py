"""Hostile drill files: random bytes, and the example drills mutated in keys, values, types and structure.

Every one must load or be rejected with a SpecError whose issues name the file (and, where the
file has one, the line and the field); never another exception, never a traceback from
`drillctl validate`, and never a YAML tag that builds Python objects. Each is loaded under a time
and memory budget (tests/fuzzing.py), alias chains up to 12**9 nodes expanded among them.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.errors import SpecError
from orchestrator.loading import _COMPOSER, Lines, _NotPlain, _plain, load_drill
from tests.fuzzing import FUZZ, alias_chain, alias_chains, edit_text, loads_or_rejects_clearly, mutated
from tests.support import DRILLCTL, ROOT

EXAMPLES = sorted((ROOT / "drills" / "examples").glob("*.yaml"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A drill folder with the project's runbooks beside it, so valid mutants resolve their runbook links."""
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(ROOT / "runbooks", root / "runbooks")
    (root / "drills").mkdir()
    yield root / "drills"


@FUZZ
@given(example=st.sampled_from(EXAMPLES), data=st.data())
def test_mutated_examples_load_or_are_rejected_clearly(example: Path, folder: Path, data: st.DataObject) -> None:
    path = folder / "mutant.yaml"
    path.write_text(mutated(example, data), encoding="utf-8")
    loads_or_rejects_clearly(load_drill, path)


@FUZZ
@given(example=st.sampled_from(EXAMPLES), data=st.data())
def test_text_edits_of_examples_load_or_are_rejected_clearly(example: Path, folder: Path, data: st.DataObject) -> None:
    path = folder / "edited.yaml"
    path.write_text(edit_text(example.read_text(), data), encoding="utf-8", errors="surrogatepass")
    loads_or_rejects_clearly(load_drill, path)


EDITS = ["&a ", "*a", "<<: *a", "!!int ", "!!str ", "!!binary ", "x", "~", "'q'", "1e3", "on", "? ", "[]", "{}"]


@FUZZ
@given(example=st.sampled_from(EXAMPLES), data=st.data())
def test_the_fast_reading_builds_what_the_careful_one_builds(example: Path, data: st.DataObject) -> None:
    """`_plain` (no lines, for valid files) and `Lines.data` (lines kept) agree wherever the fast one answers,
    over example drills with anchors, aliases, merge keys, tags and duplicate keys put in."""
    text = example.read_text()
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        at = data.draw(st.integers(min_value=0, max_value=len(text)))
        text = text[:at] + data.draw(st.sampled_from(EDITS)) + text[at:]
    try:
        node = yaml.compose(text, Loader=_COMPOSER)
    except yaml.YAMLError:
        return
    if node is None:
        return
    lines = Lines(node, "edited.yaml")
    try:
        careful: object = lines.data()
    except SpecError:
        careful = "refused"
    try:
        fast: object = _plain(node, lines.scalars)
    except (_NotPlain, yaml.YAMLError, ValueError, TypeError, AttributeError):
        return
    assert fast == careful


@FUZZ
@given(blob=st.binary(max_size=2000))
def test_random_bytes_are_rejected_clearly(blob: bytes, folder: Path) -> None:
    path = folder / "bytes.yaml"
    path.write_bytes(blob)
    loads_or_rejects_clearly(load_drill, path)


@FUZZ
@given(example=st.sampled_from(EXAMPLES), aliases=alias_chains, data=st.data())
def test_alias_chains_in_examples_load_or_are_rejected_within_budget(
    example: Path, aliases: str, folder: Path, data: st.DataObject
) -> None:
    """Up to 9 levels of up to 12 aliases (12**9 nodes expanded) before, or instead of, a line of a drill."""
    lines = example.read_text().splitlines(keepends=True)
    at = data.draw(st.integers(min_value=0, max_value=len(lines)))
    replace = data.draw(st.booleans())
    path = folder / "aliases.yaml"
    path.write_text("".join(lines[:at]) + aliases + "".join(lines[at + replace :]), encoding="utf-8")
    loads_or_rejects_clearly(load_drill, path)


@pytest.mark.parametrize(
    "text",
    [
        "!!python/object/apply:os.system ['touch /tmp/drillctl-pwned']\n",
        "apiVersion: !!python/name:os.system drillctl.dev/v1\n",
        "a: &a [*a]\n",
        "a: &x [1]\nb: *x\n" * 3 + "kind: Drill\n",
        alias_chain([9] * 9),
        "- " * 5000 + "x\n",
        "{" * 2000,
        "key: value\nkey: value\n",
    ],
    ids=[
        "python-tag",
        "python-name",
        "recursive-alias",
        "aliases",
        "alias-bomb",
        "deep-list",
        "deep-flow",
        "duplicate-keys",
    ],
)
def test_injection_and_pathological_yaml_are_rejected(text: str, folder: Path) -> None:
    path = folder / "hostile.yaml"
    path.write_text(text, encoding="utf-8")
    assert loads_or_rejects_clearly(load_drill, path) == "rejected"
    assert not Path("/tmp/drillctl-pwned").exists()


def test_validate_never_prints_a_traceback(folder: Path) -> None:
    """The CLI over many hostile files at once: each is 'ok' or 'invalid' with located issues."""
    files = []
    for i, example in enumerate(EXAMPLES):
        text = example.read_text()
        for k, cut in enumerate(range(0, len(text), max(1, len(text) // 12))):
            path = folder / f"cli-{i}-{k}.yaml"
            path.write_text(text[:cut] + "\n  ]: {\n" + text[cut + 7 :], encoding="utf-8")
            files.append(path)
    (folder / "cli-bytes.yaml").write_bytes(b"\xff\xfe\x00garbage\x00")
    files.append(folder / "cli-bytes.yaml")
    result = subprocess.run(
        [DRILLCTL, "validate", *map(str, files)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if not line.startswith("  ")]
    assert len(lines) == len(files) and all(line.startswith(("ok ", "invalid ")) for line in lines)
    assert "cli-bytes.yaml" in result.stdout and result.stdout.count("invalid ") >= len(files) // 2


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.stem for e in EXAMPLES])
def test_unmutated_examples_load_in_the_fuzz_folder(example: Path, folder: Path) -> None:
    """The mutants start from drills that load, so a rejection is the mutation's doing."""
    path = folder / example.name
    path.write_text(example.read_text(), encoding="utf-8")
    assert loads_or_rejects_clearly(load_drill, path) == "ok"
