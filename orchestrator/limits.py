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
from pathlib import Path

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


# --- drill and game-day files ---

# Real drills and game days are a few KB: 1 MiB is 300 times that.
SPEC_FILE_BYTES = Limit("spec_file_bytes", 2**20, "bytes", "the size of a drill or game-day file")
# A real drill has a few hundred nodes; 50k also keeps composing a file under a second.
YAML_NODES = Limit("yaml_nodes", 50_000, "nodes", "the count of YAML nodes written in the file")
# Real aliases share a probe or a fault a few times; an alias bomb expands to billions.
YAML_EXPANDED_NODES = Limit(
    "yaml_expanded_nodes", 100_000, "nodes", "the count of YAML nodes once aliases are expanded"
)
# Real drills nest lists and mappings under 10 deep.
YAML_DEPTH = Limit("yaml_depth", 64, "levels", "the nesting of YAML lists and mappings")
# The longest real value is a command line, a URL or a description.
YAML_STRING_CHARS = Limit("yaml_string_chars", 2**16, "characters", "a YAML string")
# Real lists hold tens of faults, probes or drills.
YAML_LIST_ITEMS = Limit("yaml_list_items", 10_000, "items", "a YAML list")
# Real mappings have under 50 keys.
YAML_MAPPING_KEYS = Limit("yaml_mapping_keys", 10_000, "keys", "a YAML mapping")
# A runbook is a few pages of Markdown.
RUNBOOK_FILE_BYTES = Limit("runbook_file_bytes", 2**20, "bytes", "the size of a runbook file")


def read_at_most(path: Path, limit: Limit) -> bytes:
    """A file's bytes, having read at most limit+1 of them: a huge file is refused without being read."""
    cap = limit.value
    with path.open("rb") as f:
        data = f.read(cap + 1)
        if len(data) > cap:
            raise LimitExceeded(limit, str(path), max(os.fstat(f.fileno()).st_size, len(data)))
    return data
