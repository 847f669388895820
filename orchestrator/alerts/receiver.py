"""The drill's own webhook receiver: Alertmanager posts here, and each notification is timed on arrival.

An aiohttp server on the drill's address (loopback by default), for the drill's lifetime only. A
body over ALERT_WEBHOOK_BYTES is refused by aiohttp before it is read whole (413); past
ALERT_DELIVERIES the receiver still answers but keeps nothing more. A body that is not
Alertmanager's webhook payload is answered 400 and counted, its first error kept for the report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import structlog
from aiohttp import web

from orchestrator.errors import PreflightError
from orchestrator.limits import ALERT_DELIVERIES, ALERT_WEBHOOK_BYTES
from orchestrator.model.alerts import DeliveredAlert, Delivery, receiver_url
from orchestrator.probes.prometheus import parse_answer


def parse_webhook(payload: Any, at: float) -> Delivery:
    """Alertmanager's webhook payload (version 4) as a Delivery; ValueError says what is wrong."""
    if not isinstance(payload, Mapping):
        raise ValueError("not a JSON object")
    status, receiver, alerts = payload.get("status"), payload.get("receiver", ""), payload.get("alerts")
    if not isinstance(status, str) or not isinstance(receiver, str) or not isinstance(alerts, list):
        raise ValueError("not an Alertmanager webhook (status, receiver, alerts)")
    out = []
    for i, alert in enumerate(alerts):
        if not isinstance(alert, Mapping) or not isinstance(alert.get("status"), str):
            raise ValueError(f"alert {i} is not an object with a status")
        out.append(
            DeliveredAlert(alert["status"], _strings(alert.get("labels"), i), _strings(alert.get("annotations"), i))
        )
    return Delivery(at=at, status=status, receiver=receiver, alerts=tuple(out))


def _strings(value: Any, i: int) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError(f"alert {i}: labels and annotations must map strings to strings")
    return dict(value)


class WebhookReceiver:
    def __init__(self, host: str, port: int, clock: Callable[[], float]) -> None:
        self.host, self.port = host, port
        self.clock = clock
        self.deliveries: list[Delivery] = []
        self.refused = 0
        self.first_refusal: str | None = None
        self.dropped = 0
        self._runner: web.AppRunner | None = None
        self.log = structlog.get_logger()

    @property
    def url(self) -> str:
        return receiver_url(self.host, self.port)

    async def start(self) -> None:
        app = web.Application(client_max_size=ALERT_WEBHOOK_BYTES.value)
        app.router.add_post("/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError as e:
            await runner.cleanup()
            raise PreflightError(f"the alert webhook receiver cannot listen on {self.host}:{self.port}: {e}") from e
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        at = self.clock()
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self._refuse(f"a webhook over {ALERT_WEBHOOK_BYTES.value} bytes ({ALERT_WEBHOOK_BYTES.env})")
            raise
        try:
            delivery = parse_webhook(parse_answer(body), at)
        except ValueError as e:
            self._refuse(f"a webhook that is not Alertmanager's: {e}")
            return web.Response(status=400, text=f"not an Alertmanager webhook: {e}\n")
        if len(self.deliveries) < ALERT_DELIVERIES.value:
            self.deliveries.append(delivery)
        else:
            self.dropped += 1
        self.log.info("alert_webhook", status=delivery.status, alerts=len(delivery.alerts), receiver=delivery.receiver)
        return web.Response(text="ok\n")

    def _refuse(self, why: str) -> None:
        self.refused += 1
        self.first_refusal = self.first_refusal or why
        self.log.warning("alert_webhook_refused", reason=why)
