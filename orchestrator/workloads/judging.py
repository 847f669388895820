"""Verdicts of the workload's SLAs (data_loss, rpo, workload_latency) from the checker's findings. Pure."""

from __future__ import annotations

from orchestrator.model.findings import OperationStats, WorkloadResult
from orchestrator.model.spec import DataLossSla, RpoSla, WorkloadLatencySla
from orchestrator.model.units import Unit
from orchestrator.model.verdict import SlaVerdict

WorkloadSla = DataLossSla | RpoSla | WorkloadLatencySla


def judge_workload(sla: WorkloadSla, result: WorkloadResult | None) -> SlaVerdict:
    if result is None:
        unit: Unit = "count" if isinstance(sla, DataLossSla) else "s"
        threshold = float(sla.max) if not isinstance(sla, WorkloadLatencySla) else next(iter(sla.thresholds().values()))
        return _verdict(sla, None, threshold, unit, "the run had no workload history to check")
    if isinstance(sla, DataLossSla):
        return _data_loss(sla, result)
    if isinstance(sla, RpoSla):
        return _rpo(sla, result)
    return _latency(sla, result)


def _unverified(result: WorkloadResult) -> str | None:
    """Why nothing can be said of lost writes, if so."""
    if not result.verified:
        return "the read-back did not run (the run did not complete its recovery phase)"
    if result.keys_unverified:
        return f"{result.keys_unverified} of {result.keys_written} keys written could not be read back"
    return None


def _data_loss(sla: DataLossSla, result: WorkloadResult) -> SlaVerdict:
    """Exact: every key written is read back, so the count has no resolution."""
    why = _unverified(result)
    if why is not None:
        return _verdict(sla, None, float(sla.max), "count", f"not measured: {why}")
    detail = (
        f"{result.lost} of {result.acknowledged} acknowledged writes lost ({result.keys_verified} keys read back); "
        f"also {result.failed_present} reported failed but present, {result.unknown_present} of unknown outcome "
        f"present, {result.duplicates} duplicates, {result.stale_reads} stale reads"
    )
    return _verdict(sla, float(result.lost), float(sla.max), "count", detail)


def _rpo(sla: RpoSla, result: WorkloadResult) -> SlaVerdict:
    why = _unverified(result)
    if why is not None:
        return _verdict(sla, None, sla.max, "s", f"not measured: {why}")
    if not result.lost or result.rpo_from is None:
        return _verdict(sla, 0.0, sla.max, "s", "no acknowledged write was lost")
    return SlaVerdict(
        name=sla.name,
        type=sla.type,
        passed=result.rpo <= sla.max,
        measured=result.rpo,
        threshold=sla.max,
        unit="s",
        detail=f"{result.lost} acknowledged writes lost, meant to start from {result.rpo_from:.3f}s and acknowledged "
        f"until {result.rpo_to or 0.0:.3f}s (resolution: the widest spacing of writes around those edges)",
        runbook=sla.runbook,
        resolution=result.rpo_resolution,
        window_from=result.rpo_from,
        window_to=result.rpo_to,
        reference="lost acknowledged writes",
    )


def _latency(sla: WorkloadLatencySla, result: WorkloadResult) -> SlaVerdict:
    """Nearest-rank percentiles over both kinds (or the one named) in the phase: exact, observed values."""
    kinds = ("read", "write") if sla.operation is None else (sla.operation,)
    rows = [s for s in result.stats if s.phase == sla.phase and s.operation in kinds]
    what = " and ".join(kinds)
    thresholds = sla.thresholds()
    if not rows:
        limit = next(iter(thresholds.values()))
        return _verdict(sla, None, limit, "s", f"no {what} operations in phase {sla.phase}", phase=sla.phase)
    worst: SlaVerdict | None = None
    for key, limit in thresholds.items():
        value = _worst(rows, key)
        ops = sum(s.operations for s in rows)
        detail = f"{key} of {what} operations in {sla.phase} over {ops} operations, from their intended start"
        verdict = _verdict(sla, value, limit, "s", detail, phase=sla.phase)
        if worst is None or _margin(verdict) < _margin(worst):
            worst = verdict
    assert worst is not None  # loading refuses a workload_latency SLA without thresholds
    return worst


def _worst(rows: list[OperationStats], key: str) -> float | None:
    """The highest of the kinds' percentiles: a bound on both (the exact joint percentile needs every operation)."""
    values = [v for s in rows if (v := getattr(s, key)) is not None]
    return max(values, default=None)


def _margin(v: SlaVerdict) -> float:
    return -float("inf") if v.measured is None else (v.threshold - v.measured) / v.threshold


def _verdict(
    sla: WorkloadSla, measured: float | None, threshold: float, unit: Unit, detail: str, phase: str | None = None
) -> SlaVerdict:
    return SlaVerdict.at_most(sla, measured, threshold, unit, detail, phase=phase)
