"""A freeze: while one holds, no drill or game day starts, and every live one was told to stop. Data only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Freeze:
    reason: str
    since: datetime
    by: str
    """Who froze: user@host and the process, as people read it."""

    def to_json(self) -> dict[str, str]:
        return {"reason": self.reason, "since": self.since.isoformat(timespec="seconds"), "by": self.by}

    @classmethod
    def from_json(cls, data: object) -> Freeze:
        """Raises ValueError for anything that is not a freeze as `to_json` writes it."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a freeze is an object, not {type(data).__name__}")
        reason, since, by = data.get("reason"), data.get("since"), data.get("by")
        if not (isinstance(reason, str) and isinstance(since, str) and isinstance(by, str)):
            raise ValueError("a freeze needs the strings reason, since and by")
        moment = datetime.fromisoformat(since)
        return cls(reason, moment if moment.tzinfo else moment.replace(tzinfo=UTC), by)

    def describe(self) -> str:
        return f"frozen since {self.since.isoformat(timespec='seconds')} by {self.by}: {self.reason}"
