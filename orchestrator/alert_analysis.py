"""Pure judgement of alert SLAs: alert marks plus measured impact and recovery in, verdicts out.

A watcher polls Prometheus's alerts, so every state change it records is known to lie between the
send of the poll before (`since`) and the answer of the poll that saw it (`at`). Figures are taken
at `at`, the latest moment the change can have happened, so a detection is never reported faster
than it was proven; their resolution is `at - since` plus the probes' sample spacing at the
impact (or recovery) they are measured from. Notifications are timed when they reached the
receiver, so a time to notify is as precise as the impact alone. No clock, no I/O.

When Prometheus did not answer for long enough that a whole state could hide in the gap, a figure
that was looked for there and not seen is *not measured* (it may have happened unseen), never
judged unseen; like every figure never measured, it fails its SLA, and the detail says when the
polls failed and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.model.alerts import (
    AlertChange,
    AlertObservations,
    AlertState,
    Delivery,
    DetectionStep,
    DetectionStepName,
    DetectionTimeline,
    Unanswered,
    matches,
)
from orchestrator.model.spec import (
    AlertClearsSla,
    AlertSla,
    DrillSpec,
    MeasuredAlertSla,
    NoAlertSla,
    TimeToDetectSla,
    TimeToNotifySla,
)
from orchestrator.model.timeline import Timeline
from orchestrator.model.verdict import SlaVerdict

DECIDED_MARGIN_POLLS = 2
"""Past an SLA's deadline by this many polls, a change not seen yet cannot count any more: the SLA is decided."""
MAX_STRETCHES_SAID = 3


@dataclass(frozen=True)
class FaultMoments:
    """What analysis measured of one injected fault, with how precisely: the reference of every alert SLA."""

    fault: str
    injected_at: float
    impact: float | None
    impact_resolution: float
    recovered: float | None
    """Start of the first stable recovery after the impact."""
    recovered_resolution: float
    runbook: str | None = None


def reference(sla: MeasuredAlertSla, moments: Sequence[FaultMoments]) -> FaultMoments | None:
    """The fault an alert SLA is measured from: named, else the first to have an impact, else the first injected."""
    if sla.fault is not None:
        return next((m for m in moments if m.fault == sla.fault), None)
    ordered = sorted(moments, key=lambda m: m.injected_at)
    return next((m for m in ordered if m.impact is not None), ordered[0] if ordered else None)


def changes_of(observed: AlertObservations, key: str) -> list[AlertChange]:
    return [c for c in observed.changes if c.alert == key]


def state_at(changes: Sequence[AlertChange], at: float) -> AlertState:
    """The state last seen by `at`."""
    state: AlertState = "inactive"
    for change in changes:
        if change.at > at:
            break
        state = change.state
    return state


def first(changes: Sequence[AlertChange], state: AlertState, after: float) -> AlertChange | None:
    return next((c for c in changes if c.state == state and c.at >= after), None)


def notified(deliveries: Sequence[Delivery], sla: AlertSla, status: str, after: float) -> Delivery | None:
    """The first webhook at or after `after` that carries a matching alert with this status."""
    selector = sla.selector
    for d in deliveries:
        if d.at >= after and any(a.status == status and matches(selector, a.labels) for a in d.alerts):
            return d
    return None


def hidden(observed: AlertObservations, alert: str, start: float, end: float, now: float) -> list[Unanswered]:
    """Stretches without an answer that overlap [start, end] and could hide a whole state of `alert`.

    Prometheus keeps a state at least one evaluation interval, so a stretch shorter than that between two
    answered polls hides nothing (the next answer still shows it); one never answered again (to `now`), or of an
    alert whose rule is unknown, can hide anything.
    """
    rule = observed.rule(alert)
    found = []
    for u in observed.unanswered:
        until = now if u.until is None else u.until
        if until < start or u.after > end:
            continue
        if u.until is None or rule is None or until - u.after >= rule.interval:
            found.append(u)
    return found


def _not_measured(sla: AlertSla, what: str, stretches: Sequence[Unanswered]) -> SlaVerdict:
    shown = "; ".join(u.describe() for u in stretches[:MAX_STRETCHES_SAID])
    more = len(stretches) - MAX_STRETCHES_SAID
    detail = f"not measured: {what} unseen while Prometheus did not answer: {shown}"
    return _verdict(sla, None, _threshold(sla), detail + (f"; {more} more stretches" if more > 0 else ""), None)


def judge_alert_sla(sla: AlertSla, timeline: Timeline, moments: Sequence[FaultMoments]) -> SlaVerdict:
    observed = timeline.alerts
    if observed is None:
        return _verdict(sla, None, _threshold(sla), "alerts were not watched in this run", None)
    if isinstance(sla, NoAlertSla):
        return _judge_no_alert(sla, observed, timeline.end)
    m = reference(sla, moments)
    if m is None:
        return _verdict(sla, None, sla.max, "the fault it is measured from was never injected", None)
    if isinstance(sla, AlertClearsSla):
        return _judge_clears(sla, observed, m, timeline.end)
    if m.impact is None:
        return _verdict(sla, None, sla.max, f"fault {m.fault} had no measured impact: nothing to detect", None)
    if isinstance(sla, TimeToNotifySla):
        return _judge_notify(sla, observed, m, m.impact)
    return _judge_detect(sla, observed, m, m.impact, timeline.end)


def _threshold(sla: AlertSla) -> float:
    return 0.0 if isinstance(sla, NoAlertSla) else sla.max


def _judge_detect(
    sla: TimeToDetectSla, observed: AlertObservations, m: FaultMoments, impact: float, end: float
) -> SlaVerdict:
    key = sla.selector.key
    changes = changes_of(observed, key)
    firing = first(changes, "firing", m.injected_at)
    already = state_at(changes, m.injected_at)
    if firing is None and (gaps := hidden(observed, sla.alert, m.injected_at, impact + sla.max, end)):
        return _not_measured(sla, f"{key} may have fired", gaps)
    if firing is None:
        note = f"; it was already {already} at the injection" if already != "inactive" else ""
        return _verdict(
            sla,
            None,
            sla.max,
            f"{key} never seen firing after {m.fault} was injected ({_polling(observed)}){note}",
            None,
        )
    measured = firing.at - impact
    poll = firing.resolution if firing.resolution is not None else observed.poll_interval
    res = poll + m.impact_resolution
    detail = (
        f"{key} firing {measured:.3f}s after the impact of {m.fault}{_pending(changes, firing, m.injected_at)}"
        f"{_rule(observed, sla.alert)}; resolution {res * 1000:.3g}ms: the polls around it were "
        f"{poll * 1000:.3g}ms apart, the probes' samples at the impact {m.impact_resolution * 1000:.3g}ms"
    )
    return _verdict(sla, measured, sla.max, detail, res, reference=f"impact of {m.fault}")


def _pending(changes: Sequence[AlertChange], firing: AlertChange, after: float) -> str:
    """How long the alert was seen pending before it fired, if a poll saw it pending."""
    pending = [c for c in changes if c.state == "pending" and after <= c.at < firing.at]
    if not pending:
        return " (never seen pending: a `for: 0` rule, or a pending stretch between two polls)"
    return f" (pending for {firing.at - pending[0].at:.3f}s)"


def _rule(observed: AlertObservations, alert: str) -> str:
    rule = observed.rule(alert)
    if rule is None:
        return ""
    return (
        f"; its rule holds for {rule.hold:g}s and is evaluated every {rule.interval:g}s, so it fires "
        f"{rule.hold:g}s to {rule.hold + rule.interval:g}s after Prometheus first sees the metric change"
    )


def _polling(observed: AlertObservations) -> str:
    gap = f", the widest {observed.widest_gap * 1000:.3g}ms apart" if observed.polls > 1 else ""
    failed = f", {observed.failed_polls} failed" if observed.failed_polls else ""
    return f"{observed.polls} polls every {observed.poll_interval * 1000:g}ms{gap}{failed}"


def _judge_notify(sla: TimeToNotifySla, observed: AlertObservations, m: FaultMoments, impact: float) -> SlaVerdict:
    key = sla.selector.key
    delivery = notified(observed.deliveries, sla, "firing", m.injected_at)
    if delivery is None:
        where = observed.receiver or "the receiver"
        return _verdict(
            sla,
            None,
            sla.max,
            f"no firing notification of {key} reached {where} after {m.fault} was injected "
            f"({len(observed.deliveries)} webhooks in all)",
            None,
        )
    measured = delivery.at - impact
    detail = (
        f"Alertmanager's notification of {key} (receiver {delivery.receiver}) arrived {measured:.3f}s after the "
        f"impact of {m.fault}; resolution {m.impact_resolution * 1000:.3g}ms: the probes' sample spacing at the "
        "impact (the webhook is timed on arrival)"
    )
    return _verdict(sla, measured, sla.max, detail, m.impact_resolution, reference=f"impact of {m.fault}")


def _judge_clears(sla: AlertClearsSla, observed: AlertObservations, m: FaultMoments, end: float) -> SlaVerdict:
    key = sla.selector.key
    changes = changes_of(observed, key)
    firing = first(changes, "firing", m.injected_at)
    if firing is None and (gaps := hidden(observed, sla.alert, m.injected_at, end, end)):
        return _not_measured(sla, f"{key} may have fired and cleared", gaps)
    if firing is None:
        return _verdict(sla, None, sla.max, f"{key} never fired after {m.fault} was injected: nothing to clear", None)
    if m.recovered is None:
        return _verdict(sla, None, sla.max, f"the probes never recovered from {m.fault}: no recovery to clear by", None)
    resolved = first(changes, "inactive", firing.at)
    if resolved is None and (gaps := hidden(observed, sla.alert, firing.at, m.recovered + sla.max, end)):
        return _not_measured(sla, f"{key} may have cleared", gaps)
    if resolved is None:
        late = end - m.recovered
        return _verdict(sla, None, sla.max, f"{key} still firing at the end, {late:.3f}s after the recovery", None)
    measured = resolved.at - m.recovered
    poll = resolved.resolution if resolved.resolution is not None else observed.poll_interval
    res = poll + m.recovered_resolution
    detail = (
        f"{key} resolved {measured:.3f}s after the probes recovered from {m.fault}; resolution {res * 1000:.3g}ms: "
        f"the polls around it were {poll * 1000:.3g}ms apart, the probes' samples at the recovery "
        f"{m.recovered_resolution * 1000:.3g}ms"
    )
    return _verdict(sla, measured, sla.max, detail, res, reference=f"recovery from {m.fault}")


def _judge_no_alert(sla: NoAlertSla, observed: AlertObservations, end: float) -> SlaVerdict:
    """Measured: seconds seen firing, against 0. Exact when polls come faster than the rule is evaluated:
    Prometheus holds a state at least one evaluation interval, so no firing stretch fits between polls."""
    key = sla.selector.key
    changes = changes_of(observed, key)
    stretches = [
        (c, (changes[k + 1].at if k + 1 < len(changes) else end) - c.at)
        for k, c in enumerate(changes)
        if c.state == "firing"
    ]
    rule = observed.rule(sla.alert)
    exact = rule is not None and observed.polls > 0 and observed.widest_gap < rule.interval
    res = None if exact else observed.widest_gap or observed.poll_interval
    if not stretches and (gaps := hidden(observed, sla.alert, 0.0, end, end)):
        return _not_measured(sla, f"{key} may have fired", gaps)
    if not stretches:
        bound = (
            f"; no firing stretch fits between two polls: the rule is evaluated every {rule.interval:g}s"
            if exact and rule is not None
            else ""
        )
        return _verdict(sla, 0.0, 0.0, f"{key} never seen firing ({_polling(observed)}){bound}", res)
    total = sum(length for _, length in stretches)
    began = stretches[0][0]
    detail = (
        f"{key} seen firing at {began.at:.3f}s"
        + ("" if began.since is None else f" (it began after {began.since:.3f}s)")
        + f", {len(stretches)} time{'s' if len(stretches) > 1 else ''}, {total:.3f}s in all"
    )
    return _verdict(sla, total, 0.0, detail, res)


def _verdict(
    sla: AlertSla,
    measured: float | None,
    threshold: float,
    detail: str,
    resolution: float | None,
    *,
    reference: str | None = None,
) -> SlaVerdict:
    return SlaVerdict.at_most(sla, measured, threshold, "s", detail, resolution=resolution, reference=reference)


def detection_timelines(
    spec: DrillSpec, timeline: Timeline, moments: Sequence[FaultMoments]
) -> list[DetectionTimeline]:
    """Per fault and alert its SLAs measure: impact, pending, firing, notified, recovered, resolved."""
    observed = timeline.alerts
    if observed is None:
        return []
    out: list[DetectionTimeline] = []
    seen: set[tuple[str, str]] = set()
    for sla in spec.spec.slas:
        if not isinstance(sla, MeasuredAlertSla) or (m := reference(sla, moments)) is None:
            continue
        key = sla.selector.key
        if (m.fault, key) in seen:
            continue
        seen.add((m.fault, key))
        changes = changes_of(observed, key)
        firing = first(changes, "firing", m.injected_at)
        pending = next((c for c in changes if c.state == "pending" and c.at >= m.injected_at), None)
        if pending is not None and firing is not None and pending.at > firing.at:
            pending = None
        resolved = None if firing is None else first(changes, "inactive", firing.at)
        page = notified(observed.deliveries, sla, "firing", m.injected_at)
        out.append(
            DetectionTimeline(
                fault=m.fault,
                alert=key,
                steps=(
                    DetectionStep("impact", m.impact, m.impact_resolution if m.impact is not None else None),
                    _step("pending", pending),
                    _step("firing", firing),
                    DetectionStep("notified", None if page is None else page.at, None if page is None else 0.0),
                    DetectionStep(
                        "recovered", m.recovered, m.recovered_resolution if m.recovered is not None else None
                    ),
                    _step("resolved", resolved),
                ),
                runbook_url=None if firing is None else firing.annotations.get("runbook_url"),
                fault_runbook=m.runbook,
            )
        )
    return out


def _step(name: DetectionStepName, change: AlertChange | None) -> DetectionStep:
    return DetectionStep(name, None if change is None else change.at, None if change is None else change.resolution)


def alerts_decided(spec: DrillSpec, timeline: Timeline, moments: Sequence[FaultMoments]) -> bool:
    """Whether waiting longer could change an alert SLA: each seen, or past its deadline by a margin."""
    observed = timeline.alerts
    if observed is None:
        return True
    now, margin = timeline.end, DECIDED_MARGIN_POLLS * observed.poll_interval
    for sla in spec.spec.slas:
        if not isinstance(sla, MeasuredAlertSla) or (m := reference(sla, moments)) is None:
            continue
        changes = changes_of(observed, sla.selector.key)
        firing = first(changes, "firing", m.injected_at)
        if isinstance(sla, AlertClearsSla):
            if m.recovered is None:
                return False
            seen = firing is not None and first(changes, "inactive", firing.at) is not None
            deadline = m.recovered + sla.max
        elif m.impact is None:
            continue
        else:
            if isinstance(sla, TimeToNotifySla):
                seen = notified(observed.deliveries, sla, "firing", m.injected_at) is not None
            else:
                seen = firing is not None
            deadline = m.impact + sla.max
        if not seen and now < deadline + margin:
            return False
    return True
