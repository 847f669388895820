"""Helpers of the bounded-input tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.budget import run_bounded


def said(fn: Callable[..., Any], *args: Any) -> Any:
    """What fn(*args) returned, or `refused: Type: message` for the error it raised: errors of several
    arguments (LimitExceeded) do not pickle across run_bounded's fork, their text does."""
    try:
        return fn(*args)
    except Exception as e:
        return f"refused: {type(e).__name__}: {e}"


def bounded_said(fn: Callable[..., Any], *args: Any, seconds: float = 5.0, memory_mib: int = 64) -> Any:
    """`said` in a child under a time and memory budget (tests/budget.py)."""
    return run_bounded(said, fn, *args, seconds=seconds, memory_mib=memory_mib).value
