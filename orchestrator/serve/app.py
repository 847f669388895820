"""The HTTP side of `drillctl serve` (aiohttp): routes, the token, the abort form's guards, the event streams.

Loopback by default. Bound anywhere else it needs a token, which every request must then carry (a bearer
header, or the cookie that opening `/?token=...` once sets). On loopback without a token the Host header must
name loopback, so a web page elsewhere cannot reach it by rebinding its own name to 127.0.0.1. The abort POST
needs a token tied to the page (an HMAC of the run id under a key made at start), an Origin equal to the
server's own, a reason and the confirmation box; it then does what `drillctl abort` does, through the FIFO.

Bounded: request bodies (SERVE_REQUEST_BYTES), event-stream clients (SERVE_CLIENTS), and each client holds one
pending document at most (see watch.Subscriber). Reading the history and the reports runs in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import secrets
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import structlog
from aiohttp import web

from orchestrator.abort import AbortFailed, request_abort
from orchestrator.bounded_io import read_file
from orchestrator.history.model import DrillSeries, RunQuery, RunRecord
from orchestrator.history.store import HistoryError, open_store
from orchestrator.limits import REPORT_BYTES, SERVE_CLIENTS, SERVE_REQUEST_BYTES, LimitExceeded
from orchestrator.live_status import FILE_NAME as LIVE_FILE
from orchestrator.reporting.html import CSP
from orchestrator.serve import pages
from orchestrator.serve.runs import gamedays, load_spec, remove_serving, run_dir_of, running, write_serving
from orchestrator.serve.watch import RunWatcher, Subscriber

KEEPALIVE = 15.0
"""Seconds between comments on a quiet stream, so proxies and the browser keep it open."""
WRITE_TIMEOUT = 10.0
"""A client that takes longer than this to accept one event is dropped."""
FIRST_STATE = 10.0
"""Longest the live page waits for its run's first state."""
LATEST_RUNS = 100
"""Finished runs on the index page."""
TREND_PAGES = 32
"""Drills whose trend page the server keeps (the least recently asked for goes first)."""
FILES = ("report.html", "index.html")
"""What /files/<folder>/ serves from a run or game-day folder: the self-contained pages."""
TOKEN_COOKIE = "drillctl_token"
PAGE_CSP = CSP + "; frame-ancestors 'none'"
HANDLER = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class ServeConfig:
    runs_dir: Path
    history: str
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class _Kept:
    """What the history answered while its stamp was `stamp`, and the page drawn from it."""

    stamp: tuple[int, int]
    series: DrillSeries
    with_report: frozenset[str]
    page: str


@dataclass(frozen=True)
class _KeptIndex:
    stamp: tuple[int, int]
    records: list[RunRecord]
    drills: list[pages.DrillRow]


@dataclass
class Server:
    config: ServeConfig
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    watchers: dict[str, RunWatcher] = field(default_factory=dict)
    clients: int = 0
    port: int = 0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _trend_pages: OrderedDict[str, _Kept] = field(default_factory=OrderedDict)
    _kept_index: _KeptIndex | None = None
    _kept_lock: threading.Lock = field(default_factory=threading.Lock)
    """Pages are drawn in worker threads."""

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=SERVE_REQUEST_BYTES.value)
        app.router.add_get("/", self.index)
        app.router.add_get("/drills/{drill}", self.trends)
        app.router.add_get("/runs/{run}/live", self.live)
        app.router.add_get("/runs/{run}/events", self.events)
        app.router.add_post("/runs/{run}/abort", self.abort)
        app.router.add_get("/files/{folder}/{name}", self.files)
        return app

    # --- guards -------------------------------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: HANDLER) -> web.StreamResponse:
        token = self.config.token
        if token is None and not self._loopback_host(request.host):
            return _html(pages.message_page("Refused", "This server answers to loopback names only."), 421)
        if token is not None:
            given = request.query.get("token")
            if given is not None and hmac.compare_digest(given.encode(), token.encode()):
                rest = {k: v for k, v in request.query.items() if k != "token"}
                target = request.path + (f"?{urlencode(rest)}" if rest else "")
                moved = web.HTTPSeeOther(target)
                moved.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict", path="/")
                _secure_headers(moved)
                return moved
            if not self._authorized(request, token):
                page = pages.message_page("Token required", "Open this server's address with ?token=... once.")
                return _html(page, 401)
        response: web.StreamResponse
        try:
            response = await handler(request)
        except web.HTTPException as e:
            response = e
        _secure_headers(response)
        return response

    def _loopback_host(self, host: str) -> bool:
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return is_loopback(name)

    @staticmethod
    def _authorized(request: web.Request, token: str) -> bool:
        header = request.headers.get("Authorization", "")
        given = header.removeprefix("Bearer ") if header.startswith("Bearer ") else request.cookies.get(TOKEN_COOKIE)
        return given is not None and hmac.compare_digest(given.encode(), token.encode())

    def csrf(self, run_id: str) -> str:
        return hmac.new(self.secret, f"abort {run_id}".encode(), "sha256").hexdigest()

    # --- pages --------------------------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.StreamResponse:
        return _html(await asyncio.to_thread(self._index_page))

    def _index_page(self) -> str:
        """The history's part is read again only when its stamp changed; running drills and game days always."""
        runs_dir = self.config.runs_dir
        note = None
        records: list[RunRecord] = []
        drills: list[pages.DrillRow] = []
        try:
            store = open_store(self.config.history, create=False)
            try:
                stamp = store.stamp()
                kept = self._kept_index
                if kept is None or kept.stamp != stamp:
                    latest = list(reversed(store.runs(RunQuery(last=LATEST_RUNS))))
                    rows = [
                        pages.DrillRow(
                            d.drill, len(d.run_ids), d.verdicts[-1], d.started_at[-1].isoformat("T", "seconds")
                        )
                        for d in store.series(RunQuery())
                    ]
                    kept = self._kept_index = _KeptIndex(stamp, latest, rows)
                records, drills = kept.records, kept.drills
            finally:
                store.close()
        except (HistoryError, OSError) as e:
            note = str(e)
        except Exception as e:  # sqlite3.Error or a backend's own: the page says so, the server goes on
            note = f"the history cannot be read: {e}"
        listed = running(runs_dir) if runs_dir.is_dir() else []
        days = gamedays(runs_dir) if runs_dir.is_dir() else []
        return pages.index_page(listed, days, drills, records, self._with_report(r.run_id for r in records), note)

    def _with_report(self, run_ids: Iterable[str]) -> set[str]:
        runs_dir = self.config.runs_dir
        return {r for r in run_ids if (runs_dir / r / "report.html").is_file()}

    async def trends(self, request: web.Request) -> web.StreamResponse:
        drill = request.match_info["drill"]
        page = await asyncio.to_thread(self._trends, drill)
        if page is None:
            return _html(pages.message_page("No such drill", f"The history has no run of drill {drill}."), 404)
        return _html(page)

    def _trends(self, drill: str) -> str | None:
        """The drill's series is read again only when the history's stamp changed, and its page drawn again only
        when that or the reports of its last runs did: at 10,000 runs the series and the charts take tens of
        ms each, the stamp under one (bench/serve_trends.py)."""
        try:
            store = open_store(self.config.history, create=False)
        except HistoryError:
            return None
        try:
            stamp = store.stamp()
            kept = self._trend_pages.get(drill)
            if kept is None or kept.stamp != stamp:
                found = store.series(RunQuery(drill=drill))
                series = found[0] if found else None
            else:
                series = kept.series
        finally:
            store.close()
        if series is None:
            return None
        with_report = frozenset(self._with_report(series.run_ids[-pages.LAST_RUNS :]))
        if kept is None or kept.stamp != stamp or kept.with_report != with_report:
            kept = _Kept(stamp, series, with_report, pages.trend_page(series, with_report))
        with self._kept_lock:
            self._trend_pages[drill] = kept
            self._trend_pages.move_to_end(drill)
            while len(self._trend_pages) > TREND_PAGES:
                self._trend_pages.popitem(last=False)
        return kept.page

    async def files(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        folder = run_dir_of(self.config.runs_dir, request.match_info["folder"])
        if folder is None or name not in FILES or not (folder / name).is_file():
            return _html(pages.message_page("Not found", "No such report."), 404)
        try:
            data = await asyncio.to_thread(read_file, folder / name, REPORT_BYTES)
        except (OSError, LimitExceeded) as e:
            return _html(pages.message_page("Unreadable", str(e)), 500)
        return web.Response(body=data, content_type="text/html", charset="utf-8")

    # --- the live view ------------------------------------------------------------------------------------

    def _watcher(self, run_id: str) -> RunWatcher | None:
        found = self.watchers.get(run_id)
        if found is not None and not found.done:
            return found
        run_dir = run_dir_of(self.config.runs_dir, run_id)
        if run_dir is None or not (run_dir / LIVE_FILE).is_file():
            return None
        watcher = RunWatcher(run_dir, pages.report_href(run_id), load_spec)
        self.watchers[run_id] = watcher
        task = asyncio.create_task(watcher.run())
        self._tasks.add(task)

        def forget(done: asyncio.Task[None]) -> None:
            self._tasks.discard(done)
            if self.watchers.get(run_id) is watcher:
                del self.watchers[run_id]

        task.add_done_callback(forget)
        return watcher

    async def live(self, request: web.Request) -> web.StreamResponse:
        run_id = request.match_info["run"]
        watcher = self._watcher(run_id)
        if watcher is None:
            return _html(pages.message_page("No live status", f"{run_id} is no run with a live status here."), 404)
        watcher.touched = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watcher.first.wait(), FIRST_STATE)
        document = watcher.document or {"state": "ended", "error": "no state read yet"}
        nonce = secrets.token_urlsafe(16)
        response = _html(pages.live_page(run_id, document, self.csrf(run_id), nonce))
        response.headers["Content-Security-Policy"] = pages.live_csp(nonce)
        return response

    async def events(self, request: web.Request) -> web.StreamResponse:
        run_id = request.match_info["run"]
        if self.clients >= SERVE_CLIENTS.value:
            busy = LimitExceeded(SERVE_CLIENTS, request.path, self.clients + 1).reason
            return _html(pages.message_page("Busy", busy), 503)
        watcher = self._watcher(run_id)
        if watcher is None:
            return _html(pages.message_page("No live status", f"{run_id} has no live status."), 404)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )
        self.clients += 1
        subscriber = watcher.subscribe()
        try:
            await response.prepare(request)
            await self._stream(watcher, subscriber, response)
        except (ConnectionResetError, TimeoutError):
            pass  # the client left, or could not keep up
        finally:
            watcher.unsubscribe(subscriber)
            self.clients -= 1
        return response

    @staticmethod
    async def _stream(watcher: RunWatcher, subscriber: Subscriber, response: web.StreamResponse) -> None:
        while True:
            try:
                event = await asyncio.wait_for(subscriber.next(), KEEPALIVE)
            except TimeoutError:
                if watcher.done:
                    return
                event = b": keepalive\n\n"
            await asyncio.wait_for(response.write(event), WRITE_TIMEOUT)
            if watcher.done and event == watcher.latest:
                return

    async def abort(self, request: web.Request) -> web.StreamResponse:
        run_id = request.match_info["run"]
        origin = request.headers.get("Origin")
        if origin is None or origin != f"{request.scheme}://{request.host}":
            return _html(pages.message_page("Refused", "An abort must come from this server's own page."), 403)
        if request.headers.get("Sec-Fetch-Site", "same-origin") != "same-origin":
            return _html(pages.message_page("Refused", "An abort must come from this server's own page."), 403)
        if request.content_type != "application/x-www-form-urlencoded":
            return _html(pages.message_page("Refused", "An abort is the live page's form."), 415)
        form = await request.post()
        csrf, reason = str(form.get("csrf", "")), str(form.get("reason", "")).strip()
        if not hmac.compare_digest(csrf.encode(), self.csrf(run_id).encode()):
            return _html(pages.message_page("Refused", "The page is out of date: open the live view again."), 403)
        if not reason or form.get("confirm") != "yes":
            return _html(pages.message_page("Not aborted", "An abort needs a reason and the confirmation."), 400)
        run_dir = run_dir_of(self.config.runs_dir, run_id)
        if run_dir is None:
            return _html(pages.message_page("Not found", f"No run {run_id} here."), 404)
        try:
            await asyncio.to_thread(request_abort, run_dir, f"{reason} (drillctl serve)", 0.0)
        except AbortFailed as e:
            return _html(pages.message_page("Not aborted", str(e)), 409)
        structlog.get_logger().warning("abort_requested", run=run_id, reason=reason, peer=request.remote)
        raise web.HTTPSeeOther(pages.run_href(run_id))


def _html(text: str, status: int = 200) -> web.Response:
    """Encoded leniently: a folder name that is no UTF-8 shows as U+FFFD rather than failing the page."""
    body = text.encode("utf-8", "replace")
    return web.Response(body=body, status=status, content_type="text/html", charset="utf-8")


def _secure_headers(response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", PAGE_CSP)
    headers.setdefault("Cache-Control", "no-store")
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "same-origin"  # no-referrer would make a form post's Origin "null"
    headers["X-Frame-Options"] = "DENY"


async def serve(config: ServeConfig, ready: Callable[[str], None]) -> None:
    """Serve until SIGINT or SIGTERM; `ready(url)` once listening. serve.json is written then and removed after."""
    server = Server(config)
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    server.port = int(runner.addresses[0][1])
    host = f"[{config.host}]" if ":" in config.host else config.host
    url = f"http://{host}:{server.port}/"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    written = config.runs_dir.is_dir()
    if written:
        write_serving(config.runs_dir, url)
    try:
        ready(url)
        await stop.wait()
    finally:
        if written:
            remove_serving(config.runs_dir)
        await runner.cleanup()
