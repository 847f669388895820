"""The GameDay model alone: the time window (hand-made datetimes) and cron expressions."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from orchestrator.model.gameday import Window, cron_problem

PARIS = ZoneInfo("Europe/Paris")


def window(**fields: object) -> Window:
    return Window.model_validate({"timezone": "Europe/Paris", "from": "09:00", "to": "17:00", **fields})


@pytest.mark.parametrize(
    ("moment", "allowed"),
    [
        (datetime(2026, 3, 3, 9, 0, tzinfo=PARIS), True),  # a Tuesday, at the opening minute
        (datetime(2026, 3, 3, 16, 59, tzinfo=PARIS), True),
        (datetime(2026, 3, 3, 17, 0, tzinfo=PARIS), False),  # `to` is exclusive
        (datetime(2026, 3, 3, 8, 59, tzinfo=PARIS), False),
        (datetime(2026, 3, 7, 10, 0, tzinfo=PARIS), False),  # a Saturday
        (datetime(2026, 3, 3, 7, 30, tzinfo=UTC), False),  # 08:30 in Paris (UTC+1 in March)
        (datetime(2026, 3, 3, 8, 30, tzinfo=UTC), True),  # 09:30 in Paris
        (datetime(2026, 7, 7, 7, 30, tzinfo=UTC), True),  # 09:30 in Paris in summer time (UTC+2)
    ],
)
def test_weekday_window_in_its_own_time_zone(moment: datetime, allowed: bool) -> None:
    assert window(days=["mon", "tue", "wed", "thu", "fri"]).allows(moment) is allowed


@pytest.mark.parametrize(
    ("moment", "allowed"),
    [
        (datetime(2026, 3, 6, 23, 0, tzinfo=PARIS), True),  # Friday night
        (datetime(2026, 3, 7, 1, 0, tzinfo=PARIS), True),  # still Friday's window, on Saturday
        (datetime(2026, 3, 7, 23, 0, tzinfo=PARIS), False),  # Saturday night is not in the days
        (datetime(2026, 3, 6, 12, 0, tzinfo=PARIS), False),
    ],
)
def test_a_window_past_midnight_belongs_to_the_day_it_starts(moment: datetime, allowed: bool) -> None:
    assert window(days=["fri"], **{"from": "22:00", "to": "02:00"}).allows(moment) is allowed


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown IANA time zone"),
        ({"from": "25:00"}, "String should match pattern"),
        ({"to": "09:00"}, "window would be empty"),
        ({"days": []}, "at least 1 item"),
        ({"days": ["monday"]}, "Input should be"),
    ],
)
def test_bad_windows_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        window(**fields)


@pytest.mark.parametrize("expression", ["0 10 * * 2", "*/15 9-17 * * mon-fri", "30 2 1,15 jan-jun 0", "0 0 * * 7"])
def test_valid_cron_expressions(expression: str) -> None:
    assert cron_problem(expression) is None


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("0 10 * *", "expected 5 fields"),
        ("0 10 * * * *", "expected 5 fields"),
        ("60 10 * * *", "minute: 60 is outside 0-59"),
        ("0 24 * * *", "hour: 24 is outside 0-23"),
        ("0 0 0 * *", "day of month: 0 is outside 1-31"),
        ("0 0 * 13 *", "month: 13 is outside 1-12"),
        ("0 0 * * 8", "day of week: 8 is outside 0-7"),
        ("*/0 * * * *", "a step of 0"),
        ("0 17-9 * * *", "runs backwards"),
        ("0 0 * * funday", "not a number or a name"),
        ("0 0 * * mon+1", "cannot read"),
    ],
)
def test_invalid_cron_expressions_say_why(expression: str, problem: str) -> None:
    assert problem in (cron_problem(expression) or "")
