"""The watchdog's control pipe read within WATCHDOG_LINE_BYTES: a line just under is read, one just over
(or one that never ends) is dropped and logged, and the watchdog goes on reading: it must never die of
what it reads, since it is what rolls a killed run back."""

from __future__ import annotations

import asyncio
from pathlib import Path

from orchestrator.limits import WATCHDOG_LINE_BYTES
from orchestrator.watchdog import watch
from tests.budget import run_bounded


def ending(chunks: list[bytes], journal: Path) -> str:
    """What watch() saw of these bytes, on a reader bounded as the watchdog's own stdin is."""

    async def go() -> str:
        reader = asyncio.StreamReader(limit=WATCHDOG_LINE_BYTES.value)
        task = asyncio.create_task(watch(reader, journal, hang_timeout=30))
        for chunk in chunks:
            reader.feed_data(chunk)
            await asyncio.sleep(0)
        reader.feed_eof()
        return (await asyncio.wait_for(task, 10)).ending

    return asyncio.run(go())


def test_a_line_just_under_the_bound_is_read(tmp_path: Path) -> None:
    longest = b"done" + b" " * (WATCHDOG_LINE_BYTES.default - 4) + b"\n"
    assert run_bounded(ending, [longest], tmp_path / "journal.jsonl", seconds=5).value == "done"


def test_a_line_just_over_the_bound_is_dropped_and_the_next_one_read(tmp_path: Path) -> None:
    over = b"done" + b" " * (WATCHDOG_LINE_BYTES.default - 3) + b"\n"
    outcome = run_bounded(ending, [over], tmp_path / "journal.jsonl", seconds=5)
    assert outcome.error is None and outcome.value == "lost"  # dropped: the pipe then ends without `done`
    outcome = run_bounded(ending, [over, b"done\n"], tmp_path / "journal.jsonl", seconds=5)
    assert outcome.error is None and outcome.value == "done"


def test_an_endless_line_costs_the_bound_not_its_length(tmp_path: Path) -> None:
    """64 MiB without a newline, fed in pieces: held at most a bound's worth at a time, then `done` is read."""
    piece = b"x" * 2**20
    outcome = run_bounded(ending, [piece] * 64 + [b"\ndone\n"], tmp_path / "journal.jsonl", seconds=10, memory_mib=48)
    assert outcome.error is None and outcome.value == "done"
