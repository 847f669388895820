"""A game day's control FIFO, in its folder under the runs folder, as every run has one in its run directory.

So `drillctl freeze` finds a running game day beside the runs (`abort.live_runs`) and tells it at once: a freeze
made during a cool-down ends the cool-down then (the game day's wake-up event is set), not when it runs out, and
the freeze waits for the game day's report as it waits for each run's (the FIFO is closed once it is written).
`drillctl abort GAMEDAY_FOLDER` stops it the same way, before its next drill; the drill it is running goes on.

The drills run in the main thread, each in an `asyncio.run` of its own, so the FIFO is read from a worker thread
with a loop of its own, by the runs' own bounded reader (`ControlChannel.listen`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from pathlib import Path

from orchestrator.abort import ABORT, FREEZE, ControlChannel

STOP_TIMEOUT = 3.0


class GameDayControl:
    def __init__(self, folder: Path, wake: threading.Event) -> None:
        self.channel = ControlChannel(folder)
        self.wake = wake
        self.request: tuple[str, str] | None = None
        """The first request heard: its verb (abort or freeze) and reason."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="gameday-control", daemon=True)
        self._listening: concurrent.futures.Future[None] | None = None

    def start(self) -> None:
        self._thread.start()
        self._listening = asyncio.run_coroutine_threadsafe(
            self.channel.listen(lambda why: self._heard(ABORT, why), lambda why: self._heard(FREEZE, why)),
            self._loop,
        )

    def stop_reason(self) -> str | None:
        """Why the game day was told to stop (None: it was not), for a freeze lifted before it was read."""
        if self.request is None:
            return None
        verb, reason = self.request
        return f"{'aborted' if verb == ABORT else 'stopped'} by drillctl {verb}: {reason}"

    def close(self) -> None:
        """After the report is written: a waiting `drillctl freeze` or `abort` learns the game day is over."""
        if self._listening is not None:
            self._listening.cancel()
            concurrent.futures.wait([self._listening], STOP_TIMEOUT)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread.ident is not None:
            self._thread.join(STOP_TIMEOUT)
        if not self._thread.is_alive():
            self._loop.close()
        self.channel.close()

    def _heard(self, verb: str, reason: str) -> None:
        if self.request is None:
            self.request = (verb, reason)
        self.wake.set()
