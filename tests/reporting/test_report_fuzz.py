"""Hostile report.json documents: a real report mutated in keys, values, types and structure, and random
bytes. Each is read back, within a time and memory budget, into a Report that renders, or refused with a
ReportFormatError (which `drillctl report`/`compare` print, exiting 2); never another exception."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.reporting.html import render_html
from orchestrator.reporting.json_report import ReportFormatError, read_report, to_json
from orchestrator.reporting.junit import render_junit
from orchestrator.reporting.markdown import render_markdown
from tests.bounds import bounded_said
from tests.fuzzing import mutations
from tests.reporting.test_renderers_fuzz import make_report

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
DOCUMENT = to_json(make_report(["probe", "sla", "fault", "delay", "k", "v", "error", "drill"], Path("/run")))


def read_and_render(path: Path) -> str:
    """'rendered', or raises what reading raised (ReportFormatError is the one allowed)."""
    try:
        report = read_report(path)
    except ReportFormatError as e:
        assert str(e).strip()
        return "refused"
    render_markdown(report)
    render_junit(report)
    render_html(report)
    return "rendered"


def check(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "report.json"
    path.write_bytes(data)
    assert bounded_said(read_and_render, path, seconds=5, memory_mib=128) in ("rendered", "refused")


@FUZZ
@given(data=st.data())
def test_a_mutated_report_is_read_or_refused_clearly(tmp_path: Path, data: st.DataObject) -> None:
    check(tmp_path, json.dumps(mutations(DOCUMENT, data)).encode())


@FUZZ
@given(blob=st.binary(max_size=2000))
def test_random_bytes_are_refused_clearly(tmp_path: Path, blob: bytes) -> None:
    check(tmp_path, blob)
