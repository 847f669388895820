"""The receiver and the API clients on real sockets: what a hostile or broken Alertmanager or Prometheus sends."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import aiohttp
import pytest

from orchestrator.alerts.receiver import WebhookReceiver
from orchestrator.alerts.session import AlertSession
from orchestrator.errors import PreflightError
from orchestrator.limits import ALERT_WEBHOOK_BYTES
from orchestrator.model.spec import DrillSpec
from tests.fixtures.answers import Answer, AnswerServer
from tests.fixtures.toxiproxy import free_port
from tests.support import drill, report_of, run, write

PAYLOAD = {
    "version": "4",
    "status": "firing",
    "receiver": "drillctl",
    "alerts": [{"status": "firing", "labels": {"alertname": "Down"}, "annotations": {"runbook_url": "u"}}],
}


def test_receiver_times_webhooks_and_refuses_oversized_or_foreign_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALERT_WEBHOOK_BYTES.env, "4096")

    async def scenario() -> tuple[WebhookReceiver, list[int]]:
        loop = asyncio.get_running_loop()
        receiver = WebhookReceiver("127.0.0.1", free_port(), loop.time)
        await receiver.start()
        statuses = []
        try:
            async with aiohttp.ClientSession() as session:
                for body in (json.dumps(PAYLOAD).encode(), b"x" * 10_000, b"not json", b'{"status": 1}'):
                    async with session.post(receiver.url + "alerts", data=body, timeout=aiohttp.ClientTimeout(5)) as r:
                        statuses.append(r.status)
        finally:
            await receiver.stop()
        return receiver, statuses

    receiver, statuses = asyncio.run(scenario())
    assert statuses == [200, 413, 400, 400]
    (delivery,) = receiver.deliveries
    assert delivery.status == "firing" and delivery.alerts[0].labels == {"alertname": "Down"} and delivery.at > 0
    assert receiver.refused == 3 and "over 4096 bytes" in (receiver.first_refusal or "")


def test_receiver_on_a_taken_port_is_a_preflight_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def scenario() -> None:
            await WebhookReceiver("127.0.0.1", port, asyncio.get_running_loop().time).start()

        with pytest.raises(PreflightError, match=f"cannot listen on 127.0.0.1:{port}"):
            asyncio.run(scenario())


def _drill(url: str) -> dict[str, object]:
    """A drill whose alerts come from `url`; its probe asks the same server, which answers everything."""
    return drill(
        "d",
        alerts={"prometheus": url, "timeout": "1s"},
        steady_state={"probes": [{"type": "http", "name": "p", "url": url}]},
        slas=[{"name": "q", "type": "no_alert", "alert": "Down"}],
    )


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b"<html>nginx</html>", "HTTP 200, not JSON"),
        (b'{"status": "success", "data": {"groups": {"a": 1}}}', "data.groups is not a list"),
        (b'{"status": "success", "data": {"groups": [{"name": "g", "interval": "1m", "rules": []}]}}', "group 0"),
        (b'{"status": "error", "errorType": "bad_data", "error": "nope"}', "Prometheus bad_data: nope"),
        (b"[" * 100_000, "not JSON"),
    ],
)
def test_malformed_prometheus_answers_are_clear_preflight_errors(answers: AnswerServer, body: bytes, said: str) -> None:
    answers.answer(Answer(body))
    spec = DrillSpec.model_validate(_drill(answers.url))
    config = spec.spec.alerts
    assert config is not None

    async def scenario() -> None:
        session = AlertSession(config, spec, asyncio.get_running_loop().time, lambda _: None)
        try:
            await session.preflight()
        finally:
            await session.stop()

    with pytest.raises(PreflightError, match="is not usable for alerts") as refused:
        asyncio.run(scenario())
    assert said in str(refused.value)


def test_malformed_alerts_answer_ends_a_run_in_preflight_without_a_traceback(
    answers: AnswerServer, tmp_path: Path
) -> None:
    rules = b'{"status": "success", "data": {"groups": []}}'
    alerts = b'{"status": "success", "data": {"alerts": [{"state": "firing", "labels": {"alertname": 7}}]}}'
    answers.respond = lambda method, path: Answer(rules if "/rules" in path else alerts)
    path = write(tmp_path, _drill(answers.url))
    result = run("run", str(path), "--runs-dir", str(tmp_path / "runs"), timeout=60)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "alert 0: labels is not a mapping of strings" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert report_of(tmp_path / "runs")["run"]["status"] == "preflight_failed"
