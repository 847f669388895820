"""Alert SLAs judged from hand-made timelines: alert marks, webhooks and samples in, verdicts out (pure)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from orchestrator.alert_analysis import alerts_decided, detection_timelines
from orchestrator.alerts.api import ActiveAlert
from orchestrator.alerts.runbook_check import problem, runbook_ref
from orchestrator.alerts.watcher import AlertWatcher
from orchestrator.analysis import fault_moments, judge
from orchestrator.errors import BackendError
from orchestrator.model.alerts import (
    AlertChange,
    AlertObservations,
    AlertRule,
    AlertSelector,
    AlertState,
    DeliveredAlert,
    Delivery,
    Unanswered,
    matches,
    parse_matcher,
)
from orchestrator.model.spec import AlertFiringStop, DrillSpec
from orchestrator.model.timeline import FaultMark, PhaseMark, Sample, Timeline
from orchestrator.runbooks import RunbookIndex
from orchestrator.stop_conditions import check_alert

INTERVAL = 0.1
POLL = 0.25
KEY = 'Down{severity="page"}'


def _spec(slas: list[dict[str, Any]]) -> DrillSpec:
    return DrillSpec.model_validate(
        {
            "apiVersion": "drillctl.dev/v1",
            "kind": "Drill",
            "metadata": {"name": "d"},
            "spec": {
                "alerts": {"prometheus": "http://127.0.0.1:9", "receiver": {"port": 9}, "alertmanager": "http://x:9"},
                "steady_state": {"probes": [{"type": "tcp", "name": "p", "host": "h", "port": 1}]},
                "faults": [{"name": "f", "type": "network.down", "proxy": "x", "duration": "3s"}],
                "slas": slas,
            },
        }
    )


def _change(state: AlertState, at: float, since: float | None = None) -> AlertChange:
    annotations = {"runbook_url": "runbooks/r.md#down"} if state != "inactive" else {}
    return AlertChange(KEY, state, at, at - POLL if since is None else since, {"alertname": "Down"}, annotations)


def _timeline(
    changes: list[AlertChange],
    deliveries: tuple[Delivery, ...] = (),
    end: float = 12.0,
    unanswered: tuple[Unanswered, ...] = (),
) -> Timeline:
    """Probe p passes, fails from 2.0 (0.05 after the injection at 1.95) to 5.0, then passes: impact 2.0, recovered
    5.0, both known to one interval."""
    samples = tuple(
        Sample("p", round(k * INTERVAL, 6), "fault", not 2.0 <= k * INTERVAL < 5.0 - 1e-9, 0.001, 0.0)
        for k in range(int(end / INTERVAL))
    )
    observed = AlertObservations(
        prometheus="http://127.0.0.1:9",
        poll_interval=POLL,
        polls=48,
        widest_gap=POLL,
        changes=tuple([AlertChange(KEY, "inactive", 0.0, None, {}, {}), *changes]),
        deliveries=deliveries,
        rules=(AlertRule("Down", "g", 1.0, 0.5, {}),),
        receiver="http://127.0.0.1:9/",
        first_poll=0.0,
        last_poll=end,
        failed_polls=sum(u.failures for u in unanswered),
        unanswered=unanswered,
    )
    fault = FaultMark("f", "network.down", {}, 0.0, 3.0, 1.95, 4.95, ended_at=4.95, runbook="runbooks/r.md#down")
    return Timeline(INTERVAL, ("p",), samples, (PhaseMark("fault", 0.0, end),), (fault,), end, alerts=observed)


def _page(at: float, status: str = "firing", severity: str = "page") -> Delivery:
    alert = DeliveredAlert(status, {"alertname": "Down", "severity": severity}, {})
    return Delivery(at, status, "drillctl", (alert,))


SLA = {"alert": "Down", "matchers": ['severity="page"']}


def test_time_to_detect_is_firing_seen_minus_impact_with_poll_and_sample_resolution() -> None:
    spec = _spec([{"name": "d", "type": "time_to_detect", "max": "2s", **SLA}])
    (v,) = judge(spec, _timeline([_change("pending", 2.6), _change("firing", 3.6)]))
    assert v.passed and v.measured == pytest.approx(1.6)
    assert v.resolution == pytest.approx(POLL + INTERVAL)
    assert "pending for 1.000s" in v.detail and "holds for 1s and is evaluated every 0.5s" in v.detail

    (late,) = judge(spec, _timeline([_change("firing", 4.1)]))
    assert not late.passed and late.measured == pytest.approx(2.1) and late.marginal, "2.1 > 2 within ±0.35"
    assert "never seen pending" in late.detail

    (never,) = judge(spec, _timeline([]))
    assert not never.passed and never.measured is None and "never seen firing after f" in never.detail


def test_time_to_notify_is_timed_on_arrival_and_needs_a_matching_firing_alert() -> None:
    spec = _spec([{"name": "n", "type": "time_to_notify", "max": "2s", **SLA}])
    pages = (_page(1.0, "resolved"), _page(2.5, severity="ticket"), _page(3.25))
    (v,) = judge(spec, _timeline([_change("firing", 3.2)], pages))
    assert v.passed and v.measured == pytest.approx(1.25) and v.resolution == pytest.approx(INTERVAL)
    (missing,) = judge(spec, _timeline([_change("firing", 3.2)], pages[:2]))
    assert not missing.passed and "no firing notification" in missing.detail


def test_alert_clears_from_the_measured_recovery_and_no_alert_counts_seconds_firing() -> None:
    clears = _spec([{"name": "c", "type": "alert_clears", "max": "1s", **SLA}])
    changes = [_change("firing", 3.6), _change("inactive", 5.7)]
    (v,) = judge(clears, _timeline(changes))
    assert v.passed and v.measured == pytest.approx(0.7) and v.reference == "recovery from f"
    (stuck,) = judge(clears, _timeline(changes[:1]))
    assert not stuck.passed and "still firing at the end" in stuck.detail

    quiet = _spec([{"name": "q", "type": "no_alert", **SLA}])
    (fired,) = judge(quiet, _timeline(changes))
    assert not fired.passed and fired.measured == pytest.approx(2.1) and fired.resolution is None
    (calm,) = judge(quiet, _timeline([_change("pending", 3.0), _change("inactive", 3.5)]))
    assert calm.passed and calm.result == "PASS", "pending pages nobody; polls faster than evaluations are exact"


def test_detection_timeline_orders_every_step_and_decides_once_deadlines_pass() -> None:
    spec = _spec(
        [
            {"name": "d", "type": "time_to_detect", "max": "2s", **SLA},
            {"name": "n", "type": "time_to_notify", "max": "2s", **SLA},
        ]
    )
    timeline = _timeline([_change("pending", 2.6), _change("firing", 3.6), _change("inactive", 5.7)], (_page(3.7),))
    (d,) = detection_timelines(spec, timeline, fault_moments(spec, timeline))
    assert [(s.name, s.at) for s in d.steps] == [
        ("impact", 2.0),
        ("pending", 2.6),
        ("firing", 3.6),
        ("notified", 3.7),
        ("recovered", 5.0),
        ("resolved", 5.7),
    ]
    assert d.runbook_url == "runbooks/r.md#down" and d.fault_runbook == "runbooks/r.md#down"

    undecided = _timeline([], end=3.0)
    assert not alerts_decided(spec, undecided, fault_moments(spec, undecided)), "until impact + max + 2 polls"
    waited = _timeline([], end=4.6)
    assert alerts_decided(spec, waited, fault_moments(spec, waited))


def test_matchers_parse_and_match_like_alertmanager() -> None:
    assert parse_matcher('team=~"inv.*"') == ("team", "=~", "inv.*")
    assert parse_matcher(r'msg="say \"hi\""') == ("msg", "=", 'say "hi"')
    for bad in ("team", "team=inv", 'te am="x"', 'x=~"("'):
        with pytest.raises(ValueError):
            parse_matcher(bad)
    selector = AlertSelector.of("Down", ['team=~"inv.*"', 'env!="dev"', 'tier!~"canary|test"'])
    assert selector.key == 'Down{team=~"inv.*",env!="dev",tier!~"canary|test"}'
    assert matches(selector, {"alertname": "Down", "team": "inventory", "env": "prod"})
    assert not matches(selector, {"alertname": "Down", "team": "xinv", "env": "prod"}), "a regex matches whole values"
    assert not matches(selector, {"alertname": "Down", "team": "inv", "env": "dev"})
    assert not matches(selector, {"alertname": "Down", "team": "inv", "tier": "canary"})
    assert not matches(selector, {"alertname": "Up", "team": "inv"})


def test_watcher_dates_a_change_between_the_poll_before_and_the_one_that_saw_it() -> None:
    """The watcher's own bookkeeping, fed answered polls directly (the real polling is in test_detection_drill)."""

    class NoSource:
        async def alerts(self) -> list[ActiveAlert]:
            raise AssertionError("not polled here")

    watcher = AlertWatcher(NoSource(), [AlertSelector.of("Down", ['severity="page"'])], POLL, lambda: 0.0)
    seen: list[str] = []
    watcher.listeners.append(lambda states: seen.append(states[0].state))
    firing = ActiveAlert({"alertname": "Down", "severity": "page"}, {"runbook_url": "u"}, "firing")
    ticket = ActiveAlert({"alertname": "Down", "severity": "ticket"}, {}, "firing")
    watcher.observe([ticket], 10.0, 10.01)
    watcher.observe([ticket], 10.25, 10.27)
    watcher.observe([firing, ticket], 10.5, 10.52)
    watcher.observe([], 11.25, 11.26)
    assert [(c.state, c.since, c.at) for c in watcher.changes] == [
        ("inactive", None, 10.01),
        ("firing", 10.25, 10.52),
        ("inactive", 10.5, 11.26),
    ]
    assert watcher.changes[1].annotations == {"runbook_url": "u"} and watcher.widest_gap == pytest.approx(0.75)
    assert seen == ["inactive", "inactive", "firing", "inactive"], "every answered poll reaches the listeners"


def test_alert_firing_stop_trips_only_on_firing_in_its_phases() -> None:
    condition = AlertFiringStop.model_validate({"name": "s", "type": "alert_firing", "alert": "Down"})
    firing = AlertChange("Down", "firing", 4.0, 3.75, {"alertname": "Down", "severity": "page"}, {})
    stop = check_alert(condition, "fault", firing)
    assert (
        stop is not None and stop.at == 4.0 and "alert Down is firing (it began firing after 3.750s)" in stop.evidence
    )
    assert check_alert(condition, "baseline", firing) is None
    assert check_alert(condition, "fault", AlertChange("Down", "pending", 4.0, 3.75, {}, {})) is None


def test_runbook_link_of_the_fired_alert_is_checked_against_the_faults_runbook(tmp_path: Path) -> None:
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "r.md").write_text("# R\n\n## Down\n\ntext\n\n## Other\n")
    index = RunbookIndex([tmp_path])
    assert runbook_ref("https://git.example/o/r/blob/main/runbooks/r.md#down") == "runbooks/r.md#down"
    assert runbook_ref("https://wiki.example/page") is None
    spec = _spec([{"name": "d", "type": "time_to_detect", "max": "2s", **SLA}])

    def flagged(url: str | None) -> str | None:
        change = _change("firing", 3.6)
        annotations = {} if url is None else {"runbook_url": url}
        timeline = _timeline([AlertChange(KEY, "firing", change.at, change.since, change.labels, annotations)])
        (d,) = detection_timelines(spec, timeline, fault_moments(spec, timeline))
        return problem(d, index)

    assert flagged("https://git.example/o/r/blob/main/runbooks/r.md#down") is None
    assert "without a runbook_url" in (flagged(None) or "")
    assert "points at no runbooks/" in (flagged("https://wiki.example/page") or "")
    assert "has no section #gone" in (flagged("runbooks/r.md#gone") or "")
    assert "the drill's runbook for fault f is runbooks/r.md#down" in (flagged("runbooks/r.md#other") or "")


GONE = "http://127.0.0.1:9/api/v1/alerts: ClientConnectorError: connection refused"


def test_a_figure_prometheus_could_not_show_is_not_measured_and_fails_like_any_unmeasured_figure() -> None:
    """Prometheus stopped answering at 2.5 s (never again), or for a stretch; figures looked for there are not
    measured, while a stretch too short to hide a state (the rule is evaluated every 0.5 s) changes nothing."""
    gone = (Unanswered(2.45, 2.5, 11.9, 38, GONE, None),)
    blip = (Unanswered(2.45, 2.5, 2.55, 1, GONE, 2.75),)
    mid = (Unanswered(2.45, 2.5, 4.4, 8, GONE, 4.5),)
    detect = _spec([{"name": "d", "type": "time_to_detect", "max": "2s", **SLA}])
    (unseen,) = judge(detect, _timeline([], unanswered=gone))
    assert not unseen.passed and unseen.measured is None and unseen.resolution is None
    assert unseen.detail.startswith(f"not measured: {KEY} may have fired unseen while Prometheus did not answer: ")
    assert f"38 polls failed from 2.500s to 11.900s and never again: {GONE}" in unseen.detail
    (never,) = judge(detect, _timeline([], unanswered=blip))
    assert "never seen firing after f" in never.detail, "0.3 s without an answer cannot hide a 0.5 s evaluation"
    (late,) = judge(detect, _timeline([_change("firing", 4.6, since=2.45)], unanswered=mid))
    assert late.measured == pytest.approx(2.6) and late.resolution == pytest.approx(2.15 + INTERVAL) and late.marginal

    clears = _spec([{"name": "c", "type": "alert_clears", "max": "1s", **SLA}])
    fired_then_gone = (Unanswered(3.95, 4.0, 11.9, 32, GONE, None),)
    (stuck,) = judge(clears, _timeline([_change("firing", 3.6)], unanswered=fired_then_gone))
    assert not stuck.passed and stuck.measured is None and f"{KEY} may have cleared unseen" in stuck.detail
    (nothing,) = judge(clears, _timeline([], unanswered=gone))
    assert f"{KEY} may have fired and cleared unseen" in nothing.detail

    quiet = _spec([{"name": "q", "type": "no_alert", **SLA}])
    (blind,) = judge(quiet, _timeline([], unanswered=mid))
    assert not blind.passed and blind.measured is None and "(answered again at 4.500s)" in blind.detail
    (calm,) = judge(quiet, _timeline([], unanswered=blip))
    assert calm.passed and calm.measured == 0.0

    notify = _spec([{"name": "n", "type": "time_to_notify", "max": "2s", **SLA}])
    (paged,) = judge(notify, _timeline([], (_page(3.25),), unanswered=gone))
    assert paged.passed, "a page is timed at the receiver: Prometheus's silence does not touch it"


def test_watcher_keeps_failed_polls_in_a_row_as_one_stretch_with_its_first_error() -> None:
    class Flaky:
        """Answers, fails twice, answers, fails once (and is never asked again)."""

        def __init__(self) -> None:
            self.answers = iter([True, False, False, True, False])

        async def alerts(self) -> list[ActiveAlert]:
            if next(self.answers):
                return []
            raise BackendError(GONE)

    times = iter([0.0, 0.01, 0.25, 0.26, 0.5, 0.51, 0.75, 0.76, 1.0, 1.01])
    watcher = AlertWatcher(Flaky(), [AlertSelector.of("Down", [])], POLL, lambda: next(times))

    async def poll_five() -> None:
        for _ in range(5):
            await watcher.poll()

    asyncio.run(poll_five())
    assert watcher.stretches() == [
        Unanswered(0.0, 0.25, 0.51, 2, GONE, 0.75),
        Unanswered(0.75, 1.0, 1.01, 1, GONE, None),
    ]
    assert watcher.failed == 3 and watcher.polls == 2 and watcher.widest_gap == pytest.approx(0.75)
