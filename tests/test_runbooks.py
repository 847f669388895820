"""Runbook links: GitHub-style heading anchors, and resolving `runbooks/<file>.md#<anchor>` upward."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.runbooks import RunbookIndex, RunbookLink, headings, slugify
from tests.budget import run_bounded


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Overview", "overview"),
        ("Inventory outage", "inventory-outage"),
        ("  Padded heading  ", "padded-heading"),
        ("What's next?", "whats-next"),
        ("Step 1: restart (carefully)!", "step-1-restart-carefully"),
        ("Use `kubectl drain`", "use-kubectl-drain"),
        ("p99 > 150ms / orders", "p99--150ms--orders"),
        ("Already-dashed name", "already-dashed-name"),
        ("snake_case_stays", "snake_case_stays"),
        ("Two  spaces", "two--spaces"),
        ("Ünïcode Lëtters", "ünïcode-lëtters"),
        ("C# & C++", "c--c"),
    ],
)
def test_slugify_matches_github_anchors(heading: str, anchor: str) -> None:
    assert slugify(heading) == anchor


def test_headings_maps_anchor_to_text_at_every_level() -> None:
    markdown = "# Title\n\ntext\n\n## Inventory outage\n\n###### Deep one\n"
    assert headings(markdown) == {"title": "Title", "inventory-outage": "Inventory outage", "deep-one": "Deep one"}


def test_headings_strips_a_closing_hash_sequence() -> None:
    assert headings("## Outage ##\n") == {"outage": "Outage"}


def test_headings_keeps_a_hash_that_is_part_of_the_text() -> None:
    # CommonMark: a closing sequence must be preceded by a space, so `C#` keeps its `#`.
    assert headings("## Fix C#\n") == {"fix-c": "Fix C#"}


def test_headings_needs_a_space_after_the_hashes() -> None:
    assert headings("#hashtag\n####### seven is too many\n## Real\n") == {"real": "Real"}


def test_repeated_headings_get_numbered_suffixes() -> None:
    markdown = "## Rollback\n\n## Rollback\n\n## Rollback\n\n## Other\n"
    assert list(headings(markdown)) == ["rollback", "rollback-1", "rollback-2", "other"]


def test_headings_inside_fences_are_ignored() -> None:
    markdown = "## Before\n```bash\n# not a heading: a shell comment\n```\n~~~\n## also not a heading\n~~~\n## After\n"
    assert headings(markdown) == {"before": "Before", "after": "After"}


def test_a_fenced_heading_does_not_take_the_unsuffixed_anchor() -> None:
    markdown = "```\n## Restart\n```\n## Restart\n"
    assert headings(markdown) == {"restart": "Restart"}


def test_a_heading_with_a_long_run_of_spaces_is_read_in_linear_time() -> None:
    """The regular expression headings were read with took 2 s for 8,000 spaces and grew as the square."""
    text = "a" + " " * 100_000 + "b"
    assert run_bounded(headings, f"## {text}  ##\n", seconds=2).value == {slugify(text): text}


# --- RunbookIndex -------------------------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_index_resolves_from_the_drills_folder_upward(tmp_path: Path) -> None:
    runbook = _write(tmp_path / "runbooks" / "db.md", "# DB\n\n## Failover\n")
    drill = _write(tmp_path / "drills" / "team" / "db.yaml", "")
    index = RunbookIndex.for_drill(drill)

    root = tmp_path.resolve()
    assert index.roots[:3] == [root / "drills" / "team", root / "drills", root]
    assert index.problem("runbooks/db.md#failover") is None
    assert index.resolve("runbooks/db.md#failover") == RunbookLink(
        ref="runbooks/db.md#failover", path=runbook.resolve(), anchor="failover", heading="Failover"
    )


def test_the_nearest_runbooks_folder_wins(tmp_path: Path) -> None:
    _write(tmp_path / "runbooks" / "db.md", "## Failover\n")
    near = _write(tmp_path / "drills" / "runbooks" / "db.md", "## Local failover\n")
    index = RunbookIndex.for_drill(_write(tmp_path / "drills" / "db.yaml", ""))

    assert index.resolve("runbooks/db.md#local-failover").path == near.resolve()
    # the upper file is shadowed, so its section is not found
    assert index.problem("runbooks/db.md#failover") is not None


def test_a_runbook_below_the_drill_folder_is_not_found(tmp_path: Path) -> None:
    _write(tmp_path / "drills" / "sub" / "runbooks" / "db.md", "## Failover\n")
    index = RunbookIndex.for_drill(_write(tmp_path / "drills" / "db.yaml", ""))
    assert index.problem("runbooks/db.md#failover") == (
        "runbook 'runbooks/db.md' not found in the drill's folder or any folder above it"
    )


def test_problem_names_a_missing_file(tmp_path: Path) -> None:
    index = RunbookIndex.for_drill(_write(tmp_path / "d.yaml", ""))
    message = index.problem("runbooks/drillctl-test-nowhere.md#x")
    assert (
        message == "runbook 'runbooks/drillctl-test-nowhere.md' not found in the drill's folder or any folder above it"
    )


def test_problem_lists_the_sections_that_exist(tmp_path: Path) -> None:
    _write(tmp_path / "runbooks" / "ops.md", "# Ops\n## Outage\n## Latency\n")
    index = RunbookIndex.for_drill(_write(tmp_path / "d.yaml", ""))
    assert index.problem("runbooks/ops.md#outages") == (
        "runbook 'runbooks/ops.md' has no section #outages (sections: latency, ops, outage)"
    )


def test_problem_lists_at_most_eight_sections(tmp_path: Path) -> None:
    _write(tmp_path / "runbooks" / "big.md", "".join(f"## Section {c}\n" for c in "abcdefghij"))
    index = RunbookIndex.for_drill(_write(tmp_path / "d.yaml", ""))
    message = index.problem("runbooks/big.md#nope")
    assert message is not None
    assert "section-h" in message
    assert "section-i" not in message


def test_problem_says_none_when_the_runbook_has_no_headings(tmp_path: Path) -> None:
    _write(tmp_path / "runbooks" / "empty.md", "just prose\n```\n# fenced\n```\n")
    index = RunbookIndex.for_drill(_write(tmp_path / "d.yaml", ""))
    assert (
        index.problem("runbooks/empty.md#fenced")
        == "runbook 'runbooks/empty.md' has no section #fenced (sections: none)"
    )


def test_resolve_raises_key_error_for_a_broken_link(tmp_path: Path) -> None:
    _write(tmp_path / "runbooks" / "ops.md", "## Outage\n")
    index = RunbookIndex.for_drill(_write(tmp_path / "d.yaml", ""))
    with pytest.raises(KeyError):
        index.resolve("runbooks/ops.md#latency")
    with pytest.raises(KeyError):
        index.resolve("runbooks/missing-drillctl-test.md#outage")


def test_duplicate_heading_anchors_resolve_to_their_own_section(tmp_path: Path) -> None:
    _write(tmp_path / "runbooks" / "ops.md", "## Check\nfirst\n## Check\nsecond\n")
    index = RunbookIndex.for_drill(_write(tmp_path / "d.yaml", ""))
    assert index.resolve("runbooks/ops.md#check-1").heading == "Check"
    assert index.problem("runbooks/ops.md#check-2") is not None


def test_a_runbook_that_is_not_utf8_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "ops.md").write_bytes(b"## Outage\n\xff\n")
    index = RunbookIndex.for_drill(_write(tmp_path / "d.yaml", ""))
    message = index.problem("runbooks/ops.md#outage")
    assert message is not None and message.startswith("runbook 'runbooks/ops.md' cannot be read: ")
