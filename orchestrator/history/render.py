"""What `drillctl history` and `drillctl compare --baseline history:...` print: text lines and JSON documents.

Pure, like `reporting/terminal.py`; cli.py only echoes these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from orchestrator.history.model import DrillSeries, RunQuery, RunRecord
from orchestrator.reporting.formats import figure

if TYPE_CHECKING:  # not at run time: `drillctl history` needs no baseline
    from orchestrator.history.trends import Baseline

SPARK_WIDTH = 30
"""Runs a sparkline shows (the newest); the other columns count every run."""
SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float | None], width: int = 30) -> str:
    """The last `width` values as block characters, lowest to highest; a gap for a value not measured."""
    shown = list(values)[-width:]
    present = [v for v in shown if v is not None]
    if not present:
        return " " * len(shown)
    low, high = min(present), max(present)
    top = len(SPARKS) - 1
    if high == low:
        return "".join(" " if v is None else SPARKS[top // 2] for v in shown)
    return "".join(" " if v is None else SPARKS[round((v - low) / (high - low) * top)] for v in shown)


def trend_lines(drills: Sequence[DrillSeries], gamedays: Sequence[RunRecord] = ()) -> list[str]:
    """Per drill: how many runs over which days, then one row per figure; then per game day, its drills."""
    if not drills and not gamedays:
        return ["no runs in the history match"]
    lines: list[str] = []
    for d in drills:
        passed = d.statuses.count("passed")
        first, last = d.started_at[0], d.started_at[-1]
        lines.append(
            f"drill {d.drill}: {_runs(len(d.run_ids))} ({passed} passed), {first:%Y-%m-%d %H:%M} to"
            f" {last:%Y-%m-%d %H:%M} UTC, last {d.run_ids[-1]} {d.verdicts[-1]}"
        )
        names = [f.subject if f.metric == "measured" else f"{f.subject} {f.metric}" for f in d.figures]
        width = max((len(n) for n in names), default=6)
        lines.append(f"  {'figure':<{width}}  {'runs':>5}  {'last':>9}  {'median':>9}  {'min/max':>19}  trend")
        for name, f in zip(names, d.figures, strict=True):
            span = f"{figure(f.low, f.unit)}/{figure(f.high, f.unit)}"
            lines.append(
                f"  {name:<{width}}  {len(f.measured):>5}  {figure(f.last, f.unit):>9}  {figure(f.median, f.unit):>9}"
                f"  {span:>19}  {sparkline(f.values, SPARK_WIDTH)}"
            )
    return lines + gameday_lines(gamedays)


def gameday_lines(gamedays: Sequence[RunRecord]) -> list[str]:
    """Per game day (entries oldest first): how many runs, then per drill how often it passed and how it
    ended last."""
    lines: list[str] = []
    for name, runs in _by_name(gamedays).items():
        passed = sum(g.status == "passed" for g in runs)
        first, last = runs[0].started_at, runs[-1].started_at
        lines.append(
            f"game day {name}: {_runs(len(runs))} ({passed} passed), {first:%Y-%m-%d %H:%M} to"
            f" {last:%Y-%m-%d %H:%M} UTC, last {runs[-1].run_id} {runs[-1].verdict}"
        )
        statuses: dict[str, list[str]] = {}
        for g in runs:
            for d in g.drills:
                statuses.setdefault(d.drill, []).append(d.status)
        width = max((len(n) for n in statuses), default=5)
        lines.append(f"  {'drill':<{width}}  {'runs':>5}  {'passed':>6}  last")
        lines += [
            f"  {drill:<{width}}  {len(seen):>5}  {seen.count('passed'):>6}  {seen[-1]}"
            for drill, seen in statuses.items()
        ]
    return lines


def _by_name(gamedays: Sequence[RunRecord]) -> dict[str, list[RunRecord]]:
    grouped: dict[str, list[RunRecord]] = {}
    for g in gamedays:
        grouped.setdefault(g.drill, []).append(g)
    return grouped


def _runs(n: int, kind: str = "") -> str:
    return f"{n} {kind}{'run' if n == 1 else 'runs'}"


def trends_json(query: RunQuery, drills: Sequence[DrillSeries], gamedays: Sequence[RunRecord] = ()) -> dict[str, Any]:
    """`drillctl history --output json`: the query, then per drill its runs (with their labels, when the
    series were read with them) and every figure's points, then per game day its runs and their drills."""
    return {
        "query": {
            "drill": query.drill,
            "since": None if query.since is None else query.since.isoformat(),
            "labels": dict(query.labels),
            "last": query.last,
        },
        "drills": [
            {
                "drill": d.drill,
                "runs": [
                    {
                        "run": run_id,
                        "started_at": started.isoformat(),
                        "status": status,
                        "verdict": verdict,
                        **({"labels": dict(d.labels[i])} if d.labels else {}),
                    }
                    for i, (run_id, started, status, verdict) in enumerate(
                        zip(d.run_ids, d.started_at, d.statuses, d.verdicts, strict=True)
                    )
                ],
                "figures": [
                    {
                        "subject": f.subject,
                        "metric": f.metric,
                        "unit": f.unit,
                        "runs": len(f.measured),
                        "last": f.last,
                        "median": f.median,
                        "min": f.low,
                        "max": f.high,
                        "points": [[run, v] for run, v in zip(d.run_ids, f.values, strict=True) if v is not None],
                    }
                    for f in d.figures
                ],
            }
            for d in drills
        ],
        "gamedays": [
            {
                "gameday": name,
                "runs": [
                    {
                        "run": g.run_id,
                        "started_at": g.started_at.isoformat(),
                        "status": g.status,
                        "verdict": g.verdict,
                        "labels": dict(g.labels),
                        "drills": [{"drill": d.drill, "status": d.status, "run": d.run_id} for d in g.drills],
                    }
                    for g in runs
                ],
            }
            for name, runs in _by_name(gamedays).items()
        ],
    }


def baseline_name(base: Baseline) -> str:
    """How a compared run's rolling baseline reads in place of a run id."""
    return f"median of {_runs(len(base.runs), 'passing ')} ({base.runs[0]} .. {base.runs[-1]})"


def baseline_json(base: Baseline, spec: str) -> dict[str, Any]:
    return {"history": spec, "runs": list(base.runs), "verdict": base.verdict.outcome}
