"""Secrets never reach logs or reports: `redact` on its own, then every file of a real run searched."""

from __future__ import annotations

import subprocess
from pathlib import Path

from orchestrator.logs import REDACTED, redact
from tests.fixtures.toxiproxy import free_port
from tests.support import DRILLCTL, drill, run_dirs, upstream_process, write


def test_redact_keeps_the_shape_and_hides_the_secrets() -> None:
    assert redact("GET http://alice:s3cret@db:5432/x failed") == "GET http://alice:***@db:5432/x failed"
    assert redact("https://h/api?user=a&token=abc123&x=1") == "https://h/api?user=a&token=***&x=1"
    assert redact("curl -H 'Authorization: Bearer eyJ.abc' http://h") == "curl -H 'Authorization: Bearer ***' http://h"
    assert redact({"env": {"DB_PASSWORD": "p", "HOME": "/root"}, "argv": ["x", "http://u:p@h"]}) == {
        "env": {"DB_PASSWORD": REDACTED, "HOME": REDACTED},
        "argv": ["x", "http://u:***@h"],
    }
    assert redact({"headers": {"X-Api-Key": "k"}, "api_key": "k2", "name": "keep"}) == {
        "headers": {"X-Api-Key": REDACTED},
        "api_key": REDACTED,
        "name": "keep",
    }
    assert redact("http://plain.host:80/path, 1.5s") == "http://plain.host:80/path, 1.5s"
    conninfo = "host=db port=5432 user=app password=s3cret dbname=app"
    assert redact(conninfo) == "host=db port=5432 user=app password=*** dbname=app"
    assert redact("sslpassword = 'a \\' b' dbname=x") == "sslpassword = *** dbname=x"
    assert redact(["env", "PGPASSWORD=s3cret", "psql"]) == ["env", "PGPASSWORD=***", "psql"]
    assert redact("postgresql://h/db?sslpassword=k&x=1") == "postgresql://h/db?sslpassword=***&x=1"
    assert redact("user=app mypassword=kept") == "user=app mypassword=kept"


SECRETS = ["env-secret-1", "url-secret-2", "query-secret-3", "url-secret-4"]


def test_a_real_run_writes_no_secret_anywhere(tmp_path: Path) -> None:
    """Secrets in a target's env, in probe URLs (userinfo and query), and in the errors of a failing probe."""
    port, closed = free_port(), free_port()
    document = drill(
        targets={"local": {"processes": [{**upstream_process("svc", port), "env": {"DB_PASSWORD": "env-secret-1"}}]}},
        steady_state={
            "interval": "100ms",
            "tolerance": 1.0,
            "probes": [
                {
                    "type": "http",
                    "name": "svc",
                    "url": f"http://alice:url-secret-2@127.0.0.1:{port}/healthz?token=query-secret-3",
                },
                {"type": "http", "name": "gone", "url": f"http://bob:url-secret-4@127.0.0.1:{closed}/x"},
            ],
        },
        phases={"baseline": "500ms", "recovery": "1s"},
        faults=[
            {"name": "hiccup", "type": "gc.pause", "target": "svc", "pause": "200ms", "every": "1s", "duration": "2s"}
        ],
        stop_conditions=[{"name": "gone-down", "type": "probe_failing", "probe": "gone", "consecutive": 3}],
    )
    runs = tmp_path / "runs"
    result = subprocess.run(
        [DRILLCTL, "run", str(write(tmp_path, document)), "--runs-dir", str(runs)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 4, result.stderr
    (run_dir,) = run_dirs(runs)
    written = [p for p in run_dir.rglob("*") if p.is_file() and p.name != "svc.log"]  # svc.log: the target's own
    assert {p.name for p in written} >= {"drill.log.jsonl", "report.json", "report.md", "report.html", "journal.jsonl"}
    for path in written:
        content = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in content, f"{secret} in {path}"
    for stream in (result.stdout, result.stderr):
        assert not any(secret in stream for secret in SECRETS)
    log = (run_dir / "drill.log.jsonl").read_text()
    # The redacted forms are there: the check above looked at files that did carry these values.
    assert "alice:***@" in log and "token=***" in log and '"DB_PASSWORD": "***"' in log
    assert "gone-down" in (run_dir / "report.json").read_text()
