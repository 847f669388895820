"""`drillctl run` end to end: a real Toxiproxy server, real processes, real sockets.

Timing assertions are loose on purpose (a loaded 2-core machine must pass); the
measured figures are printed so `pytest -s` shows them.
"""

from __future__ import annotations

import signal
import statistics
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.fixtures.toxiproxy import ToxiproxyServer, free_port
from tests.support import DRILLCTL, drill, report_of, samples, upstream_process, wait_while_running, write


def _through_proxy(upstream_port: int, proxy_port: int, **spec: Any) -> dict[str, Any]:
    """A drill with the demo upstream behind proxy `up`, probed through the proxy every 50ms."""
    body: dict[str, Any] = {
        "targets": {"local": {"processes": [upstream_process("upstream", upstream_port)]}},
        "proxies": [{"name": "up", "listen": f"127.0.0.1:{proxy_port}", "upstream": f"127.0.0.1:{upstream_port}"}],
        "steady_state": {
            "interval": "50ms",
            "probes": [
                {"type": "http", "name": "via-proxy", "url": f"http://127.0.0.1:{proxy_port}/stock", "timeout": "1s"}
            ],
        },
    }
    body.update(spec)
    return drill(**body)


def _run(tmp_path: Path, document: dict[str, Any], url: str, timeout: float = 120) -> tuple[int, dict[str, Any]]:
    path = write(tmp_path, document)
    runs = tmp_path / "runs"
    proc = subprocess.run(
        [DRILLCTL, "run", str(path), "--runs-dir", str(runs), "--toxiproxy-url", url, "--quiet"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode in (0, 1, 3, 4), proc.stderr
    return proc.returncode, report_of(runs)


def test_latency_fault_shows_in_probe_latency_and_goes_after_revert(tmp_path: Path, toxiproxy: ToxiproxyServer) -> None:
    document = _through_proxy(
        free_port(),
        free_port(),
        phases={"baseline": "1s", "fault": "2s", "recovery": "3s"},
        faults=[{"name": "slow", "type": "network.latency", "proxy": "up", "latency": "200ms", "duration": "1500ms"}],
    )
    code, report = _run(tmp_path, document, toxiproxy.url)
    assert code == 0, report["run"]
    fault = report["faults"][0]
    rows = samples(report, "via-proxy")
    during = [r["latency"] for r in rows if fault["injected_at"] + 0.1 <= r["at"] <= fault["reverted_at"] - 0.25]
    before = [r["latency"] for r in rows if r["phase"] == "baseline"]
    after = [r["latency"] for r in rows if r["at"] >= fault["reverted_at"] + 0.1]
    print(
        f"median latency before {statistics.median(before):.4f}s during {statistics.median(during):.4f}s "
        f"after {statistics.median(after):.4f}s"
    )
    assert len(during) >= 10 and before and after
    assert 0.19 <= statistics.median(during) <= 0.6
    assert statistics.median(before) < 0.1
    assert statistics.median(after) < 0.1
    assert toxiproxy.get("/proxies").json() == {}, "the proxy the drill created is deleted afterwards"


def _outage_drill(threshold: str) -> dict[str, Any]:
    return _through_proxy(
        free_port(),
        free_port(),
        phases={"baseline": "1s", "fault": "3s", "recovery": "5s"},
        faults=[{"name": "cut", "type": "network.down", "proxy": "up", "start": "500ms", "duration": "2s"}],
        slas=[
            {
                "name": "recovers",
                "type": "recovery_window",
                "from": "fault_start",
                "max": threshold,
                "stable_for": "500ms",
            }
        ],
    )


def test_two_second_outage_measures_two_seconds_and_sla_passes(tmp_path: Path, toxiproxy: ToxiproxyServer) -> None:
    code, report = _run(tmp_path, _outage_drill("4s"), toxiproxy.url)
    window = report["recovery_windows"][0]
    sla = report["slas"][0]
    print(f"unavailability {window['unavailability']:.3f}s, recovery window from fault start {sla['measured']:.3f}s")
    interval = report["run"]["interval"]
    assert abs(window["unavailability"] - 2.0) <= 2 * interval + 0.05
    assert abs(sla["measured"] - 2.0) <= 2 * interval + 0.05
    assert sla["passed"] is True
    assert code == 0 and report["run"]["status"] == "passed"


def test_same_outage_fails_a_tighter_recovery_sla_with_exit_1(tmp_path: Path, toxiproxy: ToxiproxyServer) -> None:
    code, report = _run(tmp_path, _outage_drill("1500ms"), toxiproxy.url)
    sla = report["slas"][0]
    assert sla["passed"] is False
    assert sla["measured"] > 1.5 and sla["margin"] < 0
    assert code == 1 and report["run"]["status"] == "failed"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_fault_reverts_everything_and_exits_4(
    tmp_path: Path, toxiproxy: ToxiproxyServer, sig: signal.Signals
) -> None:
    upstream_port, proxy_port = free_port(), free_port()
    # The proxy exists before the drill, so it survives the run and its state can be checked after.
    toxiproxy_proxy = {"name": "up", "listen": f"127.0.0.1:{proxy_port}", "upstream": f"127.0.0.1:{upstream_port}"}
    requests.post(toxiproxy.url + "/proxies", json=toxiproxy_proxy, timeout=5).raise_for_status()
    document = _through_proxy(
        upstream_port,
        proxy_port,
        phases={"baseline": "1s", "fault": "30s", "recovery": "5s"},
        faults=[
            {"name": "slow", "type": "network.latency", "proxy": "up", "latency": "100ms", "duration": "30s"},
            {"name": "cut", "type": "network.down", "proxy": "up", "start": "500ms", "duration": "20s"},
        ],
    )
    path = write(tmp_path, document)
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [DRILLCTL, "run", str(path), "--runs-dir", str(runs), "--toxiproxy-url", toxiproxy.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def injected() -> bool:
        proxy = toxiproxy.get("/proxies/up").json()
        return not proxy["enabled"] and bool(proxy["toxics"])

    wait_while_running(proc, injected, 30, "both faults to be injected")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, err
    proxy = toxiproxy.get("/proxies/up").json()
    assert proxy["enabled"] is True
    assert proxy["toxics"] == []
    report = report_of(runs)
    assert report["run"]["status"] == "aborted"
    assert sig.name in report["run"]["reason"]
    assert len(report["rollback"]["reverted"]) == 2 and report["rollback"]["failed"] == []
    assert "reverted" in out and "rolling back" in err


def test_a_failed_injection_aborts_and_reverts_what_was_injected(tmp_path: Path, toxiproxy: ToxiproxyServer) -> None:
    """A real failure: the second fault's proxy is deleted under the drill, so its inject gets a 404."""
    upstream_port, proxy_port, other_port = free_port(), free_port(), free_port()
    for name, port in (("up", proxy_port), ("other", other_port)):
        body = {"name": name, "listen": f"127.0.0.1:{port}", "upstream": f"127.0.0.1:{upstream_port}"}
        requests.post(toxiproxy.url + "/proxies", json=body, timeout=5).raise_for_status()
    document = _through_proxy(
        upstream_port,
        proxy_port,
        proxies=[
            {"name": "up", "listen": f"127.0.0.1:{proxy_port}", "upstream": f"127.0.0.1:{upstream_port}"},
            {"name": "other", "listen": f"127.0.0.1:{other_port}", "upstream": f"127.0.0.1:{upstream_port}"},
        ],
        phases={"baseline": "1s", "fault": "20s", "recovery": "5s"},
        faults=[
            {"name": "first", "type": "network.latency", "proxy": "up", "latency": "50ms", "duration": "20s"},
            {
                "name": "second",
                "type": "network.latency",
                "proxy": "other",
                "latency": "50ms",
                "start": "3s",
                "duration": "5s",
            },
        ],
    )
    path = write(tmp_path, document)
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [DRILLCTL, "run", str(path), "--runs-dir", str(runs), "--toxiproxy-url", toxiproxy.url, "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_while_running(proc, lambda: bool(toxiproxy.get("/proxies/up/toxics").json()), 30, "the first fault")
    requests.delete(toxiproxy.url + "/proxies/other", timeout=5).raise_for_status()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, out + err
    assert toxiproxy.get("/proxies/up/toxics").json() == []
    report = report_of(runs)
    assert report["run"]["status"] == "aborted"
    assert "second" in report["run"]["reason"] and "not found" in report["run"]["reason"]
    faults = {f["name"]: f for f in report["faults"]}
    assert faults["first"]["reverted_at"] is not None
    assert "inject failed" in faults["second"]["error"]
