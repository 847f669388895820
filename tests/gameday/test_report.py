"""The game-day report from hand-made results: verdict and exit code rules, escaping, JUnit merging."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from orchestrator.gameday.report import (
    DrillResult,
    GameDayResult,
    RecoveryFigure,
    render_html,
    render_junit,
    render_markdown,
)
from tests.reporting.test_html import parse
from tests.reporting.test_renderers_fuzz import MARKDOWN_TAGS, assert_no_markup_from, hostile

T0 = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


def result(drills: list[DrillResult], stop_reason: str | None = None, policy_stop: bool = False) -> GameDayResult:
    return GameDayResult(
        name="weekly",
        file=Path("/g/weekly.yaml"),
        report_dir=Path("/runs/gameday-weekly-x"),
        started_at=T0,
        finished_at=T0 + timedelta(minutes=3),
        drills=drills,
        stop_reason=stop_reason,
        policy_stop=policy_stop,
        forced=False,
        lease=None,
    )


def drill(name: str, status: str, code: int, **extra: object) -> DrillResult:
    return DrillResult(name=name, file=Path(f"/d/{name}.yaml"), status=status, exit_code=code, **extra)  # type: ignore[arg-type]


def test_the_most_severe_drill_decides_the_exit_code() -> None:
    assert result([drill("a", "passed", 0), drill("b", "passed", 0)]).exit_code == 0
    assert result([drill("a", "failed", 1), drill("b", "passed", 0)]).exit_code == 1
    assert result([drill("a", "failed", 1), drill("b", "aborted", 4), drill("c", "preflight", 3)]).exit_code == 4


def test_stopped_early_for_a_reason_other_than_the_policy_is_never_a_pass() -> None:
    lost = result([drill("a", "passed", 0), drill("b", "skipped", 0)], stop_reason="lease lost")
    assert lost.status == "stopped" and lost.exit_code == 3
    by_policy = result([drill("a", "failed", 1), drill("b", "skipped", 0)], "stop policy", policy_stop=True)
    assert by_policy.status == "failed" and by_policy.exit_code == 1


def test_free_text_is_escaped_in_html_and_links_are_relative() -> None:
    evil = drill(
        "a", "error", 4, reason="<script>alert(1)</script>", run_dir=Path("/runs/a-1"), started_at=T0, finished_at=T0
    )
    html = render_html(result([evil]))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="../a-1/report.html"' in html
    assert "[report](../a-1/report.md)" in render_markdown(result([evil]))


def test_junit_keeps_each_drill_suite_and_adds_one_for_drills_without_a_report() -> None:
    own = (
        "<?xml version='1.0' encoding='utf-8'?>\n"
        '<testsuite name="drill.a" tests="2" failures="1" errors="0">'
        '<testcase classname="drill.a" name="x"/><testcase classname="drill.a" name="y"><failure message="m"/>'
        "</testcase></testsuite>"
    )
    suites = ET.fromstring(
        render_junit(
            result([drill("a", "failed", 1, junit=own), drill("b", "preflight", 3, reason="no toxiproxy")])
        ).split("\n", 1)[1]
    )
    assert [s.get("name") for s in suites] == ["drill.a", "drill.b"]
    assert suites.get("tests") == "3" and suites.get("failures") == "1" and suites.get("errors") == "1"
    error = suites[1].find("testcase/error")
    assert error is not None and error.get("message") == "no toxiproxy"


@settings(max_examples=60, deadline=None)
@given(strings=st.lists(hostile, min_size=4, max_size=4))
def test_hostile_names_and_reasons_neither_break_the_index_table_nor_become_markup(strings: list[str]) -> None:
    name, reason, sla, fault = strings
    drills = [
        drill(
            name or "n",
            "failed",
            1,
            reason=reason or "r",
            run_dir=Path("/runs/a-1"),
            slas_failed=[sla or "s"],
            recovery=[RecoveryFigure(fault or "f", 0.1, 0.2, 0.3)],
        ),
        drill("plain", "passed", 0),
    ]
    rendered = MarkdownIt("commonmark", {"html": True}).enable("table").render(render_markdown(result(drills)))
    assert_no_markup_from(f"<div>{rendered}</div>", MARKDOWN_TAGS | {"div", "h1"}, styles=0)
    (index,) = parse(f"<div>{rendered}</div>").tables
    assert [len(row) for row in index] == [7, 7, 7], "no pipe, backtick or newline splits or ends a row"
    if (name or "n").isprintable():  # markdown-it turns NUL into U+FFFD; other text reads back as it was
        # whitespace collapsed; a name of only whitespace is a code span of one space (an empty one opens a span)
        assert [row[1] for row in index[1:]] == [" ".join((name or "n").split()) or " ", "plain"]


def test_a_pipe_a_backtick_and_html_in_a_drill_stay_text() -> None:
    evil = drill(
        "a|b`c<b>",
        "aborted",
        4,
        reason="x | y <script>alert(1)</script> `z`",
        run_dir=Path("/runs/a-1"),
        slas_failed=["p99|fast"],
    )
    markdown = render_markdown(result([evil]))
    rendered = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    (index,) = parse(f"<div>{rendered}</div>").tables
    assert index[1][1] == "a|b`c<b>"
    assert index[1][2] == "ABORTED: x | y <script>alert(1)</script> `z`"
    assert index[1][3] == "0/1 passed (failed: p99|fast)"
    assert "<script>" not in rendered and "[report](../a-1/report.md)" in markdown
