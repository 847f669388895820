"""What `drillctl plan` says of a drill's alerting: the sources it reads, the receiver it runs, the alert SLAs,
stop conditions and preflight refusals. Pure (the spec in, data and lines out): a plan contacts neither
Prometheus nor Alertmanager."""

from __future__ import annotations

from typing import Any

from orchestrator.model.alerts import receiver_url
from orchestrator.model.durations import format_duration
from orchestrator.model.spec import AlertFiringStop, AlertNamed, AlertSlaBase, DrillSpec, MeasuredAlertSla


def alert_plan(spec: DrillSpec) -> dict[str, Any] | None:
    """The `alerts` section of `drillctl plan -o json`; None for a drill that watches no alert."""
    body = spec.spec
    config = body.alerts
    if config is None:
        return None  # loading refuses alert SLAs and alert_firing stop conditions without spec.alerts
    receiver = config.receiver
    return {
        "prometheus": config.prometheus,
        "alertmanager": config.alertmanager,
        "poll_interval": config.poll_interval,
        "timeout": config.timeout,
        "receiver": None if receiver is None else receiver_url(receiver.host, receiver.port),
        "refuse_while_firing": [_named(r) for r in config.refuse_while_firing],
        "slas": [
            {
                "name": s.name,
                "type": s.type,
                **_named(s),
                "max": s.max if isinstance(s, MeasuredAlertSla) else None,
                "fault": s.fault if isinstance(s, MeasuredAlertSla) else None,
            }
            for s in body.slas
            if isinstance(s, AlertSlaBase)
        ],
        "stop_conditions": [
            {"name": c.name, **_named(c), "phases": list(c.phases)}
            for c in body.stop_conditions
            if isinstance(c, AlertFiringStop)
        ],
    }


def _named(alert: AlertNamed) -> dict[str, Any]:
    return {"alert": alert.alert, "matchers": list(alert.matchers), "selector": alert.selector.key}


def alert_plan_lines(plan: dict[str, Any]) -> list[str]:
    """The plan's text section, one line per part, as `alert_plan` (redacted) gave it."""
    manager = f"; Alertmanager {plan['alertmanager']} (checked in preflight)" if plan["alertmanager"] else ""
    lines = [
        f"Alerts: Prometheus {plan['prometheus']} (its alerts polled every {format_duration(plan['poll_interval'])}, "
        f"each call within {format_duration(plan['timeout'])}){manager}"
    ]
    if plan["receiver"]:
        lines.append(f"  receiver: drillctl listens on {plan['receiver']} for Alertmanager's webhooks")
    lines += [f"  preflight refuses to start while {r['selector']} fires" for r in plan["refuse_while_firing"]]
    lines += [f"  SLA {s['name']} ({s['type']}): {_sla_text(s)}" for s in plan["slas"]]
    lines += [
        f"  stop condition {c['name']} (alert_firing): the drill stops when {c['selector']} fires "
        f"(in {', '.join(c['phases'])})"
        for c in plan["stop_conditions"]
    ]
    return lines


def _sla_text(sla: dict[str, Any]) -> str:
    selector = sla["selector"]
    if sla["max"] is None:  # no_alert
        return f"{selector} must not fire during the drill"
    limit = format_duration(sla["max"])
    fault = f"fault {sla['fault']}" if sla["fault"] else "the first fault with an impact"
    if sla["type"] == "alert_clears":
        return f"{selector} resolves within {limit} of the recovery from {fault}"
    if sla["type"] == "time_to_notify":
        return f"a notification of {selector} reaches the receiver within {limit} of the impact of {fault}"
    return f"{selector} fires within {limit} of the impact of {fault}"
