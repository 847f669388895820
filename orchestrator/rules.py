"""Prometheus alerting rules on drillctl's own metrics (`drillctl rules`). Pure: drill specs in, YAML text out.

The rules read what runs push to a Pushgateway (`--pushgateway`, the chart's `metrics.pushgateway.url`): job
`drillctl`, one group per run (labels `drill` and `run_id`), whose `push_time_seconds` the gateway adds. Prometheus
must scrape the gateway with `honor_labels: true`, so `job` stays `drillctl`. Groups of past runs stay in the
gateway until deleted, so each rule says which runs count:

- **DrillctlSlaBreached**, one per SLA: `drillctl_sla_passed` is 0 (set once the run is judged) in a run pushed
  within `window`; it stops firing when that run's last push is older.
- **DrillctlFaultActiveAfterRun**, one per drill with faults: `drillctl_fault_active` is still 1 (a revert that
  failed) in a run that ended (`drillctl_phase{phase="done"}`), or that stopped pushing for `silent_for` while the
  fault was in place (killed, or cut off: its watchdog may have reverted it, `drillctl recover` settles it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from orchestrator.metrics import PUSH_JOB
from orchestrator.model.durations import format_duration
from orchestrator.model.spec import DrillSpec, SlaSpec

PROMETHEUS_RULE_API = "monitoring.coreos.com/v1"


@dataclass(frozen=True)
class RuleOptions:
    window: float = 3600.0
    """Seconds after a run's last push that its breached SLAs still alert."""
    silent_for: float = 300.0
    """Seconds without a push after which a run whose fault is active counts as ended (a live run pushes every
    `--push-every`, 10 s by default)."""
    runbook_base: str | None = None
    """Prefix that turns an SLA's `runbooks/<file>.md#<anchor>` into the alert's runbook_url."""


def rule_groups(name: str, drills: Sequence[DrillSpec], options: RuleOptions) -> list[dict[str, Any]]:
    """One group named after the drill or game day, its rules in the order of the drills (each drill once)."""
    rules: list[dict[str, Any]] = []
    seen: set[str] = set()
    for drill in drills:
        if drill.name in seen:
            continue
        seen.add(drill.name)
        rules += [_sla_breached(drill, sla, options) for sla in drill.spec.slas]
        if drill.spec.faults:
            rules.append(_fault_active_after_run(drill, options))
    return [{"name": f"drillctl-{name}", "rules": rules}]


def rules_file(name: str, drills: Sequence[DrillSpec], options: RuleOptions) -> str:
    """A Prometheus rules file (`rule_files:`), as `promtool check rules` reads it."""
    return _dump({"groups": rule_groups(name, drills, options)})


def prometheus_rule(name: str, drills: Sequence[DrillSpec], options: RuleOptions, namespace: str | None) -> str:
    """The same groups as a Prometheus Operator `PrometheusRule` manifest."""
    metadata: dict[str, Any] = {"name": f"drillctl-{name}", "labels": {"app.kubernetes.io/managed-by": "drillctl"}}
    if namespace:
        metadata["namespace"] = namespace
    manifest = {
        "apiVersion": PROMETHEUS_RULE_API,
        "kind": "PrometheusRule",
        "metadata": metadata,
        "spec": {"groups": rule_groups(name, drills, options)},
    }
    return _dump(manifest)


def _sla_breached(drill: DrillSpec, sla: SlaSpec, options: RuleOptions) -> dict[str, Any]:
    run = _selector(drill.name)
    expr = (
        f"{_metric('drillctl_sla_passed', drill.name, sla=sla.name)} == 0\n"
        f"  and on (job, drill, run_id) (time() - push_time_seconds{run}) < {options.window:g}"
    )
    annotations = {
        "summary": f"Drill {drill.name} breached its SLA {sla.name}",
        "description": (
            f"Run {{{{ $labels.run_id }}}} of drill {drill.name} failed SLA {sla.name} ({sla.type}); "
            "its report.html says by how much."
        ),
    }
    if sla.runbook is not None:
        key = "runbook_url" if options.runbook_base else "runbook"
        annotations[key] = (options.runbook_base or "") + sla.runbook
    return {
        "alert": "DrillctlSlaBreached",
        "expr": expr,
        "labels": {"severity": "warning", "drill": drill.name, "sla": sla.name},  # one alert per SLA, as promtool wants
        "annotations": annotations,
    }


def _fault_active_after_run(drill: DrillSpec, options: RuleOptions) -> dict[str, Any]:
    run = _selector(drill.name)
    expr = (
        f"{_metric('drillctl_fault_active', drill.name)} == 1\n"
        "  and on (job, drill, run_id) (\n"
        f"    {_metric('drillctl_phase', drill.name, phase='done')} == 1\n"
        f"    or (time() - push_time_seconds{run}) > {options.silent_for:g}\n"
        "  )"
    )
    return {
        "alert": "DrillctlFaultActiveAfterRun",
        "expr": expr,
        "labels": {"severity": "critical", "drill": drill.name},
        "annotations": {
            "summary": f"A fault of drill {drill.name} is still active after its run",
            "description": (
                f"Fault {{{{ $labels.fault }}}} of drill {drill.name} is still injected after run "
                f"{{{{ $labels.run_id }}}} ended, or the run has not pushed for "
                f"{format_duration(options.silent_for)}: run `drillctl recover` (and `--cluster` for Kubernetes "
                "faults) where it ran."
            ),
        },
    }


def _metric(name: str, drill: str, **labels: str) -> str:
    return name + _selector(drill, **labels)


def _selector(drill: str, **labels: str) -> str:
    matchers = {"job": PUSH_JOB, "drill": drill, **labels}
    return "{" + ", ".join(f"{k}={_quoted(v)}" for k, v in matchers.items()) + "}"


def _quoted(value: str) -> str:
    """A PromQL string literal (names are lowercase letters, digits and dashes already: this is for safety)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class _Literal(str):
    """Multi-line text written as a YAML block (`|`), as people write PromQL."""


def _block(dumper: yaml.SafeDumper, text: _Literal) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(text), style="|")


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Literal, _block)


def _dump(document: dict[str, Any]) -> str:
    return yaml.dump(_literal_exprs(document), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


def _literal_exprs(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _Literal(v) if k == "expr" and "\n" in v else _literal_exprs(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_literal_exprs(v) for v in value]
    return value
