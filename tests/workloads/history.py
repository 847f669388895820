"""Hand-made operation histories for the checker's tests."""

from __future__ import annotations

import math

from orchestrator.model.operations import KINDS, OUTCOMES, OperationLog


def history(*rows: tuple[str, str, int, int, float, float | None], phase: str = "fault") -> OperationLog:
    """Rows of (kind, outcome, key, value, at, latency); a write's value is its index, a read's the index it found
    (-1: nothing, -2: a value never written)."""
    log = OperationLog()
    p = log.phase_id(phase)
    for kind, outcome, key, value, at, latency in rows:
        log.append(
            KINDS.index(kind),
            OUTCOMES.index(outcome),
            p,
            key,
            value,
            at,
            math.nan if latency is None else latency,
            0.0,
            0,
        )
    return log
