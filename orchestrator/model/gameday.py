"""The GameDay spec v1: a scheduled suite of drills. Data only: no I/O, no clock reads.

Whether a moment falls inside the allowed window is a pure function of that moment, so the
caller reads the clock once and the rule is tested with hand-made datetimes.
"""

from __future__ import annotations

import re
from datetime import datetime, time
from typing import Annotated, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from orchestrator.model.base import Name, Strict
from orchestrator.model.durations import NonNegativeDuration, PositiveDuration

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = get_args(Day)
"""In `datetime.weekday()` order."""
StopPolicy = Literal["first_failure", "first_abort", "never"]
ClockTime = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM, 24-hour")]

# Cron fields as Kubernetes CronJobs read them: minute hour day-of-month month day-of-week.
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
_CRON_PART = re.compile(r"^(?P<range>\*|\?|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(?P<step>\d+))?$")


def cron_problem(expression: str) -> str | None:
    """Why a 5-field cron expression is invalid, or None. Names (`mon`, `jan`) are accepted."""
    fields = expression.split()
    if len(fields) != 5:
        return f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
    for text, (what, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for part in text.lower().split(","):
            match = _CRON_PART.match(part)
            if match is None:
                return f"{what}: cannot read {part!r}"
            if match["step"] is not None and int(match["step"]) == 0:
                return f"{what}: a step of 0 in {part!r}"
            if match["range"] in ("*", "?"):
                continue
            bounds = []
            for value in match["range"].split("-"):
                number = names.index(value) + (1 if what == "month" else 0) if value in names else None
                if number is None and not value.isdigit():
                    return f"{what}: {value!r} is not a number{' or a name' if names else ''}"
                number = int(value) if number is None else number
                if not low <= number <= high:
                    return f"{what}: {number} is outside {low}-{high}"
                bounds.append(number)
            if len(bounds) == 2 and bounds[0] > bounds[1]:
                return f"{what}: range {part!r} runs backwards"
    return None


class Window(Strict):
    """When a game day may start: days of the week and a time span, in an IANA time zone."""

    timezone: str = Field(description="IANA time zone, e.g. Europe/Paris or UTC")
    days: list[Day] = Field(default_factory=lambda: list(DAYS), min_length=1)
    start: ClockTime = Field(alias="from")
    end: ClockTime = Field(alias="to", description="exclusive; earlier than `from` spans midnight")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown IANA time zone {value!r}") from e
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Window:
        if self.start == self.end:
            raise ValueError("`from` and `to` are equal: the window would be empty")
        return self

    def allows(self, moment: datetime) -> bool:
        """Whether an aware `moment` falls inside the window; a span past midnight belongs to its start day."""
        local = moment.astimezone(ZoneInfo(self.timezone))
        begin, end, now = time.fromisoformat(self.start), time.fromisoformat(self.end), local.time()
        day = DAYS[local.weekday()]
        if begin < end:
            return day in self.days and begin <= now < end
        if now >= begin:
            return day in self.days
        return now < end and DAYS[(local.weekday() - 1) % 7] in self.days

    def describe(self) -> str:
        days = "every day" if len(self.days) == 7 else ", ".join(self.days)
        return f"{days}, {self.start}-{self.end} {self.timezone}"


class Webhook(Strict):
    url: Annotated[str, Field(pattern=r"^https?://")]
    timeout: PositiveDuration = Field(
        default=10.0, description="deadline of the POST; a failure never changes the verdict"
    )


class LeaseSpec(Strict):
    enabled: bool | None = Field(default=None, description="default: on when a drill uses Kubernetes faults or probes")
    name: Name = "drillctl-gameday"
    namespace: Name = "default"
    duration: PositiveDuration = Field(default=60.0, description="leaseDurationSeconds; renewed every third of it")

    @field_validator("duration")
    @classmethod
    def _whole_seconds(cls, value: float) -> float:
        if value < 3 or value != int(value):
            raise ValueError(f"must be whole seconds, at least 3s, got {value:g}s")
        return value


class GameDayMetadata(Strict):
    name: Name
    description: str = ""
    labels: dict[str, str] = Field(default_factory=dict)


class GameDayBody(Strict):
    drills: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] = Field(
        description="drill files or globs, relative to this file; each glob expands in name order"
    )
    order: Literal["listed", "shuffled"] = "listed"
    seed: int | None = Field(default=None, description="order: shuffled: the same seed gives the same order")
    cooldown: NonNegativeDuration = Field(default=0.0, description="pause between two drills")
    stop: StopPolicy = Field(
        default="first_failure",
        description="first_failure: after a drill that did not pass; first_abort: after one that was aborted or "
        "could not run (SLA failures go on); never: run every drill",
    )
    window: Window | None = Field(default=None, description="refuse to start outside it unless --force")
    schedule: str | None = Field(default=None, description="5-field cron expression; the Helm chart's CronJob")
    webhook: Webhook | None = None
    lease: LeaseSpec = Field(default_factory=LeaseSpec)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and (problem := cron_problem(value)) is not None:
            raise ValueError(f"not a valid cron expression: {problem}")
        return value


class GameDaySpec(Strict):
    api_version: Literal["drillctl.dev/v1"] = Field(alias="apiVersion")
    kind: Literal["GameDay"]
    metadata: GameDayMetadata
    spec: GameDayBody

    @property
    def name(self) -> str:
        return self.metadata.name
