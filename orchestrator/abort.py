"""`drillctl abort`: stop a live run from another terminal, through a FIFO in its run directory.

Why a FIFO: its path has no length limit (a unix socket's has, 108 bytes, which deep run
directories exceed), it carries the file's permissions (0600: only the run's user), and it needs
no port. The run reads it on its event loop; the aborting side learns the run is over, with no
polling, because a FIFO's write end reports POLLERR once its last reader is gone, and the run
keeps the read end open until its report is written.
"""

from __future__ import annotations

import asyncio
import errno
import os
import select
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from orchestrator.bounded_io import read_line
from orchestrator.errors import DrillError
from orchestrator.limits import ABORT_REQUEST_BYTES, ABORT_REQUESTS, LimitExceeded

CONTROL = "control"
MAX_REASON = 1000
"""Characters of a reason kept; a whole request stays below PIPE_BUF, so it is written at once."""


class AbortFailed(DrillError):
    """The run could not be told: it is not running, or it is not a drillctl run directory."""


def clean_reason(reason: str) -> str:
    """One line, printable, bounded: it ends up in logs and reports."""
    text = " ".join("".join(c if c.isprintable() else " " for c in reason).split())
    return text[:MAX_REASON] or "no reason given"


class ControlChannel:
    """The run's side: created with the run directory, read on the event loop, closed after the report."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / CONTROL
        os.mkfifo(self.path, 0o600)
        self._read = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        # Our own writer, so the reader never sees end-of-file between two aborting commands.
        self._keep = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)

    async def listen(self, on_abort: Callable[[str], None]) -> None:
        """Call `on_abort(reason)` for each request, until cancelled.

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
                on_abort(clean_reason(line.decode(errors="replace")))
        finally:
            transport.close()

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


def request_abort(run_dir: Path, reason: str, wait: float) -> AbortSent:
    """Ask the run to stop; then wait up to `wait` seconds for it to roll back and write its report."""
    path = run_dir / CONTROL
    try:
        if not stat.S_ISFIFO(os.stat(path).st_mode):
            raise AbortFailed(f"{path} is not a drillctl control FIFO")
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except FileNotFoundError as e:
        raise AbortFailed(f"{run_dir} is not running (no control FIFO: it has ended)") from e
    except OSError as e:
        if e.errno == errno.ENXIO:
            raise AbortFailed(f"{run_dir} is not running (nobody reads its control FIFO)") from e
        raise AbortFailed(f"cannot open {path}: {e.strerror}") from e
    started = time.monotonic()
    try:
        os.write(fd, (clean_reason(reason) + "\n").encode())
        poller = select.poll()
        poller.register(fd, 0)  # POLLERR and POLLHUP are always reported: the run closed its end
        ended = bool(poller.poll(max(0.0, wait) * 1000))
    except OSError as e:
        if e.errno != errno.EPIPE:
            raise AbortFailed(f"cannot write to {path}: {e.strerror}") from e
        ended = True
    finally:
        os.close(fd)
    return AbortSent(run_dir, ended, time.monotonic() - started)
