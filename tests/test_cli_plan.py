"""`drillctl plan` hides secrets as logs and reports do (`logs.redact`): a plan is pasted into tickets and chats.

Runs the real `drillctl plan` on a drill whose Toxiproxy URL, probe URLs, command argv and process environment
carry credentials; it touches nothing, so no server is needed.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import drill, run, write

SECRETS = ("tp-secret", "probe-secret", "query-secret", "cmd-secret", "env-secret", "other-env-value")


def _secretive() -> dict[str, object]:
    return drill(
        "secretive",
        toxiproxy={"url": "http://admin:tp-secret@127.0.0.1:8474"},
        targets={
            "local": {
                "processes": [
                    {
                        "name": "api",
                        "argv": ["python3", "-m", "http.server", "18080"],
                        "env": {"DB_PASSWORD": "env-secret", "REGION": "other-env-value"},
                    }
                ]
            }
        },
        proxies=[{"name": "up", "listen": "127.0.0.1:21000", "upstream": "127.0.0.1:18080"}],
        steady_state={
            "interval": "100ms",
            "probes": [
                {
                    "type": "http",
                    "name": "api",
                    "url": "http://user:probe-secret@127.0.0.1:21000/x?api_key=query-secret",
                },
                {"type": "command", "name": "cmd", "argv": ["curl", "-sf", "http://u:cmd-secret@127.0.0.1:21000/"]},
            ],
        },
        faults=[{"name": "slow", "type": "network.latency", "proxy": "up", "latency": "10ms", "duration": "1s"}],
    )


def test_plan_prints_no_credential_and_no_environment_value(tmp_path: Path) -> None:
    path = write(tmp_path, _secretive())

    text = run("plan", str(path))
    assert text.returncode == 0, text.stderr
    assert "toxiproxy: http://admin:***@127.0.0.1:8474" in text.stdout
    assert "process api: python3 -m http.server 18080 (cwd .; env DB_PASSWORD=***, REGION=***)" in text.stdout

    as_json = run("plan", str(path), "--output", "json")
    assert as_json.returncode == 0, as_json.stderr
    touches = json.loads(as_json.stdout)["touches"]
    assert touches["toxiproxy"] == "http://admin:***@127.0.0.1:8474"
    assert touches["processes"][0]["env"] == {"DB_PASSWORD": "***", "REGION": "***"}
    probes = {p["name"]: p for p in touches["probes"]}
    assert probes["api"]["url"] == "http://user:***@127.0.0.1:21000/x?api_key=***"
    assert probes["cmd"]["argv"] == ["curl", "-sf", "http://u:***@127.0.0.1:21000/"]

    for output in (text.stdout, text.stderr, as_json.stdout, as_json.stderr):
        leaked = [s for s in SECRETS if s in output]
        assert leaked == [], leaked


def _with_workload() -> dict[str, object]:
    dsn = "host=127.0.0.1 port=15432 user=app password='dsn secret' dbname=app"
    return drill(
        "workload-plan",
        steady_state={
            "interval": "100ms",
            "probes": [{"type": "command", "name": "psql", "argv": ["psql", "-d", f"{dsn} connect_timeout=1"]}],
        },
        phases={"baseline": "2s", "fault": "4s", "recovery": "4s"},
        workload={
            "rate": 100,
            "ramp": {"from": 10, "duration": "2s"},
            "bursts": [{"start": "3s", "duration": "1s", "rate": 400}],
            "keys": 1000,
            "reads": 0.25,
            "timeout": "1s",
            "client": {"type": "postgres", "dsn": dsn, "synchronous_commit": "remote_apply"},
            "verify": {"timeout": "20s", "concurrency": 8},
        },
        slas=[
            {"name": "no-loss", "type": "data_loss", "max": 2},
            {"name": "rpo", "type": "rpo", "max": "500ms"},
            {"name": "writes-fast", "type": "workload_latency", "phase": "fault", "operation": "write", "p99": "250ms"},
        ],
    )


def test_plan_shows_the_workload_without_its_password(tmp_path: Path) -> None:
    path = write(tmp_path, _with_workload())

    text = run("plan", str(path))
    assert text.returncode == 0, text.stderr
    section = text.stdout[text.stdout.index("  workload ") :].splitlines()
    # 100/s for 10 s, less the ramp's missing 90/s * 2 s / 2, plus the burst's extra 300/s for 1 s
    assert section[0] == "  workload from the first sample to the end of recovery: about 1,210 operations at most"
    assert section[1:] == [
        "    rate 100/s, open loop (a constant arrival rate, whatever earlier operations do), ramped from 10/s over "
        "the first 2s",
        "    burst 400/s for 1s, 3s after the first sample",
        "    25% reads, 75% writes; each within 1s, at most 401 in flight",
        "    keys drill-<run id>/0 .. drill-<run id>/999 (1,000)",
        "    client postgres: dsn=host=127.0.0.1 port=15432 user=app password=*** dbname=app, "
        "table=drillctl_workload, synchronous_commit=remote_apply, connections=16",
        "    verify: once recovery ends, every key written read back, 8 at a time, up to 3 reads each, within 20s",
        "    SLA no-loss: at most 2 acknowledged writes lost (data_loss)",
        "    SLA rpo: lost acknowledged writes span at most 500ms (rpo)",
        "    SLA writes-fast: writes in the fault phase, from their intended start: p99 <= 250ms (workload_latency)",
    ]

    as_json = run("plan", str(path), "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    touches = json.loads(as_json.stdout)["touches"]
    workload = touches["workload"]
    assert workload["client"] == {
        "type": "postgres",
        "dsn": "host=127.0.0.1 port=15432 user=app password=*** dbname=app",
        "table": "drillctl_workload",
        "synchronous_commit": "remote_apply",
        "connections": 16,
    }
    assert workload["ramp"] == {"duration": 2.0, "from": 10.0}
    assert workload["bursts"] == [{"start": 3.0, "duration": 1.0, "rate": 400.0}]
    assert (workload["rate"], workload["keys"], workload["key_prefix"], workload["operations"]) == (
        100.0,
        1000,
        "drill-<run id>/",
        1210,
    )
    assert workload["verify"] == {"timeout": 20.0, "concurrency": 8, "attempts": 3}
    assert [(s["name"], s["type"]) for s in workload["slas"]] == [
        ("no-loss", "data_loss"),
        ("rpo", "rpo"),
        ("writes-fast", "workload_latency"),
    ]
    assert (
        touches["probes"][0]["argv"][2]
        == "host=127.0.0.1 port=15432 user=app password=*** dbname=app connect_timeout=1"
    )
    for output in (text.stdout, text.stderr, as_json.stdout, as_json.stderr):
        assert "dsn secret" not in output and "secret'" not in output
