"""What `drillctl history` and `drillctl compare --baseline history:...` print: text lines and JSON documents.

Pure, like `reporting/terminal.py`; cli.py only echoes these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestrator.history.model import RunQuery, RunRecord
from orchestrator.history.trends import Baseline, Trend, sparkline
from orchestrator.reporting.formats import figure

SPARK_WIDTH = 30
"""Runs a sparkline shows (the newest); the other columns count every run."""


def trend_lines(records: Sequence[RunRecord], found: Sequence[Trend]) -> list[str]:
    """Per drill: how many runs over which days, then one row per figure."""
    if not records:
        return ["no runs in the history match"]
    lines: list[str] = []
    for drill in dict.fromkeys(r.drill for r in records):
        runs = [r for r in records if r.drill == drill]
        passed = sum(r.status == "passed" for r in runs)
        first, last = runs[0].started_at, runs[-1].started_at
        lines.append(
            f"drill {drill}: {_runs(len(runs))} ({passed} passed), {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC,"
            f" last {runs[-1].run_id} {runs[-1].verdict}"
        )
        rows = [t for t in found if t.drill == drill]
        names = [t.subject if t.metric == "measured" else f"{t.subject} {t.metric}" for t in rows]
        width = max((len(n) for n in names), default=6)
        lines.append(f"  {'figure':<{width}}  {'runs':>5}  {'last':>9}  {'median':>9}  {'min/max':>19}  trend")
        for name, t in zip(names, rows, strict=True):
            span = f"{figure(t.low, t.unit)}/{figure(t.high, t.unit)}"
            spark = sparkline([p.value for p in t.points], SPARK_WIDTH)
            lines.append(
                f"  {name:<{width}}  {len(t.values):>5}  {figure(t.last, t.unit):>9}  {figure(t.median, t.unit):>9}"
                f"  {span:>19}  {spark}"
            )
    return lines


def _runs(n: int, kind: str = "") -> str:
    return f"{n} {kind}{'run' if n == 1 else 'runs'}"


def trends_json(query: RunQuery, records: Sequence[RunRecord], found: Sequence[Trend]) -> dict[str, Any]:
    """`drillctl history --output json`: the query, then per drill its runs and every figure's points."""
    drills = []
    for drill in dict.fromkeys(r.drill for r in records):
        runs = [r for r in records if r.drill == drill]
        drills.append(
            {
                "drill": drill,
                "runs": [
                    {
                        "run": r.run_id,
                        "started_at": r.started_at.isoformat(),
                        "status": r.status,
                        "verdict": r.verdict,
                        "labels": dict(r.labels),
                    }
                    for r in runs
                ],
                "figures": [
                    {
                        "subject": t.subject,
                        "metric": t.metric,
                        "unit": t.unit,
                        "runs": len(t.values),
                        "last": t.last,
                        "median": t.median,
                        "min": t.low,
                        "max": t.high,
                        "points": [[p.run_id, p.value] for p in t.points],
                    }
                    for t in found
                    if t.drill == drill
                ],
            }
        )
    return {
        "query": {
            "drill": query.drill,
            "since": None if query.since is None else query.since.isoformat(),
            "labels": dict(query.labels),
            "last": query.last,
        },
        "drills": drills,
    }


def baseline_name(base: Baseline) -> str:
    """How a compared run's rolling baseline reads in place of a run id."""
    return f"median of {_runs(len(base.runs), 'passing ')} ({base.runs[0]} .. {base.runs[-1]})"


def baseline_json(base: Baseline, spec: str) -> dict[str, Any]:
    return {"history": spec, "runs": list(base.runs), "verdict": base.verdict.outcome}
