"""The dead man's switch of a run: a small process that outlives `drillctl run` if it is killed.

`drillctl run` starts it in a session of its own and keeps the write end of its stdin. Over that
pipe the run announces the process groups it starts (`pgid N`) and, at a clean end, `done`.
When the pipe closes without `done` (the run was killed with SIGKILL, or the host's OOM killer
took it), the watchdog settles the run's journal (every injected fault reverted from its undo
record), stops the processes the run had started, and writes `watchdog.json` saying what it did.

    python -m orchestrator.watchdog RUN_DIR   (started by the runner, not by hand)
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import IO

from orchestrator.logs import log_to
from orchestrator.recovery import JOURNAL, settle
from orchestrator.targets.local import pids_in_group, signal_group, wait_gone

STOP_GRACE = 3.0


class Link:
    """The run's side of the pipe. Writes are best effort: a dead watchdog must not stop a drill."""

    def __init__(self, stdin: IO[bytes] | None) -> None:
        self._stdin = stdin

    def _send(self, line: str) -> None:
        if self._stdin is None or self._stdin.closed:
            return
        try:
            self._stdin.write(line.encode() + b"\n")
            self._stdin.flush()
        except OSError:
            return

    def started(self, pgid: int) -> None:
        self._send(f"pgid {pgid}")

    def done(self) -> None:
        self._send("done")
        if self._stdin is not None and not self._stdin.closed:
            self._stdin.close()


def listen(stream: IO[bytes]) -> tuple[bool, list[int]]:
    """Read the run's messages until the pipe closes: (ended cleanly, process groups announced)."""
    pgids: list[int] = []
    for raw in stream:
        line = raw.decode(errors="replace").strip()
        if line == "done":
            return True, pgids
        if line.startswith("pgid "):
            pgids.append(int(line.split()[1]))
    return False, pgids


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


def main(argv: list[str]) -> int:
    run_dir = Path(argv[1])
    clean, pgids = listen(sys.stdin.buffer)
    if clean:
        return 0
    with (run_dir / "watchdog.log.jsonl").open("a", encoding="utf-8") as log_file:
        log_to(log_file)
        settled = asyncio.run(settle(run_dir / JOURNAL))
    stopped = stop_groups(pgids)
    summary = {
        "event": "orchestrator lost: the watchdog rolled back",
        "reverted": settled.reverted,
        "revert_failed": settled.failed,
        "journal_busy": settled.busy,
        "stopped_process_groups": stopped,
        "at": time.time(),
    }
    (run_dir / "watchdog.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return 1 if settled.failed or settled.busy else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
