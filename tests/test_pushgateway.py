"""`drillctl run --pushgateway`: a real Prometheus Pushgateway (built by scripts/install-pushgateway.sh) on a free
loopback port receives a real run's metrics (a private toxiproxy-server, the demo upstream as a process, a real
network.down fault), read back from the Pushgateway's own /metrics during the run and after it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.toxiproxy import free_port
from tests.support import (
    DRILLCTL,
    ROOT,
    proxied_upstream_drill,
    report_of,
    run_dirs,
    samples,
    wait_while_running,
    write,
)

PUSHGATEWAY = ROOT / ".tools" / "bin" / "pushgateway"
READY_TIMEOUT_S = 30.0
Metrics = dict[tuple[str, frozenset[tuple[str, str]]], float]

# The first run on a clean machine builds the Pushgateway (go, about a minute) inside the first test's setup.
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The pinned Pushgateway (built once by its install script) on a free loopback port; its URL."""
    subprocess.run(["bash", str(ROOT / "scripts" / "install-pushgateway.sh")], check=True, timeout=1200)
    port = free_port()
    log = tmp_path_factory.mktemp("pushgateway") / "pushgateway.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(PUSHGATEWAY), f"--web.listen-address=127.0.0.1:{port}"], stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _ready(url):
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"pushgateway not ready in {READY_TIMEOUT_S:g}s: {log.read_text()}"
            time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=15)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def pushed(url: str) -> Metrics:
    """Every sample the Pushgateway exposes, pushed groups included."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def of_run(metrics: Metrics, name: str, run_id: str | None = None, **labels: str) -> dict[str, float]:
    """Samples named `name` with `labels`, pushed by drill `pushed` (and run `run_id`), keyed by run id."""
    found = {}
    for (sample, sample_labels), value in metrics.items():
        flat = dict(sample_labels)
        wanted = {"job": "drillctl", "drill": "pushed", **labels}
        if sample == name and wanted.items() <= flat.items() and run_id in (None, flat.get("run_id")):
            found[flat["run_id"]] = value
    return found


def _document() -> dict[str, Any]:
    return proxied_upstream_drill(
        "pushed",
        interval="50ms",
        probe_timeout="1s",
        phases={"baseline": "1s", "fault": "3s", "recovery": "5s"},
        faults=[{"name": "cut", "type": "network.down", "proxy": "up", "start": "200ms", "duration": "2500ms"}],
        slas=[{"name": "recovers", "type": "recovery_window", "max": "3s", "stable_for": "300ms"}],
    )


def test_a_run_pushes_while_it_runs_and_its_verdict_at_the_end(pushgateway: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    argv = [DRILLCTL, "run", str(write(tmp_path, _document())), "--runs-dir", str(runs), "--quiet"]
    env = {**os.environ, "DRILLCTL_PUSHGATEWAY": pushgateway}  # as the Helm chart gives it
    with subprocess.Popen(
        [*argv, "--push-every", "200ms"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        during: dict[str, float] = {}

        def fault_pushed() -> bool:
            during.update(of_run(pushed(pushgateway), "drillctl_fault_active", fault="cut"))
            return 1.0 in during.values()

        wait_while_running(proc, fault_pushed, 60, "a push made while the fault was injected")
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, (out, err)

    report = report_of(runs)
    run_id = report["run"]["id"]
    assert list(during) == [run_id], "grouped by drill and run id"
    end = pushed(pushgateway)
    assert of_run(end, "drillctl_drill_verdict", run_id, verdict="PASS") == {run_id: 1.0}
    assert of_run(end, "drillctl_sla_passed", run_id, sla="recovers") == {run_id: 1.0}
    assert of_run(end, "drillctl_fault_active", run_id, fault="cut") == {run_id: 0.0}
    assert of_run(end, "drillctl_phase", run_id, phase="done") == {run_id: 1.0}
    rows = samples(report, "stock")
    ok, failed = sum(r["ok"] for r in rows), sum(not r["ok"] for r in rows)
    assert failed > 0, "the fault was felt"
    # The last push came after the last sample: it holds every sample the report holds.
    assert of_run(end, "drillctl_probe_samples_total", run_id, probe="stock", result="ok") == {run_id: ok}
    assert of_run(end, "drillctl_probe_samples_total", run_id, probe="stock", result="failed") == {run_id: failed}
    (run_dir,) = run_dirs(runs)
    log = [json.loads(line) for line in (run_dir / "drill.log.jsonl").read_text().splitlines()]
    assert not [e for e in log if e["event"] == "pushgateway_push_failed"]


def test_a_pushgateway_that_is_not_there_is_logged_and_changes_nothing(tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"  # a free port: every push is refused
    runs = tmp_path / "runs"
    argv = [DRILLCTL, "run", str(write(tmp_path, _document())), "--runs-dir", str(runs), "--quiet"]
    result = subprocess.run(
        [*argv, "--pushgateway", nobody, "--push-every", "500ms"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, (result.stdout, result.stderr)
    report = report_of(runs)
    assert report["run"]["verdict"] == "PASS"
    (run_dir,) = run_dirs(runs)
    log = [json.loads(line) for line in (run_dir / "drill.log.jsonl").read_text().splitlines()]
    failures = [e for e in log if e["event"] == "pushgateway_push_failed"]
    assert len(failures) >= 3, "the first push, periodic ones, and the last"
    finished = next(i for i, e in enumerate(log) if e["event"] == "run_finished")
    assert log[-1]["event"] == "pushgateway_push_failed" and len(log) - 1 > finished, "the last push, after the run"
    assert all(e["pushgateway"] == nobody and "refused" in e["error"].lower() for e in failures), failures


def test_a_game_day_pushes_each_drill_as_the_chart_configures_it(pushgateway: str, tmp_path: Path) -> None:
    write(tmp_path, _document(), "pushed.yaml")
    gameday = {
        "apiVersion": "drillctl.dev/v1",
        "kind": "GameDay",
        "metadata": {"name": "pushing"},
        "spec": {"drills": ["pushed.yaml"], "cooldown": "0s"},
    }
    runs = tmp_path / "runs"
    argv = [DRILLCTL, "gameday", "run", str(write(tmp_path, gameday, "gameday.yaml")), "--runs-dir", str(runs), "-q"]
    env = {**os.environ, "DRILLCTL_PUSHGATEWAY": pushgateway}  # the chart sets this, not a flag
    result = subprocess.run(argv, capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, (result.stdout, result.stderr)

    (drill_run,) = [d for d in run_dirs(runs) if d.name.startswith("pushed-")]
    run_id = json.loads((drill_run / "report.json").read_text())["run"]["id"]
    end = pushed(pushgateway)
    assert of_run(end, "drillctl_drill_verdict", run_id, verdict="PASS") == {run_id: 1.0}
    assert of_run(end, "drillctl_phase", run_id, phase="done") == {run_id: 1.0}
