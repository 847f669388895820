"""Undo records: everything a revert needs, as data (never code), so a journal can hold it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Undo:
    driver: str
    step_id: str
    state: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"driver": self.driver, "step_id": self.step_id, "state": dict(self.state)}

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> Undo:
        return cls(driver=entry["driver"], step_id=entry["step_id"], state=entry["state"])
