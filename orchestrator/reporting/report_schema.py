"""The published JSON Schema of report.json (`drillctl schema --report`).

Written by hand, beside `json_report.to_json`, because the schema is a promise to CI pipelines
and dashboards: a change here is a visible change of that promise. A test checks that a real
run's report.json validates against it.
"""

from __future__ import annotations

from typing import Any

from orchestrator.reporting.report import SCHEMA

_NUM = {"type": "number"}
_OPT_NUM = {"type": ["number", "null"]}
_STR = {"type": "string"}
_OPT_STR = {"type": ["string", "null"]}
_BOOL = {"type": "boolean"}
_STRS = {"type": "array", "items": _STR}


def _obj(properties: dict[str, Any], *, extra: bool = False, optional: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every listed property required, `optional` ones allowed (added within v1: older reports lack them);
    unknown ones refused unless `extra`."""
    return {
        "type": "object",
        "properties": {**properties, **(optional or {})},
        "required": list(properties),
        "additionalProperties": extra,
    }


_INT = {"type": "integer", "minimum": 0}
_BUCKET_COLUMNS = ("probe", "start", "samples", "failures", "min", "p99", "max", "failed_at", "error")
_SAMPLE_FILE = {
    **_obj(
        {
            "path": {"type": "string", "pattern": "^[^/\\\\]+$"},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "bytes": _INT,
            "samples": _INT,
        }
    ),
    "description": "samples.bin beside report.json: every sample of the run, streamed as it landed",
}

_LINK = {
    "oneOf": [
        {"type": "null"},
        _obj({"ref": _STR, "heading": _STR, "path": _STR}),
    ],
    "description": "a runbook section: runbooks/<file>.md#<anchor>, its heading and the file it was read from",
}

_COUNT = {"type": "integer", "minimum": 0}
_WORKLOAD = {
    **_obj(
        {
            "client": _STR,
            "rate": _NUM,
            **{
                k: _COUNT
                for k in (
                    "operations",
                    "reads",
                    "writes",
                    "acknowledged",
                    "keys_written",
                    "keys_verified",
                    "keys_unverified",
                    "lost",
                    "failed_present",
                    "unknown_present",
                    "duplicates",
                    "stale_reads",
                    "foreign",
                )
            },
            "rpo": _NUM,
            "rpo_from": _OPT_NUM,
            "rpo_to": _OPT_NUM,
            "rpo_resolution": _OPT_NUM,
            "write_unavailable": _NUM,
            "write_unavailable_total": _NUM,
            "write_unavailable_from": _OPT_NUM,
            "write_unavailable_to": _OPT_NUM,
            "write_unavailable_resolution": _OPT_NUM,
            "verified": _BOOL,
            "examples": {
                "type": "array",
                "items": _obj(
                    {"finding": _STR, "key": _COUNT, "at": _NUM, "value": {"type": "integer"}, "detail": _STR}
                ),
            },
            "stats": {
                "type": "array",
                "items": _obj(
                    {
                        "operation": {"enum": ["read", "write"]},
                        "phase": _STR,
                        **{k: _COUNT for k in ("operations", "ok", "failed", "unknown")},
                        **{k: _OPT_NUM for k in ("p50", "p90", "p99", "p999", "max", "lag_p99")},
                    }
                ),
            },
            "file": {
                "oneOf": [
                    {"type": "null"},
                    _obj(
                        {
                            "path": {"type": "string", "pattern": "^[^/\\\\]+$"},
                            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                            "bytes": _INT,
                            "operations": _INT,
                        }
                    ),
                ]
            },
        }
    ),
    "description": "what the workload's checker found: lost acknowledged writes, writes present though reported "
    "failed or unknown, duplicates, stale reads, values never written, the RPO and the longest write "
    "unavailability with their resolutions, latency per operation and phase; every operation is in `file` "
    "(operations.bin, layout in docs/workload.md)",
}
_LABELS = {"type": "object", "additionalProperties": _STR}
_STEP = {"enum": ["impact", "pending", "firing", "notified", "recovered", "resolved"]}
_ALERTS = {
    **_obj(
        {
            "prometheus": _STR,
            "poll_interval": {"type": "number", "exclusiveMinimum": 0},
            "polls": _INT,
            "failed_polls": _INT,
            "widest_gap": _NUM,
            "first_poll": _OPT_NUM,
            "last_poll": _OPT_NUM,
            "receiver": _OPT_STR,
            "warnings": _STRS,
            "rules": {
                "type": "array",
                "items": _obj({"name": _STR, "group": _STR, "hold": _NUM, "interval": _NUM, "annotations": _LABELS}),
            },
            "changes": {
                "type": "array",
                "items": _obj(
                    {
                        "alert": _STR,
                        "state": {"enum": ["inactive", "pending", "firing"]},
                        "at": _NUM,
                        "since": _OPT_NUM,
                        "labels": _LABELS,
                        "annotations": _LABELS,
                    }
                ),
            },
            "deliveries": {
                "type": "array",
                "items": _obj(
                    {
                        "at": _NUM,
                        "status": _STR,
                        "receiver": _STR,
                        "alerts": {
                            "type": "array",
                            "items": _obj({"status": _STR, "labels": _LABELS, "annotations": _LABELS}),
                        },
                    }
                ),
            },
        },
        optional={
            "unanswered": {
                "type": "array",
                "items": _obj(
                    {
                        "after": _NUM,
                        "first": _NUM,
                        "last": _NUM,
                        "failures": {"type": "integer", "minimum": 1},
                        "error": _STR,
                        "until": _OPT_NUM,
                    }
                ),
                "description": "polls of Prometheus's alerts that failed in a row: nothing seen between `after` "
                "(the send of the last answered poll before them) and `until` (the send of the next answered "
                "one; null: none, to the end); `first`/`last` when the failures began and ended",
            }
        },
    ),
    "description": "what the alert watcher saw of Prometheus's alerts (each watched alert's state changes: it "
    "changed after `since`, the send of the poll before, and by `at`, the answer of the poll that saw it) and "
    "what the drill's webhook receiver got from Alertmanager (timed on arrival)",
}
_DETECTION = {
    "type": "array",
    "items": _obj(
        {
            "fault": _STR,
            "alert": _STR,
            "steps": {"type": "array", "items": _obj({"name": _STEP, "at": _OPT_NUM, "resolution": _OPT_NUM})},
            "runbook_url": _OPT_STR,
            "runbook_problem": _OPT_STR,
            "fault_runbook": _OPT_STR,
        }
    ),
    "description": "per fault and measured alert: impact, pending, firing, notified, recovered, resolved (seconds "
    "since t0, null when not seen), and why the fired alert's runbook_url does not land on the drill's runbook "
    "for the fault (null: it does)",
}

REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://drillctl.dev/schemas/report-v1.json",
    "title": f"drillctl run report ({SCHEMA})",
    "description": "report.json of one drill run. Times are monotonic seconds since the first sample was "
    "scheduled; durations in seconds; ratios between 0 and 1.",
    **_obj(
        {
            "schema": {"const": SCHEMA},
            "drill": _obj(
                {
                    "name": _STR,
                    "file": _STR,
                    "description": _STR,
                    "runbook": _LINK,
                    "seed": {"type": ["integer", "null"]},
                    "slas_declared": {"type": "integer", "minimum": 0},
                }
            ),
            "run": _obj(
                {
                    "id": _STR,
                    "status": {"enum": ["passed", "failed", "aborted", "baseline_failed", "preflight_failed", "error"]},
                    "verdict": {"enum": ["PASS", "FAIL", "ABORTED", "ERROR"]},
                    "failed_slas": _STRS,
                    "marginal_slas": _STRS,
                    "reason": _OPT_STR,
                    "stopped_by": {
                        "oneOf": [
                            {"type": "null"},
                            _obj(
                                {
                                    "kind": {"enum": ["stop_condition", "abort", "signal"]},
                                    "name": _STR,
                                    "at": _OPT_NUM,
                                    "evidence": _STR,
                                }
                            ),
                        ],
                        "description": "what stopped the run early, with its evidence",
                    },
                    "exit_code": {"type": "integer"},
                    "injected": _BOOL,
                    "seed": {"type": ["integer", "null"]},
                    "started_at": {"type": "string", "format": "date-time"},
                    "finished_at": {"type": "string", "format": "date-time"},
                    "interval": {"type": "number", "exclusiveMinimum": 0},
                    "end": _NUM,
                    "clock": _STR,
                    "percentiles": _STR,
                }
            ),
            "environment": {"type": "object"},
            "probes": _STRS,
            "phases": {"type": "array", "items": _obj({"name": _STR, "start": _NUM, "end": _NUM})},
            "faults": {
                "type": "array",
                "items": _obj(
                    {
                        "name": _STR,
                        "type": _STR,
                        "params": {"type": "object"},
                        "scheduled_start": _NUM,
                        "scheduled_end": _NUM,
                        "injected_at": _OPT_NUM,
                        "reverted_at": _OPT_NUM,
                        "ended_at": _OPT_NUM,
                        "error": _OPT_STR,
                        "runbook": _LINK,
                    },
                    optional={
                        "touched": {
                            **_STRS,
                            "description": "what the fault touched, read from its undo record: node/<name>, "
                            "pod/<namespace>/<name>, ... (empty for faults whose parameters say it)",
                        },
                        "seed": {
                            "type": ["integer", "null"],
                            "description": "the seed that chose those targets, for faults that choose",
                        },
                        "revert_notes": {
                            **_STRS,
                            "description": "what the revert found and did: a target that vanished, a value "
                            "changed meanwhile and kept, a loop left to end by itself",
                        },
                    },
                ),
            },
            "slas": {
                "type": "array",
                "items": _obj(
                    {
                        "name": _STR,
                        "type": _STR,
                        "passed": _BOOL,
                        "result": {"enum": ["PASS", "FAIL", "PASS (within resolution)", "FAIL (within resolution)"]},
                        "marginal": _BOOL,
                        "measured": _OPT_NUM,
                        "threshold": _NUM,
                        "margin": _OPT_NUM,
                        "resolution": _OPT_NUM,
                        "unit": {"enum": ["s", "ratio", "count"]},
                        "detail": _STR,
                        "probes": _STRS,
                        "phase": _OPT_STR,
                        "window_from": _OPT_NUM,
                        "window_to": _OPT_NUM,
                        "reference": _OPT_STR,
                        "runbook": _LINK,
                    }
                ),
            },
            "recovery_windows": {
                "type": "array",
                "items": _obj(
                    {
                        "fault": _STR,
                        "time_to_impact": _OPT_NUM,
                        "time_to_recover": _OPT_NUM,
                        "unavailability": _NUM,
                        "longest_outage": _NUM,
                        "recovered_at": _OPT_NUM,
                        "recovery": {"enum": ["before_revert", "after_revert", "not_recovered", "not_impacted"]},
                        "failing_at_injection": _BOOL,
                        "resolution": _NUM,
                        "sampler_lag": _NUM,
                    }
                ),
            },
            "probe_stats": {
                "type": "array",
                "items": _obj(
                    {
                        "probe": _STR,
                        "phase": _STR,
                        "fault": _OPT_STR,
                        "samples": {"type": "integer", "minimum": 0},
                        "failures": {"type": "integer", "minimum": 0},
                        "error_rate": {"type": "number", "minimum": 0, "maximum": 1},
                        "availability": {"type": "number", "minimum": 0, "maximum": 1},
                        **{k: _OPT_NUM for k in ("p50", "p90", "p99", "p999", "max")},
                        **{k: _OPT_NUM for k in ("lag_p50", "lag_p99", "lag_max", "jitter")},
                    }
                ),
            },
            "runbooks": {
                "type": "object",
                "additionalProperties": _obj({"heading": _STR, "anchor": _STR, "path": _STR, "text": _STR}),
            },
            "rollback": _obj({"reverted": _STRS, "failed": _STRS}),
            "process_restarts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "samples": {
                "oneOf": [
                    _obj(
                        {
                            "columns": {"const": ["probe", "at", "phase", "ok", "latency", "lag", "error"]},
                            "rows": {
                                "type": "array",
                                "items": {
                                    "type": "array",
                                    "prefixItems": [_STR, _NUM, _STR, _BOOL, _OPT_NUM, _OPT_NUM, _OPT_STR],
                                    "minItems": 7,
                                    "maxItems": 7,
                                },
                            },
                        },
                        optional={"file": _SAMPLE_FILE},
                    ),
                    _obj(
                        {
                            "count": {"type": "integer", "minimum": 0},
                            "file": {"oneOf": [{"type": "null"}, _SAMPLE_FILE]},
                            "series": _obj(
                                {
                                    "width": {"type": "number", "exclusiveMinimum": 0},
                                    "until": _NUM,
                                    "columns": {"const": list(_BUCKET_COLUMNS)},
                                    "rows": {
                                        "type": "array",
                                        "items": {
                                            "type": "array",
                                            "prefixItems": [_STR, _NUM, _INT, _INT, *[_OPT_NUM] * 4, _OPT_STR],
                                            "minItems": len(_BUCKET_COLUMNS),
                                            "maxItems": len(_BUCKET_COLUMNS),
                                        },
                                    },
                                }
                            ),
                        }
                    ),
                ],
                "description": "every sample (short runs), or past 50,000 samples a series per probe for charts: "
                "buckets of `width` seconds with sample and failure counts, lowest, p99 and highest latency of "
                "passing samples and the first failure; every sample is then in `file` (samples.bin, layout in "
                "docs/architecture.md)",
            },
        },
        optional={"workload": _WORKLOAD, "alerts": _ALERTS, "detection": _DETECTION},
    ),
}
