"""Hostile drill files: random bytes, and the example drills mutated in keys, values, types and structure.

Every one must load or be rejected with a SpecError whose issues name the file (and, where the
file has one, the line and the field); never another exception, never a traceback from
`drillctl validate`, and never a YAML tag that builds Python objects.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import SpecError
from orchestrator.loading import load_drill
from tests.support import DRILLCTL, ROOT

EXAMPLES = sorted((ROOT / "drills" / "examples").glob("*.yaml"))
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A drill folder with the project's runbooks beside it, so valid mutants resolve their runbook links."""
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(ROOT / "runbooks", root / "runbooks")
    (root / "drills").mkdir()
    yield root / "drills"


def _loads_or_rejects_clearly(path: Path) -> str:
    """'ok' or 'rejected'; anything else raised fails the test."""
    try:
        load_drill(path)
    except SpecError as e:
        assert e.issues, "a SpecError lists its issues"
        for issue in e.issues:
            assert issue.file == str(path)
            assert issue.message.strip(), issue
            assert issue.line is None or issue.line >= 1, issue
        return "rejected"
    return "ok"


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["0s", "-1s", "1e9h", "250ms", "auto", "http://user:pass@h:1", "runbooks/x.md#y", "::", "~"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _paths(node: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [here]
    if isinstance(node, dict):
        for k, v in node.items():
            found += _paths(v, (*here, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += _paths(v, (*here, i))
    return found


def _mutate(document: Any, data: st.DataObject) -> Any:
    """One structural mutation at a random place: delete, replace, retype, rename, duplicate, wrap."""
    mutant = copy.deepcopy(document)
    path = data.draw(st.sampled_from(_paths(mutant)[1:]))
    parent = mutant
    for part in path[:-1]:
        parent = parent[part]
    key = path[-1]
    action = data.draw(st.sampled_from(["delete", "replace", "rename", "duplicate", "wrap", "stringify"]))
    if action == "delete":
        del parent[key]
    elif action == "replace":
        parent[key] = data.draw(values)
    elif action == "rename" and isinstance(parent, dict):
        parent[data.draw(st.text(max_size=12))] = parent.pop(key)
    elif action == "duplicate" and isinstance(parent, list):
        parent.append(copy.deepcopy(parent[key]))
    elif action == "wrap":
        parent[key] = [parent[key]]
    else:
        parent[key] = str(parent[key])
    return mutant


@FUZZ
@given(example=st.sampled_from(EXAMPLES), data=st.data())
def test_mutated_examples_load_or_are_rejected_clearly(example: Path, folder: Path, data: st.DataObject) -> None:
    document = yaml.safe_load(example.read_text())
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        document = _mutate(document, data)
    path = folder / "mutant.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")
    _loads_or_rejects_clearly(path)


@FUZZ
@given(example=st.sampled_from(EXAMPLES), data=st.data())
def test_text_edits_of_examples_load_or_are_rejected_clearly(example: Path, folder: Path, data: st.DataObject) -> None:
    text = example.read_text()
    at = data.draw(st.integers(min_value=0, max_value=len(text)))
    cut = data.draw(st.integers(min_value=0, max_value=40))
    junk = data.draw(st.text(alphabet=st.sampled_from(list(":-[]{}&*!|>'\"#%@` \n\t\x00\ufeffab1")), max_size=8))
    path = folder / "edited.yaml"
    path.write_text(text[:at] + junk + text[at + cut :], encoding="utf-8", errors="surrogatepass")
    _loads_or_rejects_clearly(path)


@FUZZ
@given(blob=st.binary(max_size=2000))
def test_random_bytes_are_rejected_clearly(blob: bytes, folder: Path) -> None:
    path = folder / "bytes.yaml"
    path.write_bytes(blob)
    _loads_or_rejects_clearly(path)


@pytest.mark.parametrize(
    "text",
    [
        "!!python/object/apply:os.system ['touch /tmp/drillctl-pwned']\n",
        "apiVersion: !!python/name:os.system drillctl.dev/v1\n",
        "a: &a [*a]\n",
        "a: &x [1]\nb: *x\n" * 3 + "kind: Drill\n",
        "- " * 5000 + "x\n",
        "{" * 2000,
        "key: value\nkey: value\n",
    ],
    ids=["python-tag", "python-name", "recursive-alias", "aliases", "deep-list", "deep-flow", "duplicate-keys"],
)
def test_injection_and_pathological_yaml_are_rejected(text: str, folder: Path) -> None:
    path = folder / "hostile.yaml"
    path.write_text(text, encoding="utf-8")
    assert _loads_or_rejects_clearly(path) == "rejected"
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
    assert _loads_or_rejects_clearly(path) == "ok"
