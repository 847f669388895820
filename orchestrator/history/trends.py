"""Pure: reports into history records, records into rolling baselines. No I/O.

A baseline is a `comparison.Judged` built from the medians of earlier passing runs, so `drillctl compare
--baseline history:...` judges a run with the very rules `drillctl compare A B` uses. The runs' spread (the
worst value minus the median) stands in for the baseline's resolution: a figure cannot regress by less than
the run-to-run variation already seen, so a run within the spread of its baseline passes.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from orchestrator.history.arguments import aware
from orchestrator.history.model import FaultFigure, GameDayDrill, RunRecord, SlaFigure
from orchestrator.model.verdict import DrillVerdict, ProbeStats, Recovery, RecoveryWindow, SlaVerdict

if TYPE_CHECKING:  # not at run time: what reads the history needs no report
    from orchestrator.reporting.report import Report


def labels_of(report: Report) -> dict[str, str]:
    """The `--label key=value` pairs a run was given, which report.json keeps in `environment.labels`."""
    found = report.environment.get("labels")
    if not isinstance(found, Mapping):
        return {}
    return {str(k): str(v) for k, v in found.items()}


def record_of(report: Report) -> RunRecord:
    """What the history keeps of a run: its verdict, every SLA's figures and every fault's recovery."""
    facts = report.facts
    return RunRecord(
        run_id=facts.run_id,
        drill=report.drill.name,
        started_at=aware(facts.started_at),
        finished_at=aware(facts.finished_at),
        status=report.status,
        verdict=report.verdict.outcome,
        labels=labels_of(report),
        slas=tuple(_sla(v) for v in report.verdicts),
        faults=tuple(
            FaultFigure(
                w.fault,
                w.recovery,
                _ns(w.time_to_impact),
                _ns(w.time_to_recover),
                round(w.unavailability, 9),
                round(w.longest_outage, 9),
                round(w.resolution, 9),
            )
            for w in report.windows
        ),
        source=str(facts.run_dir),
    )


GAMEDAY_VERDICTS = {"passed": "PASS", "failed": "FAIL", "stopped": "ABORTED"}


def record_of_gameday(document: Mapping[str, Any], folder: Path) -> RunRecord:
    """A game day as an entry of its own, from its gameday.json document (as it ends, and as `history import`
    reads it back): its status and each drill's, with the run ids of those that ran (their figures are in their
    own entries). Its id is its report folder's name as the game day wrote it, as a run's is its own; `folder`
    is where it is now. ValueError naming the field that is not as a finished game day writes it."""

    def text(value: Any, field: str) -> str:
        if not isinstance(value, str):
            raise ValueError(f"{field} is not a string")
        return value

    def moment(field: str) -> datetime:
        try:
            return aware(datetime.fromisoformat(text(document.get(field), field)))
        except ValueError as e:
            raise ValueError(f"{field} is not a time: {e}") from None

    status = document.get("status")
    if status == "running":
        raise ValueError("the game day did not finish: it was killed, or it runs still and records itself at its end")
    if status not in GAMEDAY_VERDICTS:
        raise ValueError(f"status {status!r} is none of {', '.join(GAMEDAY_VERDICTS)}")
    labels, drills = document.get("labels", {}), document.get("drills")
    if not isinstance(labels, Mapping) or not all(isinstance(v, str) for v in labels.values()):
        raise ValueError("labels is not an object of strings")
    if not isinstance(drills, list) or not all(isinstance(d, Mapping) for d in drills):
        raise ValueError("drills is not a list of objects")
    runs = [d.get("run_dir") for d in drills]
    if not all(r is None or isinstance(r, str) for r in runs):
        raise ValueError("a drill's run_dir is neither a path nor null")
    return RunRecord(
        run_id=Path(text(document.get("report_dir"), "report_dir")).name,
        drill=text(document.get("gameday"), "gameday"),
        started_at=moment("started_at"),
        finished_at=moment("finished_at"),
        status=status,
        verdict=GAMEDAY_VERDICTS[status],
        labels={str(k): v for k, v in labels.items()},
        source=str(folder),
        kind="gameday",
        drills=tuple(
            GameDayDrill(text(d.get("name"), "a drill's name"), text(d.get("status"), "a drill's status"), run)
            for d, run in zip(drills, (None if r is None else Path(r).name for r in runs), strict=True)
        ),
    )


def _sla(v: SlaVerdict) -> SlaFigure:
    measured = _ns(v.measured)
    margin = None if measured is None else _ns(v.threshold - measured)
    return SlaFigure(v.name, v.type, v.unit, v.passed, measured, v.threshold, margin, _ns(v.resolution))


def _ns(value: float | None) -> float | None:
    """To the nanosecond, as report.json keeps figures: a run recorded as it ends and the same run imported
    from its report.json later hold the same numbers."""
    return None if value is None else round(value, 9)


# --- rolling baselines ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Baseline:
    """The medians of earlier passing runs, in the shape `comparison.compare` reads (a `Judged`)."""

    runs: tuple[str, ...]
    """The run ids it was built from, oldest first."""
    verdict: DrillVerdict
    verdicts: list[SlaVerdict]
    windows: list[RecoveryWindow]
    stats: list[ProbeStats]


def baseline(records: Sequence[RunRecord]) -> Baseline:
    """Per SLA and per fault (as the newest run has them), the median of each figure over `records`; the
    resolution is the larger of the median resolution and the spread of the figures (worst minus median)."""
    if not records:
        raise ValueError("a baseline needs at least one run")
    newest = records[-1]
    verdicts = []
    for sla in newest.slas:
        same = [s for run in records for s in run.slas if s.name == sla.name]
        measured = [s.measured for s in same if s.measured is not None]
        resolutions = [s.resolution for s in same if s.resolution is not None]
        spread = _spread(measured)
        resolution = max(statistics.median(resolutions), spread) if resolutions else spread or None
        verdicts.append(
            SlaVerdict(
                name=sla.name,
                type=sla.type,
                passed=all(s.passed for s in same),
                measured=statistics.median(measured) if measured else None,
                threshold=sla.threshold,
                unit=sla.unit,
                detail=f"median of {len(measured)} runs",
                runbook=None,
                resolution=resolution,
            )
        )
    windows = []
    for fault in newest.faults:
        same_faults = [f for run in records for f in run.faults if f.fault == fault.fault]
        figures = {
            metric: [v for f in same_faults if (v := getattr(f, metric)) is not None]
            for metric in ("time_to_impact", "time_to_recover", "unavailability", "longest_outage")
        }
        medians = {metric: statistics.median(values) if values else None for metric, values in figures.items()}
        spread = max(_spread(figures[m]) for m in ("time_to_recover", "unavailability", "longest_outage"))
        windows.append(
            RecoveryWindow(
                fault=fault.fault,
                time_to_impact=medians["time_to_impact"],
                time_to_recover=medians["time_to_recover"],
                unavailability=medians["unavailability"] or 0.0,
                resolution=max(statistics.median(f.resolution for f in same_faults), spread),
                longest_outage=medians["longest_outage"] or 0.0,
                recovery=_most_common(f.recovery for f in same_faults),
            )
        )
    return Baseline(tuple(r.run_id for r in records), DrillVerdict("PASS"), verdicts, windows, [])


def _spread(values: Sequence[float]) -> float:
    return max(values) - statistics.median(values) if values else 0.0


def _most_common(recoveries: Iterable[str]) -> Recovery:
    """The usual way the fault ended (ties: the one seen first)."""
    return cast(Recovery, Counter(recoveries).most_common(1)[0][0])
