"""`drillctl plan` lists a drill's alerting, text and JSON: the sources, the receiver, every alert SLA, stop condition
and preflight refusal, credentials hidden. A plan contacts neither Prometheus nor Alertmanager (none runs here)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fixtures.toxiproxy import free_port
from tests.support import drill, run, write

PROBED = {"probes": [{"type": "tcp", "name": "api", "host": "127.0.0.1", "port": 9}]}


def test_plan_lists_alert_slas_stop_conditions_refusals_sources_and_the_receiver(tmp_path: Path) -> None:
    prometheus, alertmanager, receiver = free_port(), free_port(), free_port()
    page = ['severity="page"', 'team=~"inv.*"']
    document = drill(
        "watched",
        steady_state=PROBED,
        proxies=[{"name": "up", "listen": f"127.0.0.1:{free_port()}", "upstream": f"127.0.0.1:{free_port()}"}],
        alerts={
            "prometheus": f"http://ops:prom-secret@127.0.0.1:{prometheus}",
            "alertmanager": f"http://127.0.0.1:{alertmanager}",
            "poll_interval": "100ms",
            "timeout": "1s",
            "receiver": {"port": receiver},
            "refuse_while_firing": [{"alert": "CustomerImpact", "matchers": ['severity="critical"']}],
        },
        faults=[
            {"name": "cut", "type": "network.down", "proxy": "up", "duration": "2s"},
            {
                "name": "slow",
                "type": "network.latency",
                "proxy": "up",
                "latency": "50ms",
                "start": "3s",
                "duration": "1s",
            },
        ],
        slas=[
            {"name": "detected", "type": "time_to_detect", "alert": "Down", "matchers": page, "max": "4s"},
            {"name": "paged", "type": "time_to_notify", "alert": "Down", "max": "5s", "fault": "cut"},
            {"name": "clears", "type": "alert_clears", "alert": "Down", "max": "3s"},
            {"name": "absorbed", "type": "no_alert", "alert": "Slow", "matchers": ['severity="ticket"']},
            {"name": "recovers", "type": "recovery_window", "max": "5s"},
        ],
        stop_conditions=[{"name": "customers", "type": "alert_firing", "alert": "CustomerImpact", "phases": ["fault"]}],
    )
    path = write(tmp_path, document)

    text = run("plan", str(path))
    assert text.returncode == 0, text.stderr
    section = text.stdout[text.stdout.index("Alerts: ") :].splitlines()
    assert section[:7] == [
        f"Alerts: Prometheus http://ops:***@127.0.0.1:{prometheus} (its alerts polled every 100ms, each call within "
        f"1s); Alertmanager http://127.0.0.1:{alertmanager} (checked in preflight)",
        f"  receiver: drillctl listens on http://127.0.0.1:{receiver}/ for Alertmanager's webhooks",
        '  preflight refuses to start while CustomerImpact{severity="critical"} fires',
        '  SLA detected (time_to_detect): Down{severity="page",team=~"inv.*"} fires within 4s of the impact of the '
        "first fault with an impact",
        "  SLA paged (time_to_notify): a notification of Down reaches the receiver within 5s of the impact of "
        "fault cut",
        "  SLA clears (alert_clears): Down resolves within 3s of the recovery from the first fault with an impact",
        '  SLA absorbed (no_alert): Slow{severity="ticket"} must not fire during the drill',
    ]
    assert (
        section[7] == "  stop condition customers (alert_firing): the drill stops when CustomerImpact fires (in fault)"
    )
    assert "recovers" not in "\n".join(section), "only alert SLAs are listed there"
    assert "prom-secret" not in text.stdout

    as_json = run("plan", str(path), "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert "prom-secret" not in as_json.stdout
    alerts = json.loads(as_json.stdout)["alerts"]
    assert alerts["prometheus"] == f"http://ops:***@127.0.0.1:{prometheus}"
    assert alerts["alertmanager"] == f"http://127.0.0.1:{alertmanager}"
    assert (alerts["poll_interval"], alerts["timeout"]) == (0.1, 1.0)
    assert alerts["receiver"] == f"http://127.0.0.1:{receiver}/"
    assert alerts["refuse_while_firing"] == [
        {
            "alert": "CustomerImpact",
            "matchers": ['severity="critical"'],
            "selector": 'CustomerImpact{severity="critical"}',
        }
    ]
    assert [(s["name"], s["type"], s["alert"], s["matchers"], s["max"], s["fault"]) for s in alerts["slas"]] == [
        ("detected", "time_to_detect", "Down", page, 4.0, None),
        ("paged", "time_to_notify", "Down", [], 5.0, "cut"),
        ("clears", "alert_clears", "Down", [], 3.0, None),
        ("absorbed", "no_alert", "Slow", ['severity="ticket"'], None, None),
    ]
    assert alerts["stop_conditions"] == [
        {
            "name": "customers",
            "alert": "CustomerImpact",
            "matchers": [],
            "selector": "CustomerImpact",
            "phases": ["fault"],
        }
    ]


def test_plan_of_a_drill_without_alerts_has_no_alert_section(tmp_path: Path) -> None:
    path = write(tmp_path, drill("plain", steady_state=PROBED))
    text = run("plan", str(path))
    assert text.returncode == 0, text.stderr
    assert "Alerts:" not in text.stdout
    assert "alerts" not in json.loads(run("plan", str(path), "-o", "json").stdout)
