"""What a target resolver answered at injection time: data, journaled in the undo record and shown in reports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ANSWER_EXCERPT = 200
"""Characters of the raw answer kept in the record and the report."""


@dataclass(frozen=True)
class Resolution:
    resolver: str
    """How it was asked, e.g. `command ./leader.sh`, `http http://.../status /leader`."""
    answer: str
    """The raw answer, cut to ANSWER_EXCERPT characters."""
    target: str
    """The local node or process it named."""
    at: str
    """When it was asked (UTC, ISO 8601)."""
    elapsed: float
    """How long it took, seconds."""

    def to_json(self) -> dict[str, Any]:
        return {
            "resolver": self.resolver,
            "answer": self.answer,
            "target": self.target,
            "at": self.at,
            "elapsed": self.elapsed,
        }

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> Resolution:
        return cls(entry["resolver"], entry["answer"], entry["target"], entry["at"], float(entry["elapsed"]))

    def line(self) -> str:
        return (
            f"resolved {self.target} by {self.resolver} at {self.at} in {self.elapsed * 1000:.0f} ms "
            f"(answer {self.answer!r})"
        )


def excerpt(text: str) -> str:
    return text if len(text) <= ANSWER_EXCERPT else text[: ANSWER_EXCERPT - 1] + "…"
