"""Every bound on what drillctl reads, in one place.

A chaos tool runs in CI and in clusters from files and ConfigMaps that many people can edit, and
it talks to backends it does not control: no input may cost unbounded time or memory. Each bound
is a named `Limit` here, checked where the input is read; hitting one raises `LimitExceeded`,
whose message names the bound, where it was hit, and the variable that raises it when a real
drill needs more.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from orchestrator.errors import DrillError


@dataclass(frozen=True)
class Limit:
    """A bound with a default, raised (or lowered) by `$DRILLCTL_LIMIT_<NAME>` for a real need."""

    name: str
    default: int
    unit: str
    what: str

    @property
    def env(self) -> str:
        return f"DRILLCTL_LIMIT_{self.name.upper()}"

    @property
    def value(self) -> int:
        """The default unless the environment says otherwise (read at each check: tests and CI set it)."""
        raw = os.environ.get(self.env)
        if raw is None:
            return self.default
        try:
            value = int(raw)
        except ValueError:
            return self.default
        return value if value > 0 else self.default

    def check(self, amount: int, where: str) -> None:
        """Raise LimitExceeded if `amount` is over the bound."""
        if amount > self.value:
            raise LimitExceeded(self, where, amount)


class LimitExceeded(DrillError):
    """An input is over one of the bounds below; nothing was built from it."""

    def __init__(self, limit: Limit, where: str, amount: int | None = None) -> None:
        self.limit = limit
        self.where = where
        self.amount = amount
        super().__init__(f"{where}: {self.reason}")

    @property
    def reason(self) -> str:
        """The message without the location, for callers that report the location their own way."""
        seen = "" if self.amount is None else f" ({self.amount:,} {self.limit.unit})"
        return (
            f"{self.limit.what} is over the limit of {self.limit.value:,} {self.limit.unit}{seen}; "
            f"if this is a real need, raise it with {self.limit.env}=N"
        )


# --- Toxiproxy answers ---

TOXIPROXY_ANSWER = Limit("toxiproxy_answer", 4 * 2**20, "bytes", "an answer of the Toxiproxy API")
