"""The abort FIFO read within its bounds, with real writers on a real FIFO: a request of ABORT_REQUEST_BYTES
is read and one a byte longer dropped (the next one still read), a writer that never sends a newline costs
the bound and not what it writes, and past ABORT_REQUESTS the run stops reading (a flood costs nothing)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import struct
import termios
import threading
from pathlib import Path

import pytest

from orchestrator.abort import ControlChannel
from orchestrator.cli import _ended_as
from orchestrator.limits import ABORT_REQUEST_BYTES, ABORT_REQUESTS, REPORT_BYTES
from tests.budget import run_bounded


def write_all(path: Path, data: bytes) -> threading.Thread:
    """A blocking writer in a thread of its own: it waits for the run to drain the FIFO, as a real one does."""

    def write() -> None:
        fd = os.open(path, os.O_WRONLY)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


class Heard:
    """The run's `on_abort`: the reasons it heard, and an event once it heard `wanted` of them."""

    def __init__(self, wanted: int) -> None:
        self.wanted = wanted
        self.reasons: list[str] = []
        self.enough = asyncio.Event()

    def __call__(self, reason: str) -> None:
        self.reasons.append(reason)
        if len(self.reasons) >= self.wanted:
            self.enough.set()


def heard(run_dir: Path, data: bytes, wanted: int) -> list[str]:
    """The reasons the run hears from `data`, once it has heard `wanted` of them (within 10 s)."""

    async def go() -> list[str]:
        channel = ControlChannel(run_dir)
        heard = Heard(wanted)
        task = asyncio.create_task(channel.listen(heard))
        writer = write_all(channel.path, data)
        try:
            await asyncio.wait_for(heard.enough.wait(), 10)
            await asyncio.to_thread(writer.join, 10)
        finally:
            task.cancel()
            channel.close()
        return heard.reasons

    return asyncio.run(go())


def test_a_request_just_under_the_bound_is_read(tmp_path: Path) -> None:
    request = b"x" * ABORT_REQUEST_BYTES.default + b"\n"
    reasons = run_bounded(heard, tmp_path, request, 1, seconds=10).value
    assert reasons == ["x" * 1000]  # read whole, then cut to the 1,000 characters a report keeps


def test_a_request_just_over_the_bound_is_dropped_and_the_next_one_read(tmp_path: Path) -> None:
    over = b"x" * (ABORT_REQUEST_BYTES.default + 1) + b"\n"
    reasons = run_bounded(heard, tmp_path, over + b"after\n", 1, seconds=10).value
    assert reasons == ["after"]


def test_a_writer_that_never_sends_a_newline_costs_the_bound(tmp_path: Path) -> None:
    """64 MiB without a newline, then a request: the run held a bound's worth at a time, and heard the request."""
    endless = b"y" * (64 * 2**20) + b"\nstop now\n"
    reasons = run_bounded(heard, tmp_path, endless, 1, seconds=20, memory_mib=96).value
    assert reasons == ["stop now"]


def unread_after_flood(run_dir: Path, first: bytes, then: bytes, bound: int) -> tuple[int, int]:
    """How many requests the run heard of `first` and `then` (written once it stopped), and the bytes left
    unread in the FIFO."""

    async def go() -> tuple[int, int]:
        channel = ControlChannel(run_dir)
        heard = Heard(bound)
        task = asyncio.create_task(channel.listen(heard))
        await asyncio.to_thread(write_all(channel.path, first).join, 10)
        await asyncio.wait_for(heard.enough.wait(), 10)
        await asyncio.to_thread(write_all(channel.path, then).join, 10)
        await asyncio.sleep(0.2)  # time enough to read `then`, if the run still read
        unread = struct.unpack("i", fcntl.ioctl(channel._read, termios.FIONREAD, b"\0" * 4))[0]
        assert not task.done(), "listening goes on (paused), it does not fail"
        task.cancel()
        channel.close()
        return len(heard.reasons), unread

    return asyncio.run(go())


def test_a_flood_is_heard_up_to_the_bound_then_left_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ABORT_REQUESTS.env, "5")
    then = b"more\n" * 100
    outcome = run_bounded(unread_after_flood, tmp_path, b"stop\n" * 10, then, 5, seconds=10)
    assert outcome.value == (5, len(then))


def test_drillctl_abort_reads_the_ended_run_s_report_within_its_bound(tmp_path: Path) -> None:
    """`drillctl abort` prints the status of the report the run wrote; a huge one costs it nothing."""
    report = tmp_path / "report.json"
    report.write_text('{"run": {"status": "aborted"}}')
    assert run_bounded(_ended_as, report, seconds=5, memory_mib=16).value == "aborted"
    with report.open("wb") as f:
        f.truncate(REPORT_BYTES.default + 1)
    said = run_bounded(_ended_as, report, seconds=5, memory_mib=16).value
    assert said.startswith(f"ended, but its report cannot be read ({report}: report.json is over the limit of")
