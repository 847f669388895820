"""How a detection timeline reads in every human-facing report: each step after the impact, with its resolution.

Plain text here; each renderer escapes it for its format.
"""

from __future__ import annotations

from orchestrator.model.alerts import DetectionStep, DetectionStepName, DetectionTimeline

STEPS: tuple[DetectionStepName, ...] = ("impact", "pending", "firing", "notified", "recovered", "resolved")
HEADINGS = ("Impact", "Pending", "Firing", "Notified", "Recovered", "Resolved")
INTRO = (
    "Impact is seconds since the first sample; every later step is seconds after the impact, taken when a poll of "
    "Prometheus first saw it (± the spacing of the polls around it, plus the probes' sample spacing at the impact or "
    "the recovery); a notification is timed when it reached the drill's receiver."
)


def step_text(step: DetectionStep | None, impact: float | None) -> str:
    """`—` when not seen; the impact since t0; later steps after the impact (since t0 without one)."""
    if step is None or step.at is None:
        return "—"
    precision = "" if not step.resolution else f" ±{step.resolution * 1000:.0f}ms"
    if step.name == "impact" or impact is None:
        return f"{step.at:.3f}s{precision}"
    return f"{step.at - impact:+.3f}s{precision}"


def cells(d: DetectionTimeline) -> list[str]:
    impact = d.step("impact")
    at = None if impact is None else impact.at
    return [step_text(d.step(name), at) for name in STEPS]


def runbook_text(d: DetectionTimeline) -> str:
    if d.runbook_problem is not None:
        return f"FLAG: {d.runbook_problem}"
    if d.runbook_url is None:
        return "not fired"
    return f"lands on {d.fault_runbook}"


def summary(d: DetectionTimeline) -> str:
    """One line: `fault / alert: impact 3.028s → pending +1.2s → ...; runbook ...`."""
    steps = " → ".join(f"{name} {text}" for name, text in zip(STEPS, cells(d), strict=True))
    return f"{d.fault} / {d.alert}: {steps}; runbook: {runbook_text(d)}"
