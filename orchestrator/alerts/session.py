"""A drill's alerting: preflight against Prometheus and Alertmanager, the watcher, the receiver.

Preflight runs once the drill's own processes are ready (Prometheus and Alertmanager may be among
them) and before sampling: an unreachable or malformed backend, a refused receiver port, an alert
of `refuse_while_firing` that fires, or an alert the drill measures that is already active is a
PreflightError (exit 3, nothing injected). An alert no rule defines is a warning naming the rules
that exist: the rule may live in a Prometheus the drill does not see.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import replace

import structlog

from orchestrator.alerts.api import ActiveAlert, Alertmanager, Prometheus
from orchestrator.alerts.receiver import WebhookReceiver
from orchestrator.alerts.watcher import AlertWatcher, Listener, combined
from orchestrator.errors import BackendError, PreflightError
from orchestrator.logs import redact
from orchestrator.model.alerts import AlertChange, AlertObservations, AlertRule, AlertSelector, Delivery, Unanswered
from orchestrator.model.spec import AlertFiringStop, AlertsConfig, AlertSlaBase, DrillSpec

MAX_RULE_NAMES = 20
"""Rule names quoted in the warning about an alert no rule defines."""
MAX_STRETCHES_SAID = 3
"""Stretches of failed polls spelled out in the warning; report.json's `alerts.unanswered` has them all."""

Warn = Callable[[str], None]


def watched(spec: DrillSpec) -> tuple[list[tuple[AlertSelector, str]], list[AlertSelector]]:
    """(selector, what measures it) for SLAs and stop conditions; and the selectors of refuse_while_firing."""
    measured = [(s.selector, f"SLA {s.name}") for s in spec.spec.slas if isinstance(s, AlertSlaBase)]
    measured += [
        (c.selector, f"stop condition {c.name}") for c in spec.spec.stop_conditions if isinstance(c, AlertFiringStop)
    ]
    refused = [r.selector for r in spec.spec.alerts.refuse_while_firing] if spec.spec.alerts is not None else []
    return measured, refused


class AlertSession:
    def __init__(self, config: AlertsConfig, spec: DrillSpec, clock: Callable[[], float], warn: Warn) -> None:
        self.config = config
        self.prometheus = Prometheus(config.prometheus, config.timeout)
        self.alertmanager = None if config.alertmanager is None else Alertmanager(config.alertmanager, config.timeout)
        self.measured, self.refused = watched(spec)
        selectors = list({s.key: s for s in [*(s for s, _ in self.measured), *self.refused]}.values())
        self.watcher = AlertWatcher(self.prometheus, selectors, config.poll_interval, clock)
        receiver = config.receiver
        self.receiver = None if receiver is None else WebhookReceiver(receiver.host, receiver.port, clock)
        self.rules: list[AlertRule] = []
        self.warnings: list[str] = []
        self._warn = warn
        self._task: asyncio.Task[None] | None = None
        self.log = structlog.get_logger()

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self._warn(message)

    async def preflight(self) -> None:
        url = self.config.prometheus
        try:
            self.rules = await self.prometheus.rules()
            active = await self.prometheus.alerts()
        except BackendError as e:
            raise PreflightError(f"Prometheus at {redact(url)} is not usable for alerts: {e}") from e
        self._check_rules()
        self._refuse_if_active(active)
        if self.alertmanager is not None:
            try:
                config = await self.alertmanager.config()
            except BackendError as e:
                raise PreflightError(f"Alertmanager at {redact(self.config.alertmanager)} is not usable: {e}") from e
            if self.receiver is not None and f"{self.receiver.host}:{self.receiver.port}" not in config:
                self.warn(
                    f"Alertmanager's configuration does not name {self.receiver.host}:{self.receiver.port}: "
                    f"its notifications may not reach the drill's receiver ({self.receiver.url})"
                )
        if self.receiver is not None:
            await self.receiver.start()
            self.log.info("alert_receiver_listening", url=self.receiver.url)

    def _check_rules(self) -> None:
        names = sorted({r.name for r in self.rules})
        for alert in dict.fromkeys([*(s.alert for s, _ in self.measured), *(s.alert for s in self.refused)]):
            if alert not in names:
                shown = ", ".join(names[:MAX_RULE_NAMES]) + (", ..." if len(names) > MAX_RULE_NAMES else "")
                self.warn(
                    f"alert {alert}: no alerting rule of {redact(self.config.prometheus)} defines it "
                    f"(rules: {shown or 'none'})"
                )

    def _refuse_if_active(self, active: Sequence[ActiveAlert]) -> None:
        for selector in self.refused:
            state, alert = combined(selector, active)
            if state == "firing" and alert is not None:
                raise PreflightError(
                    f"alert {selector.key} is firing on {redact(self.config.prometheus)}: no drills during an "
                    f"incident (spec.alerts.refuse_while_firing); labels {_labels(alert)}"
                )
        for selector, what in self.measured:
            state, alert = combined(selector, active)
            if state != "inactive" and alert is not None:
                raise PreflightError(
                    f"alert {selector.key} is already {state} before any fault, so {what} cannot be judged: "
                    f"wait until it resolves; labels {_labels(alert)}"
                )

    def start(self, t0: float, on_poll: Listener) -> None:
        """Watch from now on; `on_poll` gets every selector's latest state (since t0) after each answered poll."""
        self.watcher.listeners.append(lambda states: on_poll([_shifted(c, t0) for c in states]))
        self._task = asyncio.create_task(self.watcher.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.receiver is not None:
            await self.receiver.stop()
        await self.prometheus.close()
        if self.alertmanager is not None:
            await self.alertmanager.close()

    def observations(self, t0: float) -> AlertObservations:
        """Everything seen so far, on the drill's clock (seconds since t0) and redacted for reports."""
        w = self.watcher
        warnings = list(self.warnings)
        unanswered = [_unanswered(u, t0) for u in w.stretches()]
        if w.failed:
            shown = "; ".join(u.describe() for u in unanswered[:MAX_STRETCHES_SAID])
            more = len(unanswered) - MAX_STRETCHES_SAID
            warnings.append(
                f"{w.failed} of {w.polls + w.failed} polls of Prometheus's alerts failed: {shown}"
                + (f"; {more} more stretches" if more > 0 else "")
            )
        if w.dropped:
            warnings.append(f"{w.dropped} alert changes past the first {len(w.changes)} not kept")
        receiver = self.receiver
        if receiver is not None and receiver.refused:
            warnings.append(f"the receiver refused {receiver.refused} webhooks: {receiver.first_refusal}")
        if receiver is not None and receiver.dropped:
            warnings.append(f"{receiver.dropped} webhooks past the first {len(receiver.deliveries)} not kept")
        return AlertObservations(
            prometheus=redact(self.config.prometheus),
            poll_interval=self.config.poll_interval,
            polls=w.polls,
            failed_polls=w.failed,
            widest_gap=w.widest_gap,
            changes=tuple(_shifted(c, t0) for c in w.changes),
            deliveries=tuple(_delivered(d, t0) for d in ([] if receiver is None else receiver.deliveries)),
            rules=tuple(r for r in self.rules if r.name in {s.alert for s, _ in self.measured}),
            receiver=None if receiver is None else receiver.url,
            first_poll=None if w.first_sent is None else w.first_sent - t0,
            last_poll=None if w.last_sent is None else w.last_sent - t0,
            warnings=tuple(redact(warnings)),
            unanswered=tuple(unanswered),
        )


def _shifted(change: AlertChange, t0: float) -> AlertChange:
    return replace(
        change,
        at=change.at - t0,
        since=None if change.since is None else change.since - t0,
        labels=redact(dict(change.labels)),
        annotations=redact(dict(change.annotations)),
    )


def _unanswered(stretch: Unanswered, t0: float) -> Unanswered:
    return replace(
        stretch,
        after=stretch.after - t0,
        first=stretch.first - t0,
        last=stretch.last - t0,
        until=None if stretch.until is None else stretch.until - t0,
        error=redact(stretch.error),
    )


def _delivered(delivery: Delivery, t0: float) -> Delivery:
    alerts = tuple(
        replace(a, labels=redact(dict(a.labels)), annotations=redact(dict(a.annotations))) for a in delivery.alerts
    )
    return replace(delivery, at=delivery.at - t0, alerts=alerts)


def _labels(alert: ActiveAlert) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(alert.labels.items())) + "}"
