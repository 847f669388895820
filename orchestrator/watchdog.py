"""The dead man's switch of a run: a small process that outlives `drillctl run` if it dies or hangs.

`drillctl run` starts it in a session of its own and keeps the write end of its stdin. Over that
pipe the run sends one message a line:

    beat T LAG         every BEAT_EVERY seconds, from a thread of the run's own: T is when it was
                       sent (CLOCK_MONOTONIC), LAG how many seconds ago the run's event loop last
                       ticked (it ticks every BEAT_EVERY)
    rest               beats stop on purpose: the engine has finished its rollback
    pgid N             a process group the run started (targets, restarts, a private Toxiproxy)
    deadline STEP T    the latest moment (CLOCK_MONOTONIC, shared by every process of the host)
                       that injected step may still be in place: its maximum lifetime
    settled STEP       the run reverted that step itself
    done               a clean end

Beats come from a thread so that the two ways a run stops answering read apart: a process that
is frozen (SIGSTOP) or gone stops beating at once, while an event loop that is only busy (a
loaded machine, a slow callback) goes on beating with a growing LAG. It acts in four cases:

- the pipe closes without `done` (SIGKILL, the OOM killer, a crash): it settles the journal
  (every injected fault reverted from its undo record), stops the announced process groups and
  writes `watchdog.json`;
- no beat sent for HANG_TIMEOUT seconds, and none waiting in the pipe (the process is frozen, or
  too broken to run a thread): the run is hung. Beats are judged by when they were sent, so a
  watchdog that started late (its imports take seconds on a loaded machine) or was itself
  descheduled neither adds that to the timeout nor mistakes the backlog for a freeze. It SIGKILLs
  the run's process (its pid only: the run's process group may be the user's shell pipeline or a
  CI job, and everything the run started that matters lives in groups announced here), which
  releases the journal, then does the same as above. A hung run that woke up later would act on
  a world it no longer owns, so it is not left alive;
- a beat whose LAG passes LOOP_STUCK (the process lives, but its event loop has not turned for
  that long): the run is stuck, and is killed and rolled back the same way;
- a step's deadline passes while the run is alive (it beats, but the engine is stuck somewhere):
  that step alone is reverted from the journal, next to the live run. A freeze of the runs folder
  (`drillctl freeze`, read whenever it wakes with steps in place) brings every deadline to at most
  LIFETIME_MARGIN away, for a run that did not act on the freeze request itself.

After `done`, whatever the run could not revert (a revert that failed) is retried once more here.

    python -m orchestrator.watchdog RUN_DIR ORCHESTRATOR_PID   (started by the runner, not by hand)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

import structlog

from orchestrator.bounded_io import read_line
from orchestrator.freeze import is_frozen
from orchestrator.journal import JOURNAL
from orchestrator.limits import WATCHDOG_LINE_BYTES, LimitExceeded
from orchestrator.logs import log_to
from orchestrator.recovery import Settled, maybe_pending, revert_expired, settle
from orchestrator.targets.local import pids_in_group, signal_group, wait_gone
from orchestrator.targets.procfs import proc_files

STOP_GRACE = 3.0
RUN_MARKER = "DRILLCTL_RUN"
"""Set in the environment of every process a run starts (targets, probes, a private Toxiproxy), to the
run directory: a process started just before the run died, too late to be announced, is found by it."""
BEAT_EVERY = 0.25
"""Also how often the run's event loop ticks: a healthy loop's LAG stays about this low."""
HANG_TIMEOUT = 1.5
"""Six missed beats. The beat thread needs only a core for a moment and the GIL for a switch interval
(5 ms), so on a loaded machine it still beats; a frozen or dead process is noticed within 2 s."""
READ_AT_LEAST = 0.05
"""The shortest wait for a line before judging the beats: lines already in the pipe are read first."""
LOOP_STUCK = 10.0
"""A loop that has not turned for this long is stuck, not busy: far above the stalls a loaded 2-core
machine gives a healthy run (about a second at a load average of 8), and every fault's own deadline
applies meanwhile."""
LIFETIME_MARGIN = 3.0
"""Added to a fault's scheduled end before the watchdog reverts it itself: the run's own revert comes first."""
ORCHESTRATOR_EXIT = 5.0


class Link:
    """The run's side of the pipe. Writes are best effort: a dead watchdog must not stop a drill.

    Written from the event loop and from the beat thread, one whole line at a time under a lock.
    No beat goes out after `rest`, so a late one cannot arm the hang check again.
    """

    def __init__(self, stdin: IO[bytes] | None) -> None:
        self._stdin = stdin
        self._lock = threading.Lock()
        self._resting = False

    def _send(self, line: str, *, beat: bool = False) -> None:
        with self._lock:
            if self._stdin is None or self._stdin.closed or (beat and self._resting):
                return
            try:
                self._stdin.write(line.encode() + b"\n")
                self._stdin.flush()
            except OSError:
                return

    def started(self, pgid: int) -> None:
        self._send(f"pgid {pgid}")

    def beat(self, ticked: float) -> None:
        """`ticked`: when the event loop last ticked (CLOCK_MONOTONIC)."""
        now = time.monotonic()
        self._send(f"beat {now:.6f} {now - ticked:.3f}", beat=True)

    def rest(self) -> None:
        with self._lock:
            self._resting = True
        self._send("rest")

    def deadline(self, step_id: str, monotonic: float) -> None:
        self._send(f"deadline {step_id} {monotonic:.6f}")

    def settled(self, step_id: str) -> None:
        self._send(f"settled {step_id}")

    def done(self) -> None:
        self._send("done")
        with self._lock:
            if self._stdin is not None and not self._stdin.closed:
                try:
                    self._stdin.close()
                except OSError:
                    return


class _Pulse:
    """The event loop's latest tick (CLOCK_MONOTONIC), written by the loop and read by the beat thread."""

    def __init__(self) -> None:
        self.ticked = time.monotonic()


def _beat(link: Link, pulse: _Pulse, every: float, stop: threading.Event) -> None:
    """The beat thread: one beat now and every `every` seconds until `stop`, each with the loop's last tick."""
    while True:
        link.beat(pulse.ticked)
        if stop.wait(every):
            return


async def heartbeat(link: Link, every: float = BEAT_EVERY) -> None:
    """The loop ticks; a thread of its own beats with how long ago the loop last ticked.

    So a frozen or dead process stops beating at once, and a busy loop beats with a growing lag,
    which the watchdog judges apart. Cancelled, it stops the thread and says `rest`.
    """
    pulse, stop = _Pulse(), threading.Event()
    beats = threading.Thread(target=_beat, args=(link, pulse, every, stop), name="drillctl-heartbeat", daemon=True)
    beats.start()
    try:
        while True:
            pulse.ticked = time.monotonic()
            await asyncio.sleep(every)
    finally:
        stop.set()
        link.rest()
        beats.join(every)  # it wakes on `stop` at once; a beat it still sends after `rest` is dropped


@dataclass
class Watched:
    """What the watchdog saw of the run."""

    ending: Literal["done", "lost", "hung", "stuck"] = "lost"
    pgids: list[int] = field(default_factory=list)
    expired: list[Settled] = field(default_factory=list)
    lag: float = 0.0
    """The largest event loop lag its beats reported."""


async def watch(
    reader: asyncio.StreamReader,
    journal: Path,
    hang_timeout: float = HANG_TIMEOUT,
    loop_stuck: float = LOOP_STUCK,
    frozen: Callable[[], bool] | None = None,
) -> Watched:
    """Read the run's messages until `done`, the end of the pipe, missed beats or a stuck loop; revert expired
    steps meanwhile.

    Beats are only expected between the first `beat` and a `rest`: before, the run has not
    reached its event loop; after, its rollback is over. Whenever it wakes with steps in place,
    it asks `frozen()`; once a freeze holds, every step's deadline is LIFETIME_MARGIN after that
    moment at the latest (the run, told by `drillctl freeze`, reverts first).
    """
    seen = Watched()
    deadlines: dict[str, float] = {}
    freeze_deadline: float | None = None
    last_beat: float | None = None
    reverts: list[asyncio.Task[Settled]] = []
    try:
        while True:
            wake = list(deadlines.values()) + ([last_beat + hang_timeout] if last_beat is not None else [])
            timeout = max(READ_AT_LEAST, min(wake) - time.monotonic()) if wake else None
            drained = False  # nothing more in the pipe: only then are missed beats judged
            try:
                raw = await asyncio.wait_for(read_line(reader), timeout)
            except TimeoutError:
                raw, drained = b"\n", True
            now = time.monotonic()
            if raw == b"":
                return seen
            if raw is None:
                structlog.get_logger().warning(
                    "watchdog_line_dropped", error=LimitExceeded(WATCHDOG_LINE_BYTES, "stdin").reason
                )
                raw = b"\n"
            words = raw.decode(errors="replace").split()
            match words:
                case ["done"]:
                    seen.ending = "done"
                    return seen
                case ["beat", sent, lag] if _is_number(sent) and _is_number(lag):
                    last_beat = float(sent)
                    seen.lag = max(seen.lag, float(lag))
                case ["rest"]:
                    last_beat = None
                case ["pgid", pgid] if pgid.isdigit():
                    seen.pgids.append(int(pgid))
                case ["deadline", step, when] if _is_number(when):
                    deadlines[step] = float(when)
                case ["settled", step]:
                    deadlines.pop(step, None)
            if deadlines and freeze_deadline is None and frozen is not None and frozen():
                freeze_deadline = now + LIFETIME_MARGIN
            if freeze_deadline is not None:
                deadlines = {step: min(at, freeze_deadline) for step, at in deadlines.items()}
            for step, at in list(deadlines.items()):
                if at <= now:
                    del deadlines[step]
                    reverts.append(asyncio.create_task(revert_expired(journal, step)))
            if drained and last_beat is not None and now - last_beat > hang_timeout:
                seen.ending = "hung"
                return seen
            if seen.lag > loop_stuck:
                seen.ending = "stuck"
                return seen
    finally:
        seen.expired = list(await asyncio.gather(*reverts))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def marked_groups(run_dir: Path) -> list[int]:
    """Process groups of every process whose environment carries this run's marker."""
    marker = f"{RUN_MARKER}={run_dir.resolve()}".encode()
    groups = []
    for pid, environ in proc_files("environ"):
        if pid == os.getpid() or marker not in environ.split(b"\0"):
            continue
        try:
            groups.append(os.getpgid(pid))
        except OSError:
            continue
    return [g for g in groups if g != os.getpgid(0)]


def stop_groups(pgids: list[int]) -> list[int]:
    """SIGCONT (a group may be frozen by a fault), SIGTERM, then SIGKILL what is left."""
    alive = [g for g in dict.fromkeys(pgids) if pids_in_group(g)]
    for pgid in alive:
        signal_group(pgid, signal.SIGCONT)
        signal_group(pgid, signal.SIGTERM)
    wait_gone([pid for g in alive for pid in pids_in_group(g)], STOP_GRACE)
    for pgid in alive:
        signal_group(pgid, signal.SIGKILL)
    return alive


async def _stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=WATCHDOG_LINE_BYTES.value)  # read_line drops longer lines
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    return reader


async def _guard(run_dir: Path, orchestrator: int) -> tuple[Watched, Settled | None, float, float | None]:
    """Watch, then act; returns what was seen, what was settled, when the loss was noticed and when all was reverted."""
    journal = run_dir / JOURNAL
    seen = await watch(await _stdin_reader(), journal, frozen=functools.partial(is_frozen, run_dir.parent))
    noticed = time.monotonic()
    if seen.ending in ("hung", "stuck"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(orchestrator, signal.SIGKILL)
    if seen.ending != "done":
        # Its journal lock goes with the process: wait for the exit (EOF on the pipe can come first).
        await asyncio.to_thread(wait_gone, [orchestrator], ORCHESTRATOR_EXIT)
    if not journal.exists() or (seen.ending == "done" and not maybe_pending(journal)):
        return seen, None, noticed, None
    settled = await settle(journal)
    return seen, settled, noticed, time.monotonic()


def main(argv: list[str]) -> int:
    run_dir = Path(argv[1])
    orchestrator = int(argv[2]) if len(argv) > 2 else os.getppid()
    with (run_dir / "watchdog.log.jsonl").open("a", encoding="utf-8") as log_file:
        log_to(log_file)
        seen, settled, noticed, reverted = asyncio.run(_guard(run_dir, orchestrator))
    if seen.ending == "done" and settled is None and not seen.expired:
        return 0
    stopped = stop_groups(seen.pgids + marked_groups(run_dir)) if seen.ending != "done" else []
    events = {
        "lost": "orchestrator lost: the watchdog rolled back",
        "hung": f"orchestrator hung (no heartbeat for {HANG_TIMEOUT:g}s): killed, and the watchdog rolled back",
        "stuck": f"orchestrator's event loop stuck (no turn for {seen.lag:.1f}s, over {LOOP_STUCK:g}s): killed, "
        "and the watchdog rolled back",
        "done": "the run ended with faults left: the watchdog retried their reverts",
    }
    summary = {
        "event": events[seen.ending],
        "ending": seen.ending,
        "reverted": settled.reverted if settled else [],
        "revert_failed": settled.failed if settled else [],
        "journal_busy": settled.busy if settled else False,
        "journal_unreadable": settled.unreadable if settled else None,
        "expired_unreadable": [s.unreadable for s in seen.expired if s.unreadable],
        "expired": [step for s in seen.expired for step in s.reverted],
        "expired_failed": [f for s in seen.expired for f in s.failed],
        "stopped_process_groups": stopped,
        "loop_lag_max": seen.lag,
        "noticed_monotonic": noticed,
        "reverted_monotonic": reverted,
        "at": time.time(),
    }
    (run_dir / "watchdog.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    failed = settled is not None and (settled.failed or settled.busy or settled.unreadable)
    return 1 if failed or summary["expired_failed"] or summary["expired_unreadable"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
