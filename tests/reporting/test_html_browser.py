"""report.html of a real run in a real headless Chromium (tests/browser.py: how it is driven and how requests
are seen). The negative checks prove the detection works (an injected image shows in both) and that the
page's CSP would block such an image even if one were injected.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import unquote, urlparse

from orchestrator.runbooks import headings
from tests.browser import INJECTED, Browser, Trap
from tests.reporting.conftest import Runs

PAGE_FACTS = """
const charts = [...document.querySelectorAll('svg.chart')];
return {
  charts: charts.map(c => { const r = c.getBoundingClientRect(); return [r.width, r.height]; }),
  circles: document.querySelectorAll('svg.chart circle').length,
  availability: document.querySelectorAll('svg.chart path.avail').length,
  thresholds: document.querySelectorAll('svg.chart .threshold').length,
  runbooks: [...document.querySelectorAll('a[href*="runbooks/"]')].map(a => a.href),
  quote: (document.querySelector('.runbook-quote blockquote') || {}).textContent || null,
  resources: performance.getEntriesByType('resource').map(e => e.name),
  title: document.title,
};
"""


def test_the_report_loads_without_a_network_request_and_shows_its_chart(
    real_runs: Runs, browser: Browser, trap: Trap, tmp_path: Path
) -> None:
    page = (real_runs.slow / "report.html").as_uri()
    browser.open(trap.port)
    browser.go(page)
    facts = browser.js(PAGE_FACTS)
    assert facts["title"].startswith("Drill report-drill: FAIL")
    [(width, height)] = facts["charts"]
    assert width > 600 and height > 150, facts["charts"]
    assert facts["circles"] > 20 and facts["availability"] == 1 and facts["thresholds"] >= 2
    assert facts["quote"] and "Check the connection pool" in facts["quote"]
    assert facts["resources"] == [] and browser.requests_of(page) == {}
    assert not [c for c in trap.connections if b"googleapis.com" not in c and b"google.com" not in c], trap.connections

    # Every runbook link the browser resolved points at a file that exists, and at a heading in it.
    assert facts["runbooks"]
    for href in facts["runbooks"]:
        url = urlparse(href)
        path = Path(unquote(url.path))
        assert url.scheme == "file" and path.is_file(), href
        assert url.fragment in headings(path.read_text(encoding="utf-8")), href

    png = browser.screenshot()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    (tmp_path / "report.png").write_bytes(png)


def test_the_trap_catches_an_external_request_and_the_csp_blocks_it(
    real_runs: Runs, browser: Browser, trap: Trap, tmp_path: Path
) -> None:
    html = (real_runs.slow / "report.html").read_text(encoding="utf-8")
    csp = next(line for line in html.splitlines() if "Content-Security-Policy" in line)
    guarded = tmp_path / "guarded.html"
    guarded.write_text(html.replace("<body>", f"<body>{INJECTED}", 1), encoding="utf-8")
    naked = tmp_path / "naked.html"
    naked.write_text(html.replace(csp, "").replace("<body>", f"<body>{INJECTED}", 1), encoding="utf-8")

    browser.open(trap.port)
    browser.go(guarded.as_uri())
    assert browser.js(PAGE_FACTS)["charts"], "the page rendered"
    blocked = browser.requests_of(guarded.as_uri())
    assert set(blocked.values()) == {"csp"}, f"the report's CSP blocks injected external loads: {blocked}"

    def reached_trap() -> bool:
        return any(b"cdn.example.com" in c or b"93.184.216.34" in c for c in trap.connections)

    assert not reached_trap()
    browser.go(naked.as_uri())
    sent = browser.requests_of(naked.as_uri())
    assert sent.keys() == {"http://cdn.example.com/pixel.png", "https://93.184.216.34/x.css"}
    assert "csp" not in sent.values()
    deadline = time.monotonic() + 20
    while not reached_trap() and time.monotonic() < deadline:
        time.sleep(0.05)  # the trap is a plain socket: nothing to wait on but its list
    assert reached_trap(), trap.connections
