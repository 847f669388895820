"""Following one running drill from its run directory: live.json, samples.bin tailed, the control FIFO's end.

One watcher per run, however many pages show it. It wakes when the run writes (inotify), and once a second
for what time alone decides (a recovery window that ran out, a run whose process died). Each subscriber holds
only the newest document it has not sent yet, so a slow client skips to the latest state instead of queueing:
memory per client is one document, whatever the client's speed. Nothing here writes into the run directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from orchestrator.abort import CONTROL
from orchestrator.bounded_io import read_file
from orchestrator.errors import DrillError
from orchestrator.limits import LIVE_STATUS_BYTES, SAMPLES_FILE_BYTES, LimitExceeded
from orchestrator.live_status import FILE_NAME as LIVE_FILE
from orchestrator.model.spec import DrillSpec
from orchestrator.sample_store import FILE_NAME as SAMPLES_FILE
from orchestrator.sample_store import SampleFileError, SampleReader
from orchestrator.serve.inotify import FolderWatch
from orchestrator.serve.live import (
    LiveDoc,
    LiveFormatError,
    ProbeWindows,
    final_slas,
    parse_live,
    sla_states,
    snapshot,
    timeline_of,
)
from orchestrator.serve.runs import process_alive

TICK = 1.0
"""Seconds between wake-ups when the run writes nothing: time-decided SLAs, a dead run."""
JUDGE_EVERY = 1.0
"""Most often the SLAs are judged again (each judging reads every sample so far)."""
READ_PIECE = 4 * 2**20
"""Most bytes of samples.bin read at one wake-up; the rest at the next, so a long file never stalls the loop."""
IDLE = 15.0
"""A watcher nobody subscribes to stops after this long."""


class Subscriber:
    """One server-sent-event client: the newest event not yet sent, nothing older."""

    def __init__(self) -> None:
        self._pending: bytes | None = None
        self._ready = asyncio.Event()
        self.skipped = 0

    def offer(self, event: bytes) -> None:
        if self._pending is not None:
            self.skipped += 1
        self._pending = event
        self._ready.set()

    async def next(self) -> bytes:
        await self._ready.wait()
        self._ready.clear()
        event, self._pending = self._pending, None
        assert event is not None
        return event


def encode(kind: str, document: dict[str, Any]) -> bytes:
    """One server-sent event; json.dumps writes no raw newline, so the data is one line."""
    return f"event: {kind}\ndata: {json.dumps(document)}\n\n".encode()


class RunWatcher:
    def __init__(self, run_dir: Path, report_url: str, load_spec: Callable[[str, str | None], DrillSpec]) -> None:
        self.run_dir = run_dir
        self.report_url = report_url
        self.load_spec = load_spec
        self.subscribers: set[Subscriber] = set()
        self.latest: bytes | None = None
        self.document: dict[str, Any] | None = None
        self.first = asyncio.Event()
        self.done = False
        self.touched = time.monotonic()
        self._doc: LiveDoc | None = None
        self._reader = SampleReader(run_dir / SAMPLES_FILE)
        self._windows = ProbeWindows(self._reader.log)
        self._offset = 0
        self._rest = b""
        self._samples_note: str | None = None
        self._spec: DrillSpec | None = None
        self._sla_note: str | None = None
        self._slas: list[dict[str, Any]] = []
        self._judged = -JUDGE_EVERY
        self._judged_doc: LiveDoc | None = None
        self._now = 0.0
        self._log = structlog.get_logger()

    def subscribe(self) -> Subscriber:
        subscriber = Subscriber()
        self.subscribers.add(subscriber)
        if self.latest is not None:
            subscriber.offer(self.latest)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        self.touched = time.monotonic()

    async def run(self) -> None:
        """Until the run ends (then one last event) or nobody has watched for IDLE seconds."""
        watch = FolderWatch(self.run_dir)
        try:
            more = True
            while True:
                watch.take()
                more = await self._refresh()
                if self.done:
                    return
                if not self.subscribers and time.monotonic() - self.touched > IDLE:
                    return
                if not more:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(watch.changed.wait(), TICK)
        except Exception as e:  # a watcher that fails ends its streams with why, never the server
            self._log.exception("live_watch_failed", run_dir=str(self.run_dir))
            self._publish("failed", {"error": f"{type(e).__name__}: {e}"})
            self.done = True
        finally:
            watch.close()
            self.first.set()

    async def _refresh(self) -> bool:
        """Reads what changed and publishes the new state; True if samples.bin has more to read already."""
        try:
            self._doc = parse_live(read_file(self.run_dir / LIVE_FILE, LIVE_STATUS_BYTES))
        except (OSError, LimitExceeded, LiveFormatError) as e:
            if self._doc is None:
                raise DrillError(f"{self.run_dir} has no readable live status: {e}") from e
        doc = self._doc
        assert doc is not None
        more = self._tail()
        now = self._now = max(0.0, time.monotonic() - doc.t0_monotonic) if doc.phases else 0.0
        if not (self.run_dir / CONTROL).exists() or not process_alive(doc.pid):
            await self._finish(doc)
            return False
        await self._judge(doc, now)
        state = "stopping" if doc.stop else "running"
        self._publish("state", snapshot(doc, self._windows, self._slas, self._sla_note, now, state))
        return more

    def _tail(self) -> bool:
        """Reads the samples landed since the last call, at most READ_PIECE bytes of them."""
        path = self.run_dir / SAMPLES_FILE
        if self._samples_note is not None:
            return False
        try:
            with path.open("rb") as f:
                size = os.fstat(f.fileno()).st_size
                SAMPLES_FILE_BYTES.check(size, str(path))
                f.seek(self._offset)
                piece = f.read(min(READ_PIECE, size - self._offset))
        except FileNotFoundError:
            return False
        except (OSError, LimitExceeded) as e:
            self._samples_note = f"samples no longer read: {e}"
            return False
        self._offset += len(piece)
        data = self._rest + piece
        try:
            used = self._reader.feed(data)
        except SampleFileError as e:
            self._samples_note = f"samples no longer read: {e}"
            return False
        self._rest = data[used:]
        self._windows.update()
        return self._offset < size

    async def _judge(self, doc: LiveDoc, now: float) -> None:
        """The SLAs as far as the run went, at most once a JUDGE_EVERY and at every phase or fault change."""
        if self._spec is None and self._sla_note is None:
            try:
                self._spec = await asyncio.to_thread(self.load_spec, doc.drill_file, doc.drill_sha256)
            except DrillError as e:
                self._sla_note = f"SLAs are not judged live: {e}"
        spec = self._spec
        if spec is None or (now - self._judged < JUDGE_EVERY and doc == self._judged_doc):
            return
        self._judged, self._judged_doc = now, doc
        if not self._windows.read:
            self._slas = [
                {"name": s.name, "type": s.type, "state": "pending", "measured": "—", "threshold": "", "detail": ""}
                for s in spec.spec.slas
            ]
            return
        timeline = timeline_of(doc, spec, self._reader.log, now)
        self._slas = await asyncio.to_thread(sla_states, spec, timeline, now)

    async def _finish(self, doc: LiveDoc) -> None:
        """The run is over: its report's verdicts if it wrote one, else why not."""
        from orchestrator.reporting.document import ReportFormatError
        from orchestrator.reporting.json_report import read_report

        slas, state, verdict = self._slas, "ended", None
        note: str | None = "the run ended without writing its report"
        if (self.run_dir / "report.json").exists():
            try:
                report = await asyncio.to_thread(read_report, self.run_dir)
                slas, state, note, verdict = final_slas(report.verdicts), "finished", None, report.verdict.outcome
            except (ReportFormatError, KeyError, TypeError, ValueError) as e:
                note = f"its report cannot be read: {e}"
        document = snapshot(doc, self._windows, slas, note, self._now, state)
        document["report"] = self.report_url if state == "finished" else None
        document["verdict"] = verdict
        self._publish("finished", document)
        self.done = True

    def _publish(self, kind: str, document: dict[str, Any]) -> None:
        self.document = {"kind": kind, **document}
        self.latest = encode(kind, document)
        for subscriber in self.subscribers:
            subscriber.offer(self.latest)
        self.first.set()
