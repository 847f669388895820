"""Stop conditions: pure checks on hand-made samples, then real runs stopped by one, and by `drillctl abort`."""

from __future__ import annotations

import json
import math
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from orchestrator.model.spec import ErrorRateStop, ProbeFailingStop
from orchestrator.model.timeline import Sample
from orchestrator.stop_conditions import Recent, check, lookback
from tests.fixtures.toxiproxy import ToxiproxyServer, free_port
from tests.support import DRILLCTL, drill, report_of, run, run_dirs, upstream_process, wait_while_running, write

INTERVAL = 0.1


def _s(at: float, ok: bool, phase: str = "fault", probe: str = "p") -> Sample:
    return Sample(probe, at, phase, ok, 0.01 if ok else None, 0.0, None if ok else "connection refused")


def _feed(condition: Any, samples: list[Sample], late: float = 1.0) -> Any:
    """Land samples one by one, as the engine does (samples kept as far back as the engine keeps them)."""
    recent = Recent(lookback([condition], INTERVAL) + late)
    for sample in samples:
        recent.add(sample)
        if (stop := check(condition, recent.samples, sample)) is not None:
            return stop
    return None


def test_error_rate_trips_only_above_its_share_over_a_full_window() -> None:
    rate = ErrorRateStop.model_validate({"type": "error_rate", "name": "r", "probe": "p", "max": 0.5, "window": "1s"})
    # 40% failed over every 1s window: below the limit.
    calm = [_s(k * 0.1, k % 5 not in (1, 2)) for k in range(40)]
    assert _feed(rate, calm) is None
    # Half a window of failures right at the start does not trip before a whole window is seen...
    early = [_s(k * 0.1, False) for k in range(5)]
    assert _feed(rate, early) is None
    # ...but failures from 1.0s on trip once they are more than half of a window.
    burst = [_s(k * 0.1, ok=k < 10) for k in range(30)]
    stop = _feed(rate, burst)
    assert stop is not None and stop.kind == "stop_condition" and stop.name == "r"
    assert 1.5 <= stop.at <= 1.6, stop
    assert "failed between" in stop.evidence and "connection refused" in stop.evidence


def test_error_rate_ignores_other_phases_and_probes() -> None:
    rate = ErrorRateStop.model_validate(
        {"type": "error_rate", "name": "r", "probe": "p", "max": 0.1, "window": "500ms"}
    )
    assert _feed(rate, [_s(k * 0.1, False, phase="baseline") for k in range(20)]) is None
    assert _feed(rate, [_s(k * 0.1, False, probe="q") for k in range(20)]) is None


def test_consecutive_failures_count_samples_landing_out_of_order() -> None:
    failing = ProbeFailingStop.model_validate({"type": "probe_failing", "name": "c", "probe": "p", "consecutive": 3})
    assert _feed(failing, [_s(0.0, False), _s(0.1, False), _s(0.2, True), _s(0.3, False), _s(0.4, False)]) is None
    # Open loop: the sample of 0.1s lands last and joins the two around it into a run of three.
    stop = _feed(failing, [_s(0.0, True), _s(0.2, False), _s(0.0 + 0.3, True), _s(0.05, False), _s(0.1, False)])
    assert stop is not None and stop.at == 0.1
    assert "3 failed samples of p in a row, from 0.050s to 0.200s" in stop.evidence


def test_lookback_is_the_longest_window_or_run_of_samples() -> None:
    rate = ErrorRateStop.model_validate({"type": "error_rate", "name": "r", "probe": "p", "max": 0.5, "window": "2s"})
    failing = ProbeFailingStop.model_validate({"type": "probe_failing", "name": "c", "probe": "p", "consecutive": 30})
    assert lookback([rate], INTERVAL) == 2.0
    assert lookback([rate, failing], INTERVAL) == pytest.approx(3.0)
    assert lookback([], INTERVAL) == 0.0


def test_an_hour_of_samples_keeps_only_the_longest_window_and_still_trips() -> None:
    """36,000 samples of one probe (an hour at 10 Hz): memory stays at one window plus the lateness allowed."""
    rate = ErrorRateStop.model_validate({"type": "error_rate", "name": "r", "probe": "p", "max": 0.5, "window": "2s"})
    recent = Recent(lookback([rate], INTERVAL) + 1.0)
    most = 0
    for k in range(36000):
        recent.add(_s(round(k * INTERVAL, 9), True))
        most = max(most, len(recent.samples))
    assert most <= 32, most  # 3s of samples at 10 Hz, plus the one before the edge
    assert recent.samples[0].at <= 3599.9 - 3.0 < recent.samples[1].at
    burst = [_s(round(3600 + k * INTERVAL, 9), False) for k in range(25)]
    stop = None
    for sample in burst:
        recent.add(sample)
        stop = stop or check(rate, recent.samples, sample)
    assert stop is not None and stop.at == pytest.approx(3601.0)
    assert "11/20 samples of p failed" in stop.evidence


@pytest.mark.parametrize("seed", range(30))
def test_pruned_samples_trip_as_every_sample_would(seed: int) -> None:
    """Samples landing out of order (up to `late` after their time): the same stops, with the same evidence."""
    rnd = random.Random(seed)
    late = rnd.choice([0.0, 0.3, 1.0])
    conditions = [
        ErrorRateStop.model_validate(
            {"type": "error_rate", "name": "r", "probe": "p", "max": rnd.choice([0.2, 0.5]), "window": "1s"}
        ),
        ProbeFailingStop.model_validate(
            {"type": "probe_failing", "name": "c", "probe": "p", "consecutive": rnd.randint(2, 12)}
        ),
    ]
    fail = rnd.choice([0.1, 0.3, 0.5])
    scheduled = [_s(round(k * INTERVAL, 9), rnd.random() > fail) for k in range(400)]
    landing = sorted(scheduled, key=lambda s: s.at + rnd.uniform(0.0, late))
    pruned, every = Recent(lookback(conditions, INTERVAL) + late), Recent(math.inf)
    for sample in landing:
        pruned.add(sample)
        every.add(sample)
        for condition in conditions:
            assert check(condition, pruned.samples, sample) == check(condition, every.samples, sample)
    assert len(pruned.samples) < len(every.samples) / 5


def test_unknown_probe_and_window_below_the_interval_are_spec_errors(tmp_path: Path) -> None:
    def validate(*conditions: dict[str, Any]) -> str:
        steady = {"interval": "100ms", "probes": [{"type": "tcp", "name": "p", "host": "127.0.0.1", "port": 1}]}
        result = run("validate", str(write(tmp_path, drill(steady_state=steady, stop_conditions=list(conditions)))))
        assert result.returncode == 2 and "Traceback" not in result.stdout + result.stderr
        return result.stdout

    crossed = validate(
        {"name": "a", "type": "probe_failing", "probe": "nope"},
        {"name": "b", "type": "error_rate", "probe": "p", "max": 0.5, "window": "50ms"},
        {"name": "b", "type": "probe_failing", "probe": "p"},
    )
    assert "spec.stop_conditions[0].probe: names unknown probe 'nope'" in crossed
    assert "spec.stop_conditions[1].window: a window of 0.05s is shorter than the sampling interval" in crossed
    assert "spec.stop_conditions[2].name: duplicate name 'b'" in crossed
    shaped = validate({"name": "c", "type": "error_rate", "probe": "p", "max": 1.5, "window": "1s"})
    assert "spec.stop_conditions[0].max: Input should be less than 1" in shaped
    unknown = validate({"name": "c", "type": "prometheus", "probe": "p"})
    assert "spec.stop_conditions[0].type: unknown type 'prometheus'" in unknown


def _guarded_drill(upstream_port: int, proxy_port: int, **spec: Any) -> dict[str, Any]:
    proxy = {"name": "up", "listen": f"127.0.0.1:{proxy_port}", "upstream": f"127.0.0.1:{upstream_port}"}
    body: dict[str, Any] = {
        "targets": {"local": {"processes": [upstream_process("upstream", upstream_port)]}},
        "proxies": [proxy],
        "steady_state": {
            "interval": "50ms",
            "probes": [{"type": "tcp", "name": "path", "host": "127.0.0.1", "port": proxy_port, "timeout": "300ms"}],
        },
        "phases": {"baseline": "500ms", "fault": "30s", "recovery": "2s"},
    }
    body.update(spec)
    return drill(**body)


def test_a_tripped_condition_stops_the_drill_reverts_at_once_and_says_why(
    tmp_path: Path, toxiproxy: ToxiproxyServer
) -> None:
    upstream_port, proxy_port = free_port(), free_port()
    requests.post(
        toxiproxy.url + "/proxies",
        json={"name": "up", "listen": f"127.0.0.1:{proxy_port}", "upstream": f"127.0.0.1:{upstream_port}"},
        timeout=5,
    ).raise_for_status()
    document = _guarded_drill(
        upstream_port,
        proxy_port,
        faults=[
            {"name": "slow", "type": "network.latency", "proxy": "up", "latency": "50ms", "duration": "25s"},
            {"name": "cut", "type": "network.down", "proxy": "up", "start": "500ms", "duration": "20s"},
        ],
        stop_conditions=[{"name": "path-down", "type": "probe_failing", "probe": "path", "consecutive": 4}],
    )
    runs = tmp_path / "runs"
    started = time.monotonic()
    result = run("run", str(write(tmp_path, document)), "--runs-dir", str(runs), "--toxiproxy-url", toxiproxy.url)
    took = time.monotonic() - started
    print(f"run stopped by its condition after {took:.3f}s (the faults were to last 20-25s)")
    assert result.returncode == 4, result.stderr
    report = report_of(runs)
    stopped = report["run"]["stopped_by"]
    assert stopped["kind"] == "stop_condition" and stopped["name"] == "path-down"
    assert "4 failed samples of path in a row" in stopped["evidence"]
    cut = next(f for f in report["faults"] if f["name"] == "cut")
    assert cut["injected_at"] < stopped["at"] < cut["injected_at"] + 2.0
    assert "stop condition path-down tripped" in report["run"]["reason"]
    proxy = toxiproxy.get("/proxies/up").json()
    assert proxy["enabled"] is True and proxy["toxics"] == []
    assert took < 20


def test_drillctl_abort_from_another_terminal(tmp_path: Path, toxiproxy: ToxiproxyServer) -> None:
    upstream_port, proxy_port = free_port(), free_port()
    document = _guarded_drill(
        upstream_port,
        proxy_port,
        faults=[{"name": "slow", "type": "network.latency", "proxy": "up", "latency": "50ms", "duration": "25s"}],
    )
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [DRILLCTL, "run", str(write(tmp_path, document)), "--runs-dir", str(runs), "--toxiproxy-url", toxiproxy.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_while_running(proc, lambda: bool(toxiproxy.get("/proxies").json().get("up", {}).get("toxics")), 30, "fault")
    (run_dir,) = run_dirs(runs)
    aborted = run("abort", run_dir.name, "--runs-dir", str(runs), "--reason", "db team\nsaid stop", timeout=60)
    assert aborted.returncode == 0, aborted.stderr
    assert "aborted after" in aborted.stdout
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, err
    report = json.loads((run_dir / "report.json").read_text())
    assert report["run"]["stopped_by"]["kind"] == "abort"
    assert report["run"]["stopped_by"]["evidence"] == "db team said stop"
    assert "db team said stop" in report["run"]["reason"]
    # The drill created the proxy, and deleted it again once its toxic was reverted.
    assert toxiproxy.get("/proxies").json() == {}
    again = run("abort", str(run_dir), timeout=30)
    assert again.returncode == 1 and "not running" in again.stderr
