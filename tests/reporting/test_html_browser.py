"""report.html of a real run in a real headless Chromium, driven by chromedriver's W3C HTTP API.

Requests are seen twice. Chromium's DevTools network log lists every request a page makes
(file:// ones included); and Chromium runs with every host name resolved to, and every request
proxied through, a local trap socket that records each connection, so nothing leaves the machine.
The trap also sees Chromium's own background traffic (update checks), which is not the page's:
the DevTools log, which names the document behind each request, tells them apart.
The negative checks prove the detection works (an injected image shows in both) and that the
page's CSP would block such an image even if one were injected.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

from orchestrator.runbooks import headings
from tests.fixtures.toxiproxy import free_port
from tests.reporting.conftest import Runs

CHROMIUM = "/usr/lib/chromium/chromium"
"""The browser itself, not Debian's /usr/bin/chromium wrapper: that one adds flags (remote extensions,
API keys) that make Chromium call Google's update servers on its own."""
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
INJECTED = (
    '<img src="http://cdn.example.com/pixel.png" alt=""><link rel="stylesheet" href="https://93.184.216.34/x.css">'
)


@dataclass
class Trap:
    """A loopback listener that records every connection made to it, and closes it at once."""

    sock: socket.socket
    connections: list[bytes] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.connections.append(conn.recv(512))
                except OSError:
                    self.connections.append(b"")


@pytest.fixture
def trap() -> Iterator[Trap]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    t = Trap(sock)
    thread = threading.Thread(target=t.serve, daemon=True)
    thread.start()
    yield t
    sock.close()
    thread.join(timeout=5)


class Browser:
    """Just enough of the W3C WebDriver protocol, over urllib, each call under a timeout."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.session = ""

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 60) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())["value"]

    def open(self, trap_port: int, width: int = 1280, height: int = 2400) -> None:
        args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            # Chromium's own traffic (time, updates, safe browsing) would reach the trap too.
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-extensions",
            "--disable-default-apps",
            "--disable-breakpad",
            "--disable-client-side-phishing-detection",
            "--disable-domain-reliability",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,Translate,MediaRouter",
            f"--window-size={width},{height}",
            f"--host-resolver-rules=MAP * 127.0.0.1:{trap_port}",
            f"--proxy-server=http://127.0.0.1:{trap_port}",
            "--proxy-bypass-list=<-loopback>",
        ]
        options = {"binary": CHROMIUM, "args": args}
        caps = {
            "capabilities": {
                "alwaysMatch": {"goog:chromeOptions": options, "goog:loggingPrefs": {"performance": "ALL"}}
            }
        }
        self.session = self.call("POST", "/session", caps, timeout=120)["sessionId"]

    def go(self, url: str) -> None:
        self.call("POST", f"/session/{self.session}/url", {"url": url})

    def js(self, script: str) -> Any:
        return self.call("POST", f"/session/{self.session}/execute/sync", {"script": script, "args": []})

    def requests_of(self, page: str) -> dict[str, str | None]:
        """URLs the document at `page` requested since the last call, itself excluded, each with the
        reason it was blocked before leaving the browser (`csp`), if it was. From the DevTools log."""
        entries = self.call("POST", f"/session/{self.session}/se/log", {"type": "performance"})
        urls: dict[str, str | None] = {}
        ids: dict[str, str] = {}
        for entry in entries:
            event = json.loads(entry["message"])["message"]
            params = event["params"]
            if event["method"] == "Network.requestWillBeSent":
                if params.get("documentURL") == page and params["request"]["url"] != page:
                    urls[params["request"]["url"]] = None
                    ids[params["requestId"]] = params["request"]["url"]
            elif event["method"] == "Network.loadingFailed" and params["requestId"] in ids:
                urls[ids[params["requestId"]]] = params.get("blockedReason")
        return urls

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("GET", f"/session/{self.session}/screenshot"))

    def close(self) -> None:
        if self.session:
            self.call("DELETE", f"/session/{self.session}", timeout=30)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    port = free_port()
    log = (tmp_path / "chromedriver.log").open("wb")
    proc = subprocess.Popen([CHROMEDRIVER, f"--port={port}"], stdout=log, stderr=subprocess.STDOUT)
    driver = Browser(port)
    deadline = time.monotonic() + 30
    while True:
        try:
            if driver.call("GET", "/status", timeout=2)["ready"]:
                break
        except OSError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "chromedriver did not start"
        time.sleep(0.1)
    try:
        yield driver
    finally:
        try:
            driver.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            log.close()


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
