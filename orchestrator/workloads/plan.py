"""What `drillctl plan` shows of a drill's workload: its schedule, keys, client, read-back and SLAs. Pure.

`workload_plan` is the data of `plan -o json` (the client's options as the run would use them, defaults
included, so what a run would send is visible before it does); `workload_lines` is its text, written from
that same data after the caller redacted it (`logs.redact`: a DSN's password never reaches a plan).
"""

from __future__ import annotations

from typing import Any

from orchestrator.model.durations import format_duration
from orchestrator.model.spec import WORKLOAD_SLAS, DrillSpec
from orchestrator.workloads.registry import options_of
from orchestrator.workloads.schedule import RateSchedule

DEFAULT_PREFIX = "drill-<run id>/"


def workload_plan(drill: DrillSpec) -> dict[str, Any] | None:
    """None without a workload. `operations`: how many the schedule has due by the end of the longest run."""
    spec = drill.spec
    workload = spec.workload
    if workload is None:
        return None
    longest = spec.phases.baseline + drill.fault_phase_length() + spec.phases.recovery
    options = options_of(workload.client).model_dump(mode="json")
    slas = [s for s in spec.slas if isinstance(s, WORKLOAD_SLAS)]
    return {
        "rate": workload.rate,
        "ramp": None if workload.ramp is None else workload.ramp.model_dump(mode="json", by_alias=True),
        "bursts": [b.model_dump(mode="json") for b in workload.bursts],
        "operations": round(RateSchedule(workload).count(longest)),
        "reads": workload.reads,
        "timeout": workload.timeout,
        "max_in_flight": workload.in_flight_limit(),
        "keys": workload.keys,
        "key_prefix": workload.key_prefix if workload.key_prefix is not None else DEFAULT_PREFIX,
        "client": {"type": workload.client["type"], **options},
        "verify": workload.verify.model_dump(mode="json"),
        "slas": [s.model_dump(mode="json", by_alias=True, exclude_none=True) for s in slas],
    }


def workload_lines(plan: dict[str, Any]) -> list[str]:
    """The plan's text for the workload, from `workload_plan`'s data (redacted by the caller)."""
    ramp, bursts = plan["ramp"], plan["bursts"]
    schedule = f"{plan['rate']:g}/s, open loop (a constant arrival rate, whatever earlier operations do)"
    if ramp is not None:
        schedule += f", ramped from {ramp['from']:g}/s over the first {format_duration(ramp['duration'])}"
    lines = [
        f"workload from the first sample to the end of recovery: about {plan['operations']:,} operations at most",
        f"  rate {schedule}",
        *(
            f"  burst {b['rate']:g}/s for {format_duration(b['duration'])}, {format_duration(b['start'])} after the "
            "first sample"
            for b in bursts
        ),
        f"  {plan['reads']:.0%} reads, {1 - plan['reads']:.0%} writes; each within {format_duration(plan['timeout'])}, "
        f"at most {plan['max_in_flight']} in flight",
        f"  keys {plan['key_prefix']}0 .. {plan['key_prefix']}{plan['keys'] - 1} ({plan['keys']:,})",
    ]
    client = plan["client"]
    options = ", ".join(f"{k}={_option(v)}" for k, v in client.items() if k != "type")
    lines.append(f"  client {client['type']}" + (f": {options}" if options else ""))
    verify = plan["verify"]
    lines.append(
        f"  verify: once recovery ends, every key written read back, {verify['concurrency']} at a time, up to "
        f"{verify['attempts']} reads each, within {format_duration(verify['timeout'])}"
    )
    lines += [f"  SLA {s['name']}: {_sla(s)}" for s in plan["slas"]]
    return lines


def _option(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def _sla(sla: dict[str, Any]) -> str:
    if sla["type"] == "data_loss":
        return f"at most {sla['max']} acknowledged writes lost (data_loss)"
    if sla["type"] == "rpo":
        return f"lost acknowledged writes span at most {format_duration(sla['max'])} (rpo)"
    what = {"read": "reads", "write": "writes", None: "reads and writes"}[sla.get("operation")]
    limits = ", ".join(f"{k} <= {format_duration(sla[k])}" for k in ("p50", "p90", "p99", "max") if k in sla)
    return f"{what} in the {sla['phase']} phase, from their intended start: {limits} (workload_latency)"
