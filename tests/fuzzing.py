"""What the drill and game-day fuzz and bound tests share: hostile inputs, and loading them under a budget.

Each fuzz input is loaded in a forked child under `SECONDS` and `MEMORY_MIB` (tests/budget.py):
one load takes milliseconds and a few MB, so an input that costs more has found a missing bound.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from orchestrator.errors import SpecError, SpecIssue
from tests.budget import run_bounded

SECONDS = 5.0
MEMORY_MIB = 64
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

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


def _loads_or_rejects_clearly(load: Callable[[Path], object], path: Path, elsewhere: bool) -> str:
    try:
        load(path)
    except SpecError as e:
        assert e.issues, "a SpecError lists its issues"
        for issue in e.issues:
            assert issue.file == str(path) or (elsewhere and Path(issue.file).is_file()), issue
            assert issue.message.strip(), issue
            assert issue.line is None or issue.line >= 1, issue
        return "rejected"
    return "ok"


def loads_or_rejects_clearly(load: Callable[[Path], object], path: Path, elsewhere: bool = False) -> str:
    """'ok' or 'rejected', found in a child under the budget; anything else raised fails the test.

    A rejection's issues name `path`, or with `elsewhere` another file it names (a game day's drills).
    """
    outcome = run_bounded(_loads_or_rejects_clearly, load, path, elsewhere, seconds=SECONDS, memory_mib=MEMORY_MIB)
    if outcome.error is not None:
        raise outcome.error
    result: str = outcome.value
    return result


def _issues(load: Callable[[Path], object], path: Path) -> list[SpecIssue]:
    try:
        load(path)
    except SpecError as e:
        return e.issues
    return []


def issues(load: Callable[[Path], object], path: Path, seconds: float = 2.0, memory_mib: int = 64) -> list[SpecIssue]:
    """What loading `path` reports (nothing when it loads), found in a child under the given budget."""
    outcome = run_bounded(_issues, load, path, seconds=seconds, memory_mib=memory_mib)
    if outcome.error is not None:
        raise outcome.error
    found: list[SpecIssue] = outcome.value
    return found


def mutated(source: Path, data: st.DataObject) -> str:
    """`source` with one to three structural mutations, as YAML."""
    document = mutations(yaml.safe_load(source.read_text()), data)
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def mutations(document: Any, data: st.DataObject) -> Any:
    """`document` after one to three mutations (fewer if it runs out of parts)."""
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        if not isinstance(document, dict | list) or not document:
            break
        document = mutate(document, data)
    return document


def _paths(node: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [here]
    if isinstance(node, dict):
        for k, v in node.items():
            found += _paths(v, (*here, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += _paths(v, (*here, i))
    return found


def mutate(document: Any, data: st.DataObject) -> Any:
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


def edit_text(text: str, data: st.DataObject) -> str:
    """Up to 40 characters cut at a random place, and up to 8 of YAML's syntax (anchors and aliases too) put in."""
    at = data.draw(st.integers(min_value=0, max_value=len(text)))
    cut = data.draw(st.integers(min_value=0, max_value=40))
    junk = data.draw(st.text(alphabet=st.sampled_from(list(":-[]{}&*!|>'\"#%@` \n\t\x00\ufeffab1")), max_size=8))
    return text[:at] + junk + text[at + cut :]


def alias_chain(widths: list[int]) -> str:
    """Top-level keys l0, l1, ..., each a list of widths[n] aliases to the one before: 9 of 9 is an alias bomb."""
    lines = [f"l0: &l0 [{', '.join(['x'] * widths[0])}]"]
    for n in range(1, len(widths)):
        lines.append(f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * widths[n])}]")
    return "\n".join(lines) + "\n"


alias_chains = st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=9).map(alias_chain)
