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
