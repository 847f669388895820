"""Run one call in a forked child under a wall-clock and memory budget.

The bounded-input tests and the fuzz tests use it: an input that would make drillctl run for a
minute or grow by gigabytes must fail the test quickly, not take the machine down with it. The
memory budget is an address-space limit (RLIMIT_AS) set in the child at its size after the fork
plus the budget, so it bounds what the call itself allocates.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import resource
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

_FORK = multiprocessing.get_context("fork")


class BudgetExceeded(AssertionError):
    """The call took longer, or needed more memory, than its budget."""


@dataclass(frozen=True)
class Outcome:
    """What the call returned, or the exception it raised (rebuilt in the parent), and how long it took."""

    value: Any
    error: BaseException | None
    seconds: float


def _vm_size() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def _child(conn: Connection, fn: Callable[..., Any], args: tuple[Any, ...], memory: int) -> None:
    limit = _vm_size() + memory
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    start = time.monotonic()
    try:
        value: Any = fn(*args)
        error: BaseException | None = None
    except MemoryError:
        value, error = None, BudgetExceeded(f"needed more than {memory // 2**20} MiB")
    except BaseException as e:
        value, error = None, e
    seconds = time.monotonic() - start
    try:
        conn.send_bytes(pickle.dumps(Outcome(value, error, seconds)))
    except Exception:
        conn.send_bytes(pickle.dumps(Outcome(None, RuntimeError(traceback.format_exc()), seconds)))
    conn.close()
    os._exit(0)


def run_bounded(fn: Callable[..., Any], *args: Any, seconds: float = 5.0, memory_mib: int = 64) -> Outcome:
    """Call fn(*args) in a forked child; raise BudgetExceeded if it runs past `seconds` or past `memory_mib`.

    The call's own exceptions come back in `Outcome.error` (so a test can check they are the clear
    ones), and its return value in `Outcome.value`; both must pickle.
    """
    receive, send = _FORK.Pipe(duplex=False)
    child = _FORK.Process(target=_child, args=(send, fn, args, memory_mib * 2**20), daemon=True)
    child.start()
    send.close()
    try:
        if not receive.poll(seconds):
            raise BudgetExceeded(f"still running after {seconds}s")
        try:
            outcome: Outcome = pickle.loads(receive.recv_bytes())
        except EOFError as e:
            raise BudgetExceeded(f"the child died (exit {child.exitcode}), likely out of memory") from e
    finally:
        receive.close()
        if child.is_alive():
            child.kill()
        child.join(5)
    if isinstance(outcome.error, BudgetExceeded):
        raise outcome.error
    return outcome
