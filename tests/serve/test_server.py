"""The server's guards against a real `drillctl serve`: the token, loopback Host names, the abort form's checks,
the stream cap, and a stream that follows a run directory to its end.

The run here is a hand-made run directory (live.json and a real control FIFO this test reads): what each
guard lets through reaches the FIFO, what it refuses never does. A real drill, aborted from the page, is the
browser test's.
"""

from __future__ import annotations

import json
import os
import re
import select
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from orchestrator.history.sqlite import SqliteStore
from orchestrator.live_status import SCHEMA
from orchestrator.serve.runs import SERVE_FILE, serving_url
from tests.history.support import record
from tests.serve.support import serving

RUN = "orders-20260101T000000Z"


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    run_dir = runs / RUN
    run_dir.mkdir(parents=True)
    drill = tmp_path / "missing.yaml"
    live = {
        "schema": SCHEMA,
        "run_id": RUN,
        "drill": "orders",
        "drill_file": str(drill),
        "drill_sha256": None,
        "pid": os.getpid(),
        "started_at": "2026-01-01T00:00:00+00:00",
        "t0_monotonic": time.monotonic(),
        "phase": "fault",
        "phases": [{"name": "baseline", "at": 0.0}, {"name": "fault", "at": 1.0}],
        "faults": {"cut": {"type": "network.down", "state": "injected", "what": "proxy up disabled"}},
        "stop": None,
    }
    (run_dir / "live.json").write_text(json.dumps(live))
    return runs


@pytest.fixture
def fifo(runs_dir: Path) -> Iterator[int]:
    """The run's control FIFO, read end held by the test (as a live run holds it)."""
    path = runs_dir / RUN / "control"
    os.mkfifo(path, 0o600)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    yield fd
    os.close(fd)


def received(fd: int, timeout: float = 5.0) -> bytes:
    ready, _, _ = select.select([fd], [], [], timeout)
    return os.read(fd, 65536) if ready else b""


def test_without_a_token_only_loopback_names_are_answered(runs_dir: Path) -> None:
    with serving(runs_dir) as url:
        assert requests.get(url + "/", timeout=10).status_code == 200
        port = url.rsplit(":", 1)[1]
        for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
            assert requests.get(url + "/", headers={"Host": host}, timeout=10).status_code == 200
        rebound = requests.get(url + "/", headers={"Host": f"drills.example.com:{port}"}, timeout=10)
        assert rebound.status_code == 421, "a page whose name was rebound to 127.0.0.1 gets nothing"
        assert serving_url(runs_dir) == url + "/", "serve.json names the server while it serves"
    assert not (runs_dir / SERVE_FILE).exists() and serving_url(runs_dir) is None


def test_with_a_token_every_request_needs_it(runs_dir: Path) -> None:
    with serving(runs_dir, "--token", "s3cret") as url:
        page = url + f"/runs/{RUN}/live"
        assert requests.get(page, timeout=10).status_code == 401
        assert requests.get(page, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401
        assert requests.get(page, headers={"Authorization": "Bearer s3cret"}, timeout=10).status_code == 200
        with requests.Session() as browser:
            first = browser.get(page + "?token=s3cret", timeout=10, allow_redirects=False)
            assert first.status_code == 303 and first.headers["Location"] == f"/runs/{RUN}/live"
            assert "HttpOnly" in first.headers["Set-Cookie"] and "SameSite=Strict" in first.headers["Set-Cookie"]
            assert browser.get(page, timeout=10).status_code == 200, "the cookie carries the token from then on"


def test_the_abort_form_reaches_the_run_only_from_its_own_page_with_a_reason(runs_dir: Path, fifo: int) -> None:
    with serving(runs_dir) as url:
        page = requests.get(url + f"/runs/{RUN}/live", timeout=10)
        assert page.status_code == 200 and "script-src 'nonce-" in page.headers["Content-Security-Policy"]
        match = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text)
        assert match is not None
        csrf = match[1]
        target = url + f"/runs/{RUN}/abort"
        good = {"csrf": csrf, "reason": "db on fire", "confirm": "yes"}
        own = {"Origin": url}
        refused = [
            ({}, good, 403),  # no Origin: not a browser's form post of this page
            ({"Origin": "http://evil.example"}, good, 403),
            ({**own, "Sec-Fetch-Site": "cross-site"}, good, 403),
            (own, {**good, "csrf": "0" * 64}, 403),
            (own, {**good, "reason": "  "}, 400),
            (own, {k: v for k, v in good.items() if k != "confirm"}, 400),
            (own, {**good, "reason": "x" * 100_000}, 413),
        ]
        for headers, form, status in refused:
            answer = requests.post(target, data=form, headers=headers, timeout=10, allow_redirects=False)
            assert answer.status_code == status, (headers, {k: v[:20] for k, v in form.items()}, answer.text[:300])
        assert received(fifo, timeout=0.5) == b"", "nothing refused reached the run"
        done = requests.post(target, data=good, headers=own, timeout=10, allow_redirects=False)
        assert done.status_code == 303 and done.headers["Location"] == f"/runs/{RUN}/live"
        assert (
            received(fifo) == b"abort db on fire (drillctl serve)\n"
        )  # the FIFO's `VERB REASON` line, as `drillctl abort` sends


def test_streams_are_capped_and_follow_the_run_to_its_end(runs_dir: Path, fifo: int) -> None:
    with serving(runs_dir, env={"DRILLCTL_LIMIT_SERVE_CLIENTS": "1"}) as url:
        events = url + f"/runs/{RUN}/events"
        with requests.get(events, stream=True, timeout=20) as stream:
            lines = stream.iter_lines()
            assert next(lines) == b"event: state"
            state = json.loads(next(lines).removeprefix(b"data: "))
            assert state["drill"] == "orders" and [f["name"] for f in state["faults"] if f["active"]] == ["cut"]
            assert state["sla_note"].startswith("SLAs are not judged live: the drill file")
            busy = requests.get(events, timeout=10)
            assert busy.status_code == 503 and "DRILLCTL_LIMIT_SERVE_CLIENTS" in busy.text
            os.unlink(runs_dir / RUN / "control")  # what a run does once its report is written
            rest = [line for line in lines if line]
        assert rest[-2] == b"event: finished", rest
        final = json.loads(rest[-1].removeprefix(b"data: "))
        assert final["state"] == "ended" and final["report"] is None


def test_the_game_day_index_links_to_the_server_while_one_serves(runs_dir: Path) -> None:
    from orchestrator.gameday.report import render_html
    from tests.gameday.test_report import drill, result

    with serving(runs_dir) as url:
        live = serving_url(runs_dir)
        html = render_html(replace(result([drill("a", "passed", 0)]), live_url=live))
    assert live == url + "/" and f'<a href="{url}/">' in html
    assert "Live:" not in render_html(result([drill("a", "passed", 0)]))


def test_a_trend_page_is_kept_until_the_history_or_its_reports_change(tmp_path: Path) -> None:
    """The server keeps a drill's page while the history's stamp holds; a run recorded meanwhile (by another
    process, as a finishing run records itself) and a report written for one of its last runs both show at once."""
    runs = tmp_path / "runs"
    store = SqliteStore(runs / "history.sqlite")
    store.record([record(i, 0.5 + i / 10) for i in range(3)])
    with serving(runs) as url:
        first = requests.get(url + "/drills/orders", timeout=10)
        assert first.status_code == 200 and "3 runs, 3 passed" in first.text
        assert requests.get(url + "/drills/orders", timeout=10).text == first.text
        store.record([record(3, 2.5)])
        later = requests.get(url + "/drills/orders", timeout=10).text
        assert "4 runs, 3 passed" in later and "orders-00003" in later
        assert '<a href="/files/orders-00003/report.html">' not in later
        (runs / "orders-00003").mkdir()
        (runs / "orders-00003" / "report.html").write_text("<html></html>")
        linked = requests.get(url + "/drills/orders", timeout=10).text
        assert '<a href="/files/orders-00003/report.html">' in linked
        index = requests.get(url + "/", timeout=10).text
        assert ">4<" in index and "orders-00003" in index
        store.record([record(4, 0.5)])
        assert "orders-00004" in requests.get(url + "/", timeout=10).text
    store.close()
