"""The live page in real headless Chromium, following a real drill: `drillctl run` (demo upstream behind the
test's Toxiproxy, a network.down then a network.latency fault) watched through a real `drillctl serve`.

It checks what the room would see: a sample on the page within a second of landing in the run (dated by the
run's own clock: t0 on CLOCK_MONOTONIC, which the test shares, plus the sample's at, lag and latency), each
fault shown while Toxiproxy holds it and gone once reverted, the SLA decided mid-run, the abort button
stopping the run with everything reverted, the index listing the run with its hostile label as text, and no
request leaving the server's origin (DevTools log, and the trap every other host name resolves to).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.recovery import unsettled
from tests.browser import Browser, Trap
from tests.fixtures.toxiproxy import ToxiproxyServer
from tests.serve.support import serving
from tests.support import DRILLCTL, ROOT, _env, proxied_upstream_drill, run_dirs, write

LABEL = "<img src=http://cdn.example.com/label.png>"
PROBE = """
const row = document.querySelector('#probes tr[data-probe="stock"]');
return row ? [Number(row.dataset.latestAt), Number(row.dataset.landed)] : null;
"""


def _drill(folder: Path) -> Path:
    document = proxied_upstream_drill(
        "live-drill",
        interval="100ms",
        probe_timeout="500ms",
        phases={"baseline": "1s", "fault": "50s", "recovery": "5s"},
        faults=[
            {"name": "cut", "type": "network.down", "proxy": "up", "start": "8s", "duration": "2s"},
            {"name": "slow", "type": "network.latency", "proxy": "up", "start": "14s", "duration": "30s"}
            | {"latency": "5ms"},
        ],
        slas=[{"name": "cut-recovers", "type": "recovery_window", "fault": "cut", "max": "2s", "stable_for": "300ms"}],
    )
    return write(folder, document, "live-drill.yaml")


def until(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)  # the page is polled through WebDriver: nothing to wait on
    return found


def test_the_live_page_follows_a_real_drill_and_aborts_it(
    toxiproxy: ToxiproxyServer, browser: Browser, trap: Trap, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    drill = _drill(tmp_path)
    argv = [DRILLCTL, "run", str(drill), "--runs-dir", str(runs), "--toxiproxy-url", toxiproxy.url, "--quiet"]
    with serving(runs) as url:
        proc = subprocess.Popen([*argv, "--label", f"note={LABEL}"], cwd=ROOT, env=_env(), stdout=subprocess.PIPE)
        try:
            (run_dir,) = until("the run directory", lambda: [d for d in run_dirs(runs) if (d / "live.json").exists()])
            browser.open(trap.port, server=int(url.rsplit(":", 1)[1]))
            page = f"{url}/runs/{run_dir.name}/live"
            browser.go(page)

            t0 = until("sampling to start", lambda: json.loads((run_dir / "live.json").read_text())["phases"][2:])
            t0_monotonic = json.loads((run_dir / "live.json").read_text())["t0_monotonic"]
            delays: list[float] = []
            seen, deadline = 0.0, time.monotonic() + 60
            while len(delays) < 15:
                assert time.monotonic() < deadline, f"the page stopped showing new samples: {delays}"
                shown = browser.js(PROBE)
                if shown and shown[0] > seen:
                    seen = shown[0]
                    delays.append(time.monotonic() - (t0_monotonic + shown[1]))
            print(f"seconds from a sample landing to the page showing it: {[round(d, 3) for d in delays]}")
            assert t0 and max(delays) < 1.0, delays

            def active(name: str) -> bool:
                return bool(browser.js(f"return !!document.querySelector('#active li[data-fault=\"{name}\"]')"))

            until("the cut on the page", lambda: active("cut"))
            assert toxiproxy.get("/proxies/up").json()["enabled"] is False, "shown while Toxiproxy holds it"
            until("the cut gone from the page", lambda: not active("cut"))
            assert toxiproxy.get("/proxies/up").json()["enabled"] is True
            state = "return document.querySelector('#slas tr[data-sla=\"cut-recovers\"]').dataset.state"
            assert until("the SLA decided mid-run", lambda: browser.js(state) != "pending" and browser.js(state)) == (
                "passed"
            )
            until("the latency fault on the page", lambda: active("slow"))
            assert [t["name"] for t in toxiproxy.get("/proxies/up/toxics").json()] == [f"drillctl-{run_dir.name}-slow"]

            browser.click("#abort summary")
            browser.type("#abort input[name=reason]", "room called it")
            browser.click("#abort input[name=confirm]")
            browser.click("#abort button")
            ended = "return document.getElementById('state').textContent"
            until("the page to show the run finished", lambda: browser.js(ended) == "finished", timeout=60)
            assert proc.wait(timeout=60) == 4
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
            if proc.stdout is not None:
                proc.stdout.close()
        report = json.loads((run_dir / "report.json").read_text())
        assert report["run"]["status"] == "aborted"
        assert report["run"]["stopped_by"]["kind"] == "abort"
        assert "room called it (drillctl serve)" in report["run"]["stopped_by"]["evidence"]
        assert "up" not in toxiproxy.get("/proxies").json(), "every fault reverted, the drill's proxy gone"
        assert unsettled(runs) == []
        assert browser.js("return document.getElementById('verdict').textContent") == "ABORTED"

        browser.go(url + "/")
        listed = browser.js(
            "return [[...document.querySelectorAll('a')].map(a => a.getAttribute('href')),"
            " document.querySelectorAll('img').length, document.body.textContent]"
        )
        assert f"/files/{run_dir.name}/report.html" in listed[0], "the index lists the finished run"
        assert listed[1] == 0 and f"note={LABEL}" in listed[2], "the hostile label is text on the page"
        requested = browser.requests_from(url)
        assert requested and all(u.startswith(url + "/") for u in requested), requested
        assert f"{url}/runs/{run_dir.name}/events" in requested
    outside = [c for c in trap.connections if b"googleapis.com" not in c and b"google.com" not in c]
    assert not outside, outside
