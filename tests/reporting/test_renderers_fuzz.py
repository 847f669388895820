"""Hostile strings through every renderer: HTML and script tags, Markdown and table syntax, XML
breakers, control characters, very long names and non-UTF-8 bytes (as a probe decodes a target's
output with surrogateescape). No renderer may crash, and none may let the text become markup.

report.md is rendered by markdown-it (CommonMark with tables, raw HTML allowed, as on GitHub) and
the result parsed; report.junit.xml is parsed as XML; report.json must read back to itself.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from orchestrator.model.alerts import (
    AlertChange,
    AlertObservations,
    DeliveredAlert,
    Delivery,
    DetectionStep,
    DetectionTimeline,
)
from orchestrator.model.timeline import FaultMark, PhaseMark, Sample, Timeline
from orchestrator.model.verdict import ProbeStats, RecoveryWindow, SlaVerdict
from orchestrator.reporting.html import render_html, write_html
from orchestrator.reporting.json_report import from_json, read_report, to_json, write_json
from orchestrator.reporting.junit import render_junit, write_junit
from orchestrator.reporting.markdown import render_markdown, write_markdown
from orchestrator.reporting.report import DrillInfo, Report, RunbookSection, RunFacts
from tests.reporting.test_html import parse

HOSTILE = [
    "<script>alert(1)</script>",
    "</td></tr></table><img src=x onerror=alert(1)>",
    "\"'><svg onload=alert(1)>",
    "]]><![CDATA[<x>",
    "`|`|**bold**|<b>",
    "[link](javascript:alert(1)) ![i](http://example.com/x.png)",
    "\x00\x01\x1b[31mred\x7f",
    "\udcff\udcfe not utf-8",
    "&amp;&lt;&#x3C;script&#x3E;",
    "line\n\n# heading\n| a | b |\n|---|---|",
    "<!-- comment --> <style>body{display:none}</style>",
    "x" * 5000 + "<script>",
]
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "p", "span", "code", "section",
    "table", "thead", "tbody", "tr", "th", "td", "div", "a", "b", "blockquote", "figure", "figcaption", "svg",
    "rect", "text", "line", "path", "g", "circle", "ul", "li", "dl", "dt", "dd",
}  # fmt: skip
MARKDOWN_TAGS = {"h2", "h3", "p", "table", "thead", "tbody", "tr", "th", "td", "code", "a", "strong", "ul", "li",
                 "blockquote", "details", "summary"}  # fmt: skip

hostile = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=40),
    st.binary(max_size=40).map(lambda b: b.decode("utf-8", "surrogateescape")),
    st.lists(st.sampled_from(HOSTILE), min_size=1, max_size=3).map("".join),
)


def make_report(s: list[str], run_dir: Path) -> Report:
    """A failed run with every free-text field taken from `s`."""
    probe, sla, fault, book = s[0] or "p", s[1] or "sla", s[2] or "f", "runbooks/x.md#a"
    samples = tuple(
        Sample(probe, round(k * 0.1, 9), "fault" if 5 <= k < 15 else "baseline", k % 4 != 1, 0.01, 0.001, s[k % 8])
        for k in range(20)
    )
    timeline = Timeline(
        interval=0.1,
        probes=(probe,),
        samples=samples,
        phases=(PhaseMark("baseline", 0.0, 0.5), PhaseMark("fault", 0.5, 1.5), PhaseMark("recovery", 1.5, 2.0)),
        faults=(
            FaultMark(
                fault,
                s[3],
                {s[4]: s[5]},
                0.5,
                1.0,
                0.5,
                1.0,
                runbook=book,
                error=s[6],
                touched=(s[0], s[5]),
                seed=3,
                revert_notes=(s[6], s[7]),
            ),
        ),
        end=2.0,
        alerts=AlertObservations(
            s[0],
            0.25,
            8,
            1,
            0.3,
            (AlertChange(s[1], "firing", 0.8, 0.55, {s[2]: s[3]}, {"runbook_url": s[4]}),),
            (Delivery(0.9, s[5], s[6], (DeliveredAlert(s[7], {s[0]: s[1]}, {s[2]: s[3]}),)),),
            (),
            s[4],
            warnings=(s[5], s[6]),
        ),
    )
    started = datetime(2026, 1, 2, tzinfo=UTC)
    return Report(
        drill=DrillInfo(s[7], run_dir / s[0].replace("/", "_")[:50], s[1], book, 7, 2),
        facts=RunFacts(
            s[2][:50],
            run_dir,
            started,
            started + timedelta(seconds=3),
            "completed",
            s[3],
            True,
            [s[4]],
            [s[5]],
            None,
            {s[6]: 1},
        ),
        timeline=timeline,
        verdicts=[
            SlaVerdict(sla, "recovery_window", False, 1.5, 1.0, "s", s[7], book, 0.1, (probe,), None, 0.5, 2.0, s[0]),
            SlaVerdict(s[3] or "lat", "latency", True, 0.01, 0.1, "s", s[4], None, None, (probe,), "baseline"),
        ],
        windows=[RecoveryWindow(fault, 0.1, 1.0, 1.2, 0.1, 0.8, 2.0, "after_revert")],
        stats=[ProbeStats(probe, "fault", 10, 3, 0.01, 0.01, 0.01, 0.01, 0.01, fault)],
        runbooks={book: RunbookSection(book, run_dir / "runbooks" / "x.md", "a", s[5], s[6] + "\n" + s[7])},
        environment={"drillctl": s[0], "python": "3", "platform": s[1], "hostname": s[2]},
        detection=[
            DetectionTimeline(
                fault,
                s[1],
                (
                    DetectionStep("impact", 0.6, 0.1),
                    DetectionStep("firing", 0.8, 0.25),
                    DetectionStep("resolved", None),
                ),
                s[4],
                s[7],
                book,
            )
        ],
    )


class Tags(HTMLParser):
    """Every start tag with its attributes, as a browser's tokenizer would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def assert_no_markup_from(html: str, allowed: set[str], styles: int) -> None:
    parse(html)  # well formed: every tag closed where it was opened
    tags = Tags()
    tags.feed(html)
    tags.close()
    names = [t for t, _ in tags.tags]
    assert set(names) <= allowed, set(names) - allowed
    assert names.count("style") == styles
    for tag, attrs in tags.tags:
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        for key in ("href", "src", "xlink:href", "action"):
            url = attrs.get(key)
            assert url is None or url.startswith(("../", "#")) or ":" not in url.split("/")[0], (tag, attrs)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(strings=st.lists(hostile, min_size=8, max_size=8))
@example(strings=["`|`|**bold**|<b>", "<s>", "\r", "<s>", "<s>", "<s>", "<s>", "<s>"])  # a blank name opened a span
@example(strings=["<s>"] * 7 + ["="])  # a runbook line "=" under another made the quote a setext heading
@example(strings=["<s>"] * 7 + ["-"])  # ... and "-" a list item
@example(strings=["<s>"] * 7 + ["1. one"])  # ... and "1." an ordered list
def test_no_renderer_crashes_or_lets_text_become_markup(strings: list[str], tmp_path: Path) -> None:
    report = make_report(strings, tmp_path)

    assert_no_markup_from(render_html(report), ALLOWED_TAGS, styles=1)

    rendered = MarkdownIt("commonmark", {"html": True}).enable("table").render(render_markdown(report))
    assert_no_markup_from(f"<div>{rendered}</div>", MARKDOWN_TAGS | {"div"}, styles=0)
    table_rows = [r for t in parse(f"<div>{rendered}</div>").tables for r in t]
    assert {len(r) for r in table_rows if r} <= {7, 9, 10}, "no pipe in a name splits a table cell"

    suite = ET.fromstring(render_junit(report))
    assert [c.get("name") for c in suite.iter("testcase")] == [v.name for v in report.verdicts] or any(
        not v.name.isprintable() for v in report.verdicts
    )
    failure = suite.find("testcase/failure")
    assert failure is not None and "threshold 1.000s" in (failure.get("message") or "")

    document = json.loads(json.dumps(to_json(report)))
    assert to_json(from_json(document, tmp_path)) == document

    write_html(report, tmp_path / "report.html")
    write_markdown(report, tmp_path / "report.md")
    write_junit(report, tmp_path / "report.junit.xml")
    write_json(report, tmp_path / "report.json")
    ET.parse(tmp_path / "report.junit.xml")
    assert to_json(read_report(tmp_path)) == document
