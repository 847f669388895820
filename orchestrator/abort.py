"""`drillctl abort`: stop a live run from another terminal, through a FIFO in its run directory.

Why a FIFO: its path has no length limit (a unix socket's has, 108 bytes, which deep run
directories exceed), it carries the file's permissions (0600: only the run's user), and it needs
no port. The run reads it on its event loop; the aborting side learns the run is over, with no
polling, because a FIFO's write end reports POLLERR once its last reader is gone, and the run
keeps the read end open until its report is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import select
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from orchestrator.bounded_io import read_line
from orchestrator.errors import DrillError
from orchestrator.limits import ABORT_REQUEST_BYTES, ABORT_REQUESTS, LimitExceeded

CONTROL = "control"
MAX_REASON = 1000
"""Characters of a reason kept; a whole request stays below PIPE_BUF, so it is written at once."""


ABORT = "abort"
FREEZE = "freeze"
"""A request is one line, `VERB REASON`: `drillctl abort` sends `abort`, `drillctl freeze` sends `freeze`."""


class AbortFailed(DrillError):
    """The run could not be told: it is not running, or it is not a drillctl run directory."""


def clean_reason(reason: str) -> str:
    """One line, printable, bounded: it ends up in logs and reports."""
    text = " ".join("".join(c if c.isprintable() else " " for c in reason).split())
    return text[:MAX_REASON] or "no reason given"


def parse_request(line: str) -> tuple[str, str]:
    """The verb and the reason of a request; a line with no known verb (written by hand) is an abort, all reason."""
    verb, _, reason = line.strip().partition(" ")
    if verb in (ABORT, FREEZE):
        return verb, clean_reason(reason)
    return ABORT, clean_reason(line)


class NotRunning(AbortFailed):
    """The run has ended (its FIFO is gone, or nobody reads it: it died and its watchdog settles it)."""


class ControlChannel:
    """The run's side: created with the run directory, read on the event loop, closed after the report."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / CONTROL
        os.mkfifo(self.path, 0o600)
        self._read = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        # Our own writer, so the reader never sees end-of-file between two aborting commands.
        self._keep = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)

    async def listen(self, on_abort: Callable[[str], None], on_freeze: Callable[[str], None] | None = None) -> None:
        """Call `on_abort(reason)` for each abort request and `on_freeze(reason)` for each freeze (`on_abort` when
        None), until cancelled.

        A request over ABORT_REQUEST_BYTES is dropped (and logged); past ABORT_REQUESTS requests the
        run stops reading, so a flood costs it nothing more (writers then find the FIFO full).
        """
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=ABORT_REQUEST_BYTES.value)  # read_line drops longer requests
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(os.dup(self._read), "rb", buffering=0)
        )
        log = structlog.get_logger()
        try:
            requests = 0
            while (line := await read_line(reader)) != b"":
                requests += 1
                if requests > ABORT_REQUESTS.value:
                    log.warning("abort_requests_ignored", error=LimitExceeded(ABORT_REQUESTS, str(self.path)).reason)
                    transport.pause_reading()
                    await asyncio.Future()
                if line is None:
                    log.warning(
                        "abort_request_dropped", error=LimitExceeded(ABORT_REQUEST_BYTES, str(self.path)).reason
                    )
                    continue
                verb, reason = parse_request(line.decode(errors="replace"))
                (on_freeze if verb == FREEZE and on_freeze is not None else on_abort)(reason)
        finally:
            transport.close()

    def post(self, verb: str, reason: str) -> None:
        """A request from the run itself (a freeze it saw only once its channel was open), read as any other."""
        os.write(self._keep, f"{verb} {clean_reason(reason)}\n".encode())

    def close(self) -> None:
        """The aborting side's wait ends here: no reader is left."""
        for fd in (self._read, self._keep):
            os.close(fd)
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class AbortSent:
    run_dir: Path
    ended: bool
    waited: float


def find_run(target: str, runs_dir: Path) -> Path:
    """A run directory given by path, or by id (its folder name under `runs_dir`)."""
    for candidate in (Path(target), runs_dir / target):
        if (candidate / "journal.jsonl").exists() or (candidate / CONTROL).exists():
            return candidate
    raise AbortFailed(f"no drillctl run at {target} (nor {runs_dir / target})")


def live_runs(runs_dir: Path) -> list[Path]:
    """Run directories under `runs_dir` with a control FIFO: runs that are live, or died without closing it."""
    if not runs_dir.is_dir():
        return []
    found = []
    for entry in sorted(runs_dir.iterdir()):
        with contextlib.suppress(OSError):
            if stat.S_ISFIFO(os.lstat(entry / CONTROL).st_mode):
                found.append(entry)
    return found


def request_abort(run_dir: Path, reason: str, wait: float) -> AbortSent:
    """Ask the run to stop; then wait up to `wait` seconds for it to roll back and write its report."""
    (outcome,) = request_stops([run_dir], ABORT, reason, wait)
    if isinstance(outcome, AbortFailed):
        raise outcome
    return outcome


def request_stops(run_dirs: Sequence[Path], verb: str, reason: str, wait: float) -> list[AbortSent | AbortFailed]:
    """Tell every run at once, then wait for all of them together (one poll), up to `wait` seconds in all.

    A run's outcome is AbortFailed when it could not be told (not running, not a control FIFO).
    """
    line = f"{verb} {clean_reason(reason)}\n".encode()
    started = time.monotonic()
    outcomes: dict[Path, AbortSent | AbortFailed] = {}
    waiting: dict[int, Path] = {}
    poller = select.poll()
    try:
        for run_dir in run_dirs:
            try:
                fd = _open_control(run_dir)
            except AbortFailed as e:
                outcomes[run_dir] = e
                continue
            try:
                os.write(fd, line)
            except OSError as e:
                os.close(fd)
                outcomes[run_dir] = (
                    AbortSent(run_dir, True, time.monotonic() - started)
                    if e.errno == errno.EPIPE
                    else AbortFailed(f"cannot write to {run_dir / CONTROL}: {e.strerror}")
                )
                continue
            waiting[fd] = run_dir
            poller.register(fd, 0)  # POLLERR and POLLHUP are always reported: the run closed its end
        deadline = started + max(0.0, wait)
        while waiting and (left := deadline - time.monotonic()) > 0:
            for fd, _ in poller.poll(left * 1000):
                poller.unregister(fd)
                os.close(fd)
                ended = waiting.pop(fd)
                outcomes[ended] = AbortSent(ended, True, time.monotonic() - started)
    finally:
        for fd, run_dir in waiting.items():
            os.close(fd)
            outcomes[run_dir] = AbortSent(run_dir, False, time.monotonic() - started)
    return [outcomes[d] for d in run_dirs]


def _open_control(run_dir: Path) -> int:
    path = run_dir / CONTROL
    try:
        if not stat.S_ISFIFO(os.stat(path).st_mode):
            raise AbortFailed(f"{path} is not a drillctl control FIFO")
        return os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except FileNotFoundError as e:
        raise NotRunning(f"{run_dir} is not running (no control FIFO: it has ended)") from e
    except OSError as e:
        if e.errno == errno.ENXIO:
            raise NotRunning(f"{run_dir} is not running (nobody reads its control FIFO)") from e
        raise AbortFailed(f"cannot open {path}: {e.strerror}") from e
