"""Prometheus probe: a PromQL instant query whose every value must satisfy `op threshold`.

A sample passes when the query returns at least one series and every value satisfies the
comparison; an empty result fails unless the spec says `empty: pass` (an empty result usually
means the metric is gone, which is no proof of health). NaN satisfies no comparison.
`judge_instant_query` is the pure half (the API's JSON in, a verdict out), shared with anything
else that judges a query (an abort condition, for one).
"""

from __future__ import annotations

import json
import math
import operator
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from orchestrator.bounded_io import read_answer
from orchestrator.errors import BackendError
from orchestrator.limits import PROMETHEUS_ANSWER_BYTES
from orchestrator.model.spec import PrometheusProbe as PrometheusProbeSpec
from orchestrator.probes.base import Observation

Op = Literal["<", "<=", ">", ">=", "==", "!="]
OPERATORS: Mapping[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True, slots=True)
class QueryVerdict:
    ok: bool
    reason: str | None
    """Why it failed (or None): the Prometheus error, an empty result, or the first value off threshold."""
    values: tuple[float, ...]
    """Every value the query returned, in the API's order."""


def judge_instant_query(
    payload: Any, op: Op, threshold: float, empty: Literal["pass", "fail"] = "fail"
) -> QueryVerdict:
    """Judge the decoded JSON of /api/v1/query: pass when every value satisfies `value op threshold`."""
    if not isinstance(payload, Mapping) or payload.get("status") not in ("success", "error"):
        return QueryVerdict(False, "not a Prometheus API response", ())
    if payload["status"] == "error":
        return QueryVerdict(False, f"Prometheus {payload.get('errorType', 'error')}: {payload.get('error')}", ())
    data: Any = payload.get("data") or {}
    if not isinstance(data, Mapping):
        return QueryVerdict(False, "not a Prometheus API response: its data is not an object", ())
    kind: Any = data.get("resultType")
    result: Any = data.get("result")
    try:
        if kind == "vector":
            series = [(_labels(s.get("metric") or {}), float(s["value"][1])) for s in result]
        elif kind == "scalar":
            series = [("scalar", float(result[1]))]
        else:
            return QueryVerdict(False, f"query returned a {kind}, expected an instant vector or a scalar", ())
    except (TypeError, KeyError, IndexError, ValueError, AttributeError) as e:  # AttributeError: not an object
        return QueryVerdict(False, f"malformed {kind} result: {e!r}", ())
    values = tuple(value for _, value in series)
    if not series:
        return QueryVerdict(empty == "pass", None if empty == "pass" else "query returned no series", values)
    compare = OPERATORS[op]
    for labels, value in series:
        if math.isnan(value) or not compare(value, threshold):
            return QueryVerdict(False, f"{labels} = {value:g}, expected {op} {threshold:g}", values)
    return QueryVerdict(True, None, values)


def parse_answer(body: bytes) -> Any:
    """The decoded JSON of an answer, or None if it is not JSON (nested too deep counts as not JSON)."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _labels(metric: Mapping[str, str]) -> str:
    name = metric.get("__name__", "")
    rest = ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{name}{{{rest}}}"


class PrometheusProbe:
    def __init__(self, spec: PrometheusProbeSpec, max_in_flight: int) -> None:
        self.name = spec.name
        self.timeout = spec.timeout
        self._spec = spec
        self._endpoint = spec.url.rstrip("/") + "/api/v1/query"
        self._max_in_flight = max_in_flight
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_in_flight),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"User-Agent": "drillctl-probe"},
            )
        return self._session

    async def observe(self) -> Observation:
        started = time.monotonic()
        # Prometheus stops evaluating at its own `timeout`, so a heavy query cannot pile up server-side.
        form = {"query": self._spec.query, "timeout": f"{self.timeout:g}s"}
        try:
            async with self._client().post(self._endpoint, data=form) as response:
                body = await read_answer(response, PROMETHEUS_ANSWER_BYTES, self._endpoint)
                latency = time.monotonic() - started
        except TimeoutError:
            return Observation(False, time.monotonic() - started, f"timeout after {self.timeout:g}s")
        except (aiohttp.ClientError, OSError, BackendError) as e:
            return Observation(False, time.monotonic() - started, f"{type(e).__name__}: {e}")
        payload = parse_answer(body)
        if payload is None:
            return Observation(False, latency, f"HTTP {response.status} from {self._endpoint}: not JSON")
        verdict = judge_instant_query(payload, self._spec.op, self._spec.threshold, self._spec.empty)
        return Observation(verdict.ok, latency, verdict.reason)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
