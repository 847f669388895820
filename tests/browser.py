"""Real headless Chromium for the page tests, driven by chromedriver's W3C HTTP API, and a trap for requests.

Requests are seen twice. Chromium's DevTools network log lists every request a page makes
(file:// ones included); and Chromium runs with every host name resolved to, and every request
proxied through, a local trap socket that records each connection, so nothing leaves the machine.
The trap also sees Chromium's own background traffic (update checks), which is not the page's:
the DevTools log, which names the document behind each request, tells them apart.
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

import pytest

from tests.fixtures.toxiproxy import free_port

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

    def open(self, trap_port: int, width: int = 1280, height: int = 2400, server: int | None = None) -> None:
        """`server`: the port of a loopback server under test, the one address reached directly."""
        direct = "" if server is None else f";127.0.0.1:{server}"
        exclude = "" if server is None else ", EXCLUDE 127.0.0.1"
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
            f"--host-resolver-rules=MAP * 127.0.0.1:{trap_port}{exclude}",
            f"--proxy-server=http://127.0.0.1:{trap_port}",
            f"--proxy-bypass-list=<-loopback>{direct}",
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

    def requests_from(self, origin: str) -> list[str]:
        """Every URL that a document of `origin` requested since the last call (documents included), from the
        DevTools log: a served page, its event stream, its form posts and redirects."""
        entries = self.call("POST", f"/session/{self.session}/se/log", {"type": "performance"})
        urls = []
        for entry in entries:
            event = json.loads(entry["message"])["message"]
            if event["method"] == "Network.requestWillBeSent":
                params = event["params"]
                if str(params.get("documentURL", "")).startswith(origin):
                    urls.append(params["request"]["url"])
        return urls

    def element(self, css: str) -> str:
        """The id of the first element matching `css` (an error answer if there is none)."""
        found = self.call("POST", f"/session/{self.session}/element", {"using": "css selector", "value": css})
        return str(next(iter(found.values())))

    def click(self, css: str) -> None:
        self.call("POST", f"/session/{self.session}/element/{self.element(css)}/click", {})

    def type(self, css: str, text: str) -> None:
        self.call("POST", f"/session/{self.session}/element/{self.element(css)}/value", {"text": text})

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
