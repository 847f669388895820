"""One exception tree; every error the CLI turns into an exit code starts here."""

from __future__ import annotations

from dataclasses import dataclass


class DrillError(Exception):
    """Base of every error drillctl raises on purpose."""


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a drill file, located so an editor can jump to it."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class SpecError(DrillError):
    """The drill file is invalid; nothing was started or injected."""

    def __init__(self, issues: list[SpecIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class PreflightError(DrillError):
    """A backend or target is not usable; nothing was injected."""


class BackendError(DrillError):
    """A call to an external system (Toxiproxy, a process, Kubernetes) failed or timed out."""


class FaultError(DrillError):
    """A fault could not be prepared, injected or reverted."""


class RevertFailed(FaultError):
    """A revert failed: the system may still carry the fault. Always reported, never swallowed."""
