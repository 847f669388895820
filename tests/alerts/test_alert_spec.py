"""Spec errors of alert SLAs and stop conditions: file, line and field, exit 2, nothing started."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import SpecError
from orchestrator.loading import load_drill
from tests.support import drill, run, write

PROBES = {"probes": [{"type": "tcp", "name": "p", "host": "127.0.0.1", "port": 1}]}
FAULT = {"name": "f", "type": "network.down", "proxy": "x", "duration": "1s"}
PROXY = {"name": "x", "listen": "127.0.0.1:1", "upstream": "127.0.0.1:2"}


def _issues(tmp_path: Path, **spec: Any) -> list[str]:
    path = write(tmp_path, drill("d", steady_state=PROBES, **spec))
    with pytest.raises(SpecError) as refused:
        load_drill(path)
    return [str(i) for i in refused.value.issues]


def test_alert_slas_need_a_prometheus_and_notify_needs_a_receiver(tmp_path: Path) -> None:
    detect = {"name": "d", "type": "time_to_detect", "alert": "Down", "max": "2s"}
    (issue,) = _issues(tmp_path, slas=[detect], faults=[FAULT], proxies=[PROXY])
    assert "spec.slas[0].type: a time_to_detect SLA needs spec.alerts.prometheus" in issue and ":8" not in issue
    notify = {"name": "n", "type": "time_to_notify", "alert": "Down", "max": "2s", "fault": "nope"}
    issues = _issues(tmp_path, alerts={"prometheus": "http://p:9"}, slas=[notify], faults=[FAULT], proxies=[PROXY])
    assert any("spec.slas[0].fault: names unknown fault 'nope'" in i for i in issues)
    assert any("time_to_notify needs spec.alerts.receiver" in i for i in issues)
    assert any("time_to_notify needs spec.alerts.alertmanager" in i for i in issues)
    (issue,) = _issues(tmp_path, alerts={"prometheus": "http://p:9"}, slas=[{**detect}])
    assert "measured from a fault's impact: the drill has no fault" in issue


def test_bad_matchers_names_and_poll_intervals_are_spec_errors_with_lines(tmp_path: Path) -> None:
    alerts = {"prometheus": "http://p:9", "poll_interval": "10ms", "refuse_while_firing": [{"alert": "bad name"}]}
    stop = {"name": "s", "type": "alert_firing", "alert": "Down", "matchers": ["severity=page"]}
    issues = _issues(tmp_path, alerts=alerts, stop_conditions=[stop])
    assert any(
        re.search(r"drill\.yaml:\d+: spec\.alerts\.poll_interval: must be at least 50ms, got 10ms", i) for i in issues
    )
    assert any("spec.alerts.refuse_while_firing[0].alert: expected an alert name" in i for i in issues), issues
    said = r"drill\.yaml:\d+: spec\.stop_conditions\[0\]\.matchers\[0\]: not a label matcher: 'severity=page'"
    assert any(re.search(said, i) for i in issues), issues
    result = run("validate", str(tmp_path / "drill.yaml"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
