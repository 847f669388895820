"""What the live view shows of a running drill, computed from what the run wrote: pure, files already read.

`LiveDoc` is live.json checked field by field (the server never trusts a file's shape); `ProbeWindows` keeps,
as samples.bin is read, each probe's latest samples; `snapshot` turns both, with the SLAs judged so far, into
the plain document the page draws and each server-sent event carries. Every value in it is text or a number:
the page puts text in with `textContent`, never as markup.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.analysis import judge
from orchestrator.live_status import SCHEMA, TIMED_PHASES
from orchestrator.model.spec import DrillSpec, ErrorRateSla, LatencySla, RecoveryWindowSla
from orchestrator.model.timeline import FaultMark, PhaseMark, SampleLog, Timeline
from orchestrator.model.verdict import SlaVerdict
from orchestrator.reporting.formats import figure, seconds

LATEST = 20
"""Samples of each probe the live view shows, newest last."""
ACTIVE_STATES = ("injected", "left_in_place", "revert_failed")
"""A fault in one of these states is in place right now."""


class LiveFormatError(ValueError):
    """live.json is not one drillctl wrote (or not whole)."""


@dataclass(frozen=True)
class LiveFault:
    name: str
    type: str
    state: str
    what: str | None
    injected_at: float | None
    reverted_at: float | None
    error: str | None


@dataclass(frozen=True)
class LiveDoc:
    run_id: str
    drill: str
    drill_file: str
    drill_sha256: str | None
    pid: int
    started_at: str
    t0_monotonic: float
    phase: str
    phases: tuple[tuple[str, float | None], ...]
    faults: tuple[LiveFault, ...]
    stop: str | None


def _get(row: Mapping[str, Any], key: str, kind: type | tuple[type, ...], optional: bool = False) -> Any:
    value = row.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, kind):
        raise LiveFormatError(f"live.json: {key} is not what drillctl writes")
    return value


def parse_live(data: bytes) -> LiveDoc:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise LiveFormatError(f"live.json is not JSON: {e}") from e
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise LiveFormatError(f"live.json is not {SCHEMA}")
    number = (int, float)
    phases = []
    for row in _get(doc, "phases", list):
        if not isinstance(row, dict):
            raise LiveFormatError("live.json: a phase is not an object")
        phases.append((_get(row, "name", str), _get(row, "at", number, optional=True)))
    faults = []
    for name, row in _get(doc, "faults", dict).items():
        if not isinstance(row, dict):
            raise LiveFormatError("live.json: a fault is not an object")
        faults.append(
            LiveFault(
                name=str(name),
                type=_get(row, "type", str),
                state=_get(row, "state", str),
                what=_get(row, "what", str, optional=True),
                injected_at=_get(row, "injected_at", number, optional=True),
                reverted_at=_get(row, "reverted_at", number, optional=True),
                error=_get(row, "error", str, optional=True),
            )
        )
    return LiveDoc(
        run_id=_get(doc, "run_id", str),
        drill=_get(doc, "drill", str),
        drill_file=_get(doc, "drill_file", str),
        drill_sha256=_get(doc, "drill_sha256", str, optional=True),
        pid=_get(doc, "pid", int),
        started_at=_get(doc, "started_at", str),
        t0_monotonic=float(_get(doc, "t0_monotonic", number)),
        phase=_get(doc, "phase", str),
        phases=tuple(phases),
        faults=tuple(faults),
        stop=_get(doc, "stop", str, optional=True),
    )


class ProbeWindows:
    """Each probe's latest LATEST sample rows and its counts so far, read from a growing SampleLog: each update
    costs the rows landed since the last one."""

    def __init__(self, log: SampleLog) -> None:
        self.log = log
        self.read = 0
        self.latest: dict[int, deque[int]] = {}
        self.total: dict[int, int] = {}
        self.passed: dict[int, int] = {}

    def update(self) -> int:
        """Takes in the rows landed since the last call; returns how many."""
        log, start, end = self.log, self.read, len(self.log)
        for i in range(start, end):
            probe = log.probe[i]
            window = self.latest.get(probe)
            if window is None:
                window = self.latest[probe] = deque(maxlen=LATEST)
            window.append(i)
            self.total[probe] = self.total.get(probe, 0) + 1
            self.passed[probe] = self.passed.get(probe, 0) + log.ok[i]
        self.read = end
        return end - start

    def probes(self) -> list[dict[str, Any]]:
        log, out = self.log, []
        for probe, rows in sorted(self.latest.items(), key=lambda item: log.probes[item[0]]):
            latest = [_sample(log, i) for i in rows]
            recent = sum(log.ok[i] for i in rows)
            out.append(
                {
                    "name": log.probes[probe],
                    "samples": self.total[probe],
                    "availability": figure(self.passed[probe] / self.total[probe], "ratio"),
                    "recent": figure(recent / len(rows), "ratio"),
                    "ok": bool(log.ok[rows[-1]]),
                    "latest": latest,
                }
            )
        return out


def _sample(log: SampleLog, i: int) -> dict[str, Any]:
    latency, lag = log.latency[i], log.lag[i]
    return {
        "at": log.at[i],
        "lag": None if math.isnan(lag) else lag,
        "latency": None if math.isnan(latency) else latency,
        "ok": bool(log.ok[i]),
        "phase": log.phases[log.phase[i]],
        "error": log.errors[log.error[i]] or None,
    }


def timeline_of(doc: LiveDoc, spec: DrillSpec, log: SampleLog, now: float) -> Timeline:
    """The run's timeline as far as it went: phases end where the next began (or now), faults as they stand."""
    timed = [(name, at) for name, at in doc.phases if name in TIMED_PHASES and at is not None]
    phases = tuple(
        PhaseMark(name, at, timed[i + 1][1] if i + 1 < len(timed) else now) for i, (name, at) in enumerate(timed)
    )
    scheduled = {f.name: f for f in spec.spec.faults}
    marks = []
    for fault in doc.faults:
        planned = scheduled.get(fault.name)
        if planned is None:
            continue
        marks.append(
            FaultMark(
                name=fault.name,
                type=fault.type,
                params={},
                scheduled_start=planned.start,
                scheduled_end=planned.start + planned.duration,
                injected_at=fault.injected_at,
                reverted_at=fault.reverted_at,
                ended_at=fault.reverted_at,
            )
        )
    steady = spec.spec.steady_state
    return Timeline(
        interval=steady.interval,
        probes=tuple(p.name for p in steady.probes),
        samples=log,
        phases=phases,
        faults=tuple(marks),
        end=now,
    )


def sla_states(spec: DrillSpec, timeline: Timeline, now: float) -> list[dict[str, Any]]:
    """Each SLA as judged so far, and whether that is decided: a phase's figure once the phase is over, a recovery
    window once recovery was seen, or once its limit (and `stable_for`) passed without one."""
    closed = {p.name for p in timeline.phases[:-1]}
    out = []
    for sla, verdict in zip(spec.spec.slas, judge(spec, timeline), strict=True):
        if isinstance(sla, RecoveryWindowSla):
            ref = verdict.window_from
            decided = verdict.measured is not None or (ref is not None and now > ref + sla.max + sla.stable_for)
        elif isinstance(sla, ErrorRateSla | LatencySla):
            decided = sla.phase in closed
        else:  # alert and workload SLAs are judged from what the run gathers up to its end (the checker)
            decided = False
        out.append(_sla(verdict, decided))
    return out


def _sla(verdict: SlaVerdict, decided: bool) -> dict[str, Any]:
    state = ("passed" if verdict.passed else "failed") if decided else "pending"
    return {
        "name": verdict.name,
        "type": verdict.type,
        "state": state,
        "measured": figure(verdict.measured, verdict.unit),
        "threshold": figure(verdict.threshold, verdict.unit),
        "detail": verdict.detail,
    }


def final_slas(verdicts: Sequence[SlaVerdict]) -> list[dict[str, Any]]:
    """A finished run's SLAs, from its report: all decided."""
    return [_sla(v, True) for v in verdicts]


def snapshot(
    doc: LiveDoc,
    windows: ProbeWindows,
    slas: list[dict[str, Any]],
    sla_note: str | None,
    now: float,
    state: str,
) -> dict[str, Any]:
    """The live view's whole state, as one JSON-ready document (one server-sent event)."""
    return {
        "run_id": doc.run_id,
        "drill": doc.drill,
        "state": state,
        "phase": doc.phase,
        "now": seconds(now),
        "stop": doc.stop,
        "t0_monotonic": doc.t0_monotonic,
        "faults": [
            {
                "name": f.name,
                "type": f.type,
                "state": f.state,
                "active": f.state in ACTIVE_STATES,
                "what": f.what,
                "injected_at": seconds(f.injected_at),
                "reverted_at": seconds(f.reverted_at),
                "error": f.error,
            }
            for f in doc.faults
        ],
        "probes": windows.probes(),
        "slas": slas,
        "sla_note": sla_note,
    }
