"""`drillctl serve`'s pages with hostile text in every field they show: nothing becomes markup, nothing breaks.

Drill names, labels, probe names, errors, fault descriptions and stop reasons are free text (labels and
errors come from anywhere), so each goes through the index, the trend page and the live page.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.history.model import DrillSeries, RunRecord, Series
from orchestrator.live_status import SCHEMA
from orchestrator.model.timeline import Sample, SampleLog
from orchestrator.serve.live import ProbeWindows, parse_live, snapshot
from orchestrator.serve.pages import DrillRow, GameDayRow, RunningRun, index_page, live_page, trend_page
from tests.reporting.test_html import parse
from tests.reporting.test_renderers_fuzz import ALLOWED_TAGS, assert_no_markup_from, hostile

T0 = datetime(2026, 5, 1, tzinfo=UTC)
SERVE_TAGS = ALLOWED_TAGS | {"nav", "polyline", "details", "summary", "form", "input", "label", "button", "script"}
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def live_document(s: list[str]) -> dict[str, object]:
    doc = {
        "schema": SCHEMA,
        "run_id": s[0],
        "drill": s[1],
        "drill_file": s[2],
        "drill_sha256": None,
        "pid": 1,
        "started_at": s[3],
        "t0_monotonic": 1.0,
        "phase": s[4],
        "phases": [{"name": "baseline", "at": 0.0}, {"name": s[4], "at": None}],
        "faults": {s[5]: {"type": s[6], "state": "injected", "what": s[7], "injected_at": 1.0, "reverted_at": None}},
        "stop": s[2],
    }
    log = SampleLog()
    for k in range(30):
        error = None if k % 3 else s[(k + 3) % 8]
        log.append(Sample(s[k % 2] or "p", k * 0.1, "baseline", k % 3 != 0, 0.01, 0.001, error))
    windows = ProbeWindows(log)
    windows.update()
    slas = [{"name": s[3], "type": s[4], "state": "pending", "measured": s[5], "threshold": "1s", "detail": s[6]}]
    return snapshot(parse_live(json.dumps(doc).encode()), windows, slas, s[7], 3.0, "running")


@FUZZ
@given(strings=st.lists(hostile, min_size=8, max_size=8))
def test_the_live_page_keeps_every_text_as_text(strings: list[str]) -> None:
    document = live_document(strings)
    html = live_page(strings[0], document, "c" * 64, "n0nce")
    assert_no_markup_from(html, SERVE_TAGS, styles=1)
    assert html.count("<script") == 1 and html.count("</script>") == 1, "no text closes or opens a script"
    json.dumps(document)  # what each event carries: plain JSON


@FUZZ
@given(strings=st.lists(hostile, min_size=6, max_size=6))
def test_the_index_and_trend_pages_keep_names_and_labels_as_text(strings: list[str]) -> None:
    drill = strings[0] or "d"
    runs = [
        RunRecord(
            run_id=f"{strings[1]}-{i}",
            drill=drill,
            started_at=T0 + timedelta(hours=i),
            finished_at=T0 + timedelta(hours=i, seconds=30),
            status="passed" if i % 2 else "failed",
            verdict=strings[2] if i == 0 else ("PASS" if i % 2 else "FAIL"),
            labels={strings[3]: strings[4], "release": strings[5]},
        )
        for i in range(3)
    ]
    index = index_page(
        [RunningRun(strings[1], drill, strings[2], strings[3])],
        [GameDayRow(strings[4], strings[5], strings[0], strings[1])],
        [DrillRow(drill, 3, strings[2], strings[3])],
        runs,
        {runs[0].run_id},
        strings[5],
    )
    assert_no_markup_from(index, SERVE_TAGS, styles=1)
    assert "<script" not in index
    series = DrillSeries(
        drill=drill,
        run_ids=tuple(r.run_id for r in runs),
        started_at=tuple(r.started_at for r in runs),
        statuses=tuple(r.status for r in runs),
        verdicts=tuple(r.verdict for r in runs),
        figures=(Series(f"sla {strings[3]}", "measured", "s", (1.0, None, 2.0)),),
    )
    trends = trend_page(series, {runs[2].run_id})
    assert_no_markup_from(trends, SERVE_TAGS, styles=1)
    assert len([t for t in parse(trends).tables if t]) == 1


def test_a_script_tag_in_a_name_stays_text_in_every_page() -> None:
    evil = "</script><script>alert(1)</script><img src=x onerror=alert(1)>"
    html = live_page(evil, live_document([evil] * 8), "c", "n")
    assert evil not in html and html.count("<script") == 1
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in html


def test_a_folder_name_that_is_no_utf8_still_links_and_renders() -> None:
    name = b"run-\xff".decode("utf-8", "surrogateescape")
    html = index_page([RunningRun(name, "d", "fault", "now")], [], [], [], set(), "\ud800 lone")
    assert '<a href="/runs/run-%FF/live">' in html
    assert html.encode("utf-8", "replace")
