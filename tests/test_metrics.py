"""`drillctl run --metrics-port`: the real Prometheus endpoint scraped while a real drill runs
(a private toxiproxy-server, the demo upstream as a process, a real network.down fault)."""

from __future__ import annotations

import socket
import subprocess
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.toxiproxy import free_port
from tests.support import DRILLCTL, ROOT, drill, proxied_upstream_drill, run, wait_while_running, write


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the endpoint, or nothing while it is not up yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return {}
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float | None:
    return metrics.get((name, frozenset({"drill": "metered", **labels}.items())))


def test_metrics_are_served_during_a_real_run_and_carry_the_verdict_at_the_end(
    tmp_path: Path, toxiproxy_binary: Path
) -> None:
    port = free_port()
    document = proxied_upstream_drill(
        "metered",
        interval="50ms",
        probe_timeout="1s",
        phases={"baseline": "1s", "fault": "3s", "recovery": "5s"},
        faults=[{"name": "cut", "type": "network.down", "proxy": "up", "start": "200ms", "duration": "2500ms"}],
        slas=[{"name": "recovers", "type": "recovery_window", "max": "3s", "stable_for": "300ms"}],
    )
    path = write(tmp_path, document)
    argv = [DRILLCTL, "run", str(path), "--runs-dir", str(tmp_path / "runs"), "--quiet"]
    proc = subprocess.Popen(
        [*argv, "--metrics-port", str(port), "--metrics-linger", "20s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}

        def during_the_fault() -> bool:
            seen.update(scrape(port))
            return (
                value(seen, "drillctl_fault_active", fault="cut") == 1.0
                and (value(seen, "drillctl_probe_samples_total", probe="stock", result="failed") or 0) > 0
            )

        wait_while_running(proc, during_the_fault, 60, "the fault and failed samples in the metrics")
        assert value(seen, "drillctl_phase", phase="fault") == 1.0
        assert value(seen, "drillctl_faults_active") == 1.0
        assert (value(seen, "drillctl_probe_latency_seconds_count", probe="stock", phase="baseline") or 0) >= 10

        end: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}

        def judged() -> bool:
            end.update(scrape(port))
            return value(end, "drillctl_drill_verdict", verdict="PASS") == 1.0

        wait_while_running(proc, judged, 60, "the verdict in the metrics")
        assert value(end, "drillctl_sla_passed", sla="recovers") == 1.0
        assert 0 < (value(end, "drillctl_sla_margin", sla="recovers", unit="s") or 0) < 3
        assert value(end, "drillctl_fault_active", fault="cut") == 0.0 and value(end, "drillctl_faults_active") == 0
        assert value(end, "drillctl_phase", phase="done") == 1.0 and value(end, "drillctl_phase", phase="fault") == 0
        ok = value(end, "drillctl_probe_samples_total", probe="stock", result="ok") or 0
        failed = value(end, "drillctl_probe_samples_total", probe="stock", result="failed") or 0
        print(f"samples: {ok:.0f} ok, {failed:.0f} failed")
        assert ok > 20 and failed > 10
    finally:
        proc.terminate()  # ends the linger; the run itself is over
        proc.communicate(timeout=60)


def test_a_metrics_port_in_use_is_a_usage_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        document = drill(
            "metered", steady_state={"probes": [{"type": "tcp", "name": "x", "host": "127.0.0.1", "port": 1}]}
        )
        result = run("run", str(write(tmp_path, document)), "--metrics-port", str(busy.getsockname()[1]))
    assert result.returncode == 2 and "--metrics-port" in result.stderr
    assert not list((ROOT / "runs").glob("metered-*")), "refused before any run directory was made"
