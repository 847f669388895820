"""Prometheus's and Alertmanager's HTTP APIs as the drill reads them: alerts, alerting rules, status.

Every call has the drill's timeout and every answer is bounded; the answers are checked for the
shape each call expects by pure functions (`parse_*`), so a wrong or hostile server on that port
is a `BackendError` that says what was wrong, never a KeyError or a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

import aiohttp

from orchestrator.bounded_io import read_answer
from orchestrator.errors import BackendError
from orchestrator.limits import ALERTMANAGER_ANSWER_BYTES, PROMETHEUS_ANSWER_BYTES, Limit
from orchestrator.model.alerts import AlertRule, AlertState
from orchestrator.probes.prometheus import parse_answer


@dataclass(frozen=True)
class ActiveAlert:
    """One alert Prometheus reports as pending or firing."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    state: AlertState


class Malformed(BackendError):
    """An answer that is not what the API documents."""


def _strings(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError(f"{what} is not a mapping of strings")
    return dict(value)


def _data(payload: Any, where: str) -> Mapping[str, Any]:
    """The `data` of a Prometheus API answer; an API error says its type and message."""
    if not isinstance(payload, Mapping) or payload.get("status") not in ("success", "error"):
        raise Malformed(f"malformed answer from {where}: not a Prometheus API response")
    if payload["status"] == "error":
        raise BackendError(f"{where}: Prometheus {payload.get('errorType', 'error')}: {payload.get('error')}")
    data = payload.get("data")
    if not isinstance(data, Mapping):
        raise Malformed(f"malformed answer from {where}: its data is not an object")
    return data


def parse_alerts(payload: Any, where: str) -> list[ActiveAlert]:
    """The alerts of /api/v1/alerts."""
    alerts = _data(payload, where).get("alerts")
    if not isinstance(alerts, list):
        raise Malformed(f"malformed answer from {where}: data.alerts is not a list")
    out = []
    for i, alert in enumerate(alerts):
        try:
            if not isinstance(alert, Mapping):
                raise ValueError("not an object")
            state = alert.get("state")
            if state not in ("pending", "firing"):
                raise ValueError(f"state {state!r} is neither pending nor firing")
            labels = _strings(alert.get("labels"), "labels")
            annotations = _strings(alert.get("annotations"), "annotations")
        except ValueError as e:
            raise Malformed(f"malformed answer from {where}: alert {i}: {e}") from e
        out.append(ActiveAlert(labels, annotations, "pending" if state == "pending" else "firing"))
    return out


def parse_rules(payload: Any, where: str) -> list[AlertRule]:
    """The alerting rules of /api/v1/rules, with their `for:` and their group's evaluation interval."""
    groups = _data(payload, where).get("groups")
    if not isinstance(groups, list):
        raise Malformed(f"malformed answer from {where}: data.groups is not a list")
    out = []
    for g, group in enumerate(groups):
        try:
            if not isinstance(group, Mapping) or not isinstance(group.get("rules"), list):
                raise ValueError("not an object with a list of rules")
            name, interval = group.get("name"), group.get("interval")
            if not isinstance(name, str) or not _number(interval):
                raise ValueError("no name or no evaluation interval")
            for r, rule in enumerate(group["rules"]):
                if not isinstance(rule, Mapping):
                    raise ValueError(f"rule {r} is not an object")
                if rule.get("type") != "alerting":
                    continue
                alert, hold = rule.get("name"), rule.get("duration", 0)
                if not isinstance(alert, str) or not _number(hold):
                    raise ValueError(f"rule {r} has no name or no duration")
                annotations = _strings(rule.get("annotations"), f"rule {r}'s annotations")
                out.append(AlertRule(alert, name, float(hold), float(interval), annotations))
        except ValueError as e:
            raise Malformed(f"malformed answer from {where}: group {g}: {e}") from e
    return out


def _number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def parse_status(payload: Any, where: str) -> str:
    """Alertmanager's configuration as it was loaded, from /api/v2/status."""
    config = payload.get("config") if isinstance(payload, Mapping) else None
    original = config.get("original") if isinstance(config, Mapping) else None
    if not isinstance(original, str):
        raise Malformed(f"malformed answer from {where}: not an Alertmanager status (no config.original)")
    return original


class JsonApi:
    """GETs against one server, each within `timeout`, each answer bounded by `limit` and decoded."""

    def __init__(self, base: str, timeout: float, limit: Limit) -> None:
        self.base = base.rstrip("/")
        self._timeout = timeout
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    async def get(self, path: str) -> tuple[Any, str]:
        """The decoded answer and the URL it came from."""
        url = self.base + path
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout), headers={"User-Agent": "drillctl-alerts"}
            )
        try:
            async with self._session.get(url) as response:
                body = await read_answer(response, self._limit, url)
                status = response.status
        except TimeoutError as e:
            raise BackendError(f"{url}: no answer within {self._timeout:g}s") from e
        except (aiohttp.ClientError, OSError) as e:
            raise BackendError(f"{url}: {type(e).__name__}: {e}") from e
        payload = parse_answer(body)
        if payload is None:
            raise Malformed(f"malformed answer from {url}: HTTP {status}, not JSON")
        if status >= 400 and not (isinstance(payload, Mapping) and payload.get("status") == "error"):
            raise BackendError(f"{url}: HTTP {status}")
        return payload, url

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class Prometheus(JsonApi):
    def __init__(self, base: str, timeout: float) -> None:
        super().__init__(base, timeout, PROMETHEUS_ANSWER_BYTES)

    async def alerts(self) -> list[ActiveAlert]:
        return parse_alerts(*await self.get("/api/v1/alerts"))

    async def rules(self) -> list[AlertRule]:
        return parse_rules(*await self.get("/api/v1/rules?type=alert"))


class Alertmanager(JsonApi):
    def __init__(self, base: str, timeout: float) -> None:
        super().__init__(base, timeout, ALERTMANAGER_ANSWER_BYTES)

    async def config(self) -> str:
        return parse_status(*await self.get("/api/v2/status"))
