"""Durations as drills write them: parse_duration's units and refusals, and format_duration."""

from __future__ import annotations

import pytest

from orchestrator.model.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10us", 10e-6),
        ("250ms", 0.25),
        ("30s", 30.0),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1.5s", 1.5),
        ("0.5m", 30.0),
        ("2.25h", 8100.0),
        ("0s", 0.0),
        ("+5s", 5.0),
        ("-1s", -1.0),
        ("-250ms", -0.25),
    ],
)
def test_parse_duration_units_decimals_and_signs(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [5, 5.0, 0, True, False, None, ["1s"], {"s": 1}])
def test_parse_duration_refuses_non_strings(value: object) -> None:
    with pytest.raises(ValueError, match="expected a duration such as '250ms'") as info:
        parse_duration(value)
    assert repr(value) in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " 3s ",
        "100 ms",
        "5",
        "1.5",
        "fast",
        "s",
        "5sec",
        "5 seconds",
        "5S",
        "5ms5",
        "1e3s",
        ".5s",
        "5.s",
        "1d",
        "5s s",
        "--1s",
    ],
)
def test_parse_duration_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (0.000_5, "0.5ms"),
        (0.1, "100ms"),
        (0.25, "250ms"),
        (0.999, "999ms"),
        (1.0, "1s"),
        (1.5, "1.5s"),
        (30.0, "30s"),
        (119.0, "119s"),
        (120.0, "2m"),
        (150.0, "2.5m"),
        (3600.0, "60m"),
        (-0.5, "-500ms"),
        (-3.0, "-3s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [0.0, 0.01, 0.25, 1.0, 2.5, 45.0, 90.0, 120.0, 150.0, 600.0])
def test_format_duration_round_trips_through_parse(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)
