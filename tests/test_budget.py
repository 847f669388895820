"""The budget harness itself: a call over its time or memory budget fails, one within it passes."""

from __future__ import annotations

import time

import pytest

from tests.budget import BudgetExceeded, run_bounded


def _allocate(mib: int) -> int:
    return len(bytearray(mib * 2**20))


def _raise() -> None:
    raise ValueError("clear error")


def test_within_budget_returns_the_value() -> None:
    assert run_bounded(_allocate, 8, memory_mib=64).value == 8 * 2**20


def test_over_the_memory_budget_fails() -> None:
    with pytest.raises(BudgetExceeded, match="MiB"):
        run_bounded(_allocate, 256, memory_mib=64)


def test_over_the_time_budget_fails() -> None:
    with pytest.raises(BudgetExceeded, match="still running"):
        run_bounded(time.sleep, 30, seconds=0.5)


def test_the_calls_own_exception_comes_back() -> None:
    outcome = run_bounded(_raise)
    assert isinstance(outcome.error, ValueError)
    assert str(outcome.error) == "clear error"
