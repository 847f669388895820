"""The live view on stderr: phases, faults, and once a second the health of every probe.

Colour only on a terminal and never with NO_COLOR set (https://no-color.org).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

from orchestrator.model.timeline import Sample

_COLORS = {"red": "31", "green": "32", "yellow": "33", "bold": "1", "dim": "2"}


def use_color(stream: TextIO) -> bool:
    return stream.isatty() and not os.environ.get("NO_COLOR")


class LiveView:
    def __init__(self, stream: TextIO = sys.stderr, quiet: bool = False) -> None:
        self.stream = stream
        self.color = use_color(stream)
        self.quiet = quiet
        self.started = time.monotonic()
        self._window: dict[str, list[bool]] = {}
        self._last_health = time.monotonic()
        self.phase = "preflight"

    def paint(self, text: str, color: str) -> str:
        return f"\033[{_COLORS[color]}m{text}\033[0m" if self.color else text

    def _print(self, text: str) -> None:
        if not self.quiet:
            elapsed = time.monotonic() - self.started
            print(f"{self.paint(f'[{elapsed:6.1f}s]', 'dim')} {text}", file=self.stream, flush=True)

    def event(self, kind: str, /, **fields: Any) -> None:
        if kind == "phase":
            self.phase = fields["name"]
            seconds = fields.get("seconds")
            length = f" ({seconds:g}s)" if seconds is not None else ""
            self._print(self.paint(f"== {self.phase}{length}", "bold"))
        elif kind == "fault_injected":
            self._print(self.paint(f"!! inject {fields['name']}: {fields['what']}", "yellow"))
        elif kind == "fault_reverted":
            self._print(self.paint(f"<< reverted {fields['name']}", "green"))
        elif kind == "revert_failed":
            self._print(self.paint(f"XX REVERT FAILED {fields['name']}: {fields['error']}", "red"))
        elif kind == "stop_requested":
            self._print(self.paint(f"-- stopping: {fields['reason']}; rolling back every injected fault", "red"))
        else:
            detail = " ".join(f"{k}={v}" for k, v in fields.items())
            self._print(f"{kind.replace('_', ' ')} {detail}")

    def sample(self, sample: Sample) -> None:
        """Called for every sample; prints one health line per second at most."""
        self._window.setdefault(sample.probe, []).append(sample.ok)
        now = time.monotonic()
        if now - self._last_health < 1.0:
            return
        self._last_health = now
        parts = []
        for probe, seen in sorted(self._window.items()):
            share = sum(seen) / len(seen)
            mark = self.paint("ok", "green") if share == 1 else self.paint(f"{share:.0%}", "red")
            parts.append(f"{probe} {mark}")
        self._window.clear()
        self._print(f"   {self.phase:<8} " + "  ".join(parts))
