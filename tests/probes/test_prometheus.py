"""The prometheus probe against a real Prometheus server (tests/fixtures/prometheus.py) scraping a real
exporter whose gauges the tests set, plus the pure verdict on hand-written API answers."""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from orchestrator.errors import SpecError
from orchestrator.loading import validate_model
from orchestrator.model.spec import ProbeSpec, SteadyState
from orchestrator.probes.base import Observation
from orchestrator.probes.prometheus import QueryVerdict, judge_instant_query
from orchestrator.probes.registry import build_probe
from tests.fixtures.prometheus import PrometheusServer
from tests.fixtures.toxiproxy import free_port

PROBES = TypeAdapter(ProbeSpec)


def spec(url: str, query: str, op: str, threshold: float, **more: Any) -> Any:
    fields = {"type": "prometheus", "name": "prom", "url": url, "query": query, "op": op, "threshold": threshold}
    return PROBES.validate_python(fields | more)


def observe(probe_spec: Any) -> Observation:
    async def once() -> Observation:
        probe = build_probe(probe_spec, 4, Path())
        try:
            return await probe.observe()
        finally:
            await probe.close()

    return asyncio.run(once())


# ---- the pure verdict ----------------------------------------------------------------------------


def vector(*values: str) -> dict[str, Any]:
    series = [{"metric": {"__name__": "m", "job": f"j{i}"}, "value": [1.0, v]} for i, v in enumerate(values)]
    return {"status": "success", "data": {"resultType": "vector", "result": series}}


def test_every_value_must_satisfy_the_comparison() -> None:
    assert judge_instant_query(vector("1", "2"), "<", 3) == QueryVerdict(True, None, (1.0, 2.0))
    failed = judge_instant_query(vector("1", "5"), "<", 3)
    assert (failed.ok, failed.reason) == (False, 'm{job="j1"} = 5, expected < 3')
    cases = [("<=", 2, True), (">", 2, False), (">=", 2, True), ("==", 2, True), ("!=", 2, False), ("!=", 1, True)]
    for op, threshold, ok in cases:
        assert judge_instant_query(vector("2"), op, threshold).ok is ok, (op, threshold)  # type: ignore[arg-type]


def test_empty_nan_scalar_and_odd_answers() -> None:
    assert judge_instant_query(vector(), ">", 0) == QueryVerdict(False, "query returned no series", ())
    assert judge_instant_query(vector(), ">", 0, empty="pass").ok
    nan = judge_instant_query(vector("NaN"), "!=", 1)
    assert not nan.ok and math.isnan(nan.values[0]), "NaN satisfies no comparison"
    assert judge_instant_query(vector("+Inf"), ">", 1e300).ok
    scalar = {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "0.5"]}}
    assert judge_instant_query(scalar, "<", 1) == QueryVerdict(True, None, (0.5,))
    matrix = {"status": "success", "data": {"resultType": "matrix", "result": []}}
    assert (
        judge_instant_query(matrix, "<", 1).reason == "query returned a matrix, expected an instant vector or a scalar"
    )
    error = {"status": "error", "errorType": "bad_data", "error": "parse error"}
    assert judge_instant_query(error, "<", 1).reason == "Prometheus bad_data: parse error"
    assert judge_instant_query({"data": 1}, "<", 1).reason == "not a Prometheus API response"
    broken = {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}}
    assert (judge_instant_query(broken, "<", 1).reason or "").startswith("malformed vector result")


def test_spec_errors_name_the_field() -> None:
    base = {"type": "prometheus", "name": "p", "url": "http://127.0.0.1:9090", "query": "up", "threshold": 1}
    cases = {
        "op": ({**base, "op": "=~"}, "Input should be '<', '<=', '>', '>=', '==' or '!='"),
        "url": ({**base, "op": "<", "url": "localhost:9090"}, "should match pattern"),
        "query": ({**base, "op": "<", "query": ""}, "at least 1 character"),
        "empty": ({**base, "op": "<", "empty": "maybe"}, "'pass' or 'fail'"),
        "threshold": ({k: v for k, v in base.items() if k != "threshold"} | {"op": "<"}, "required field is missing"),
    }
    for field, (probe, message) in cases.items():
        with pytest.raises(SpecError) as bad:
            validate_model(SteadyState, {"probes": [probe]}, {}, "drill.yaml")
        [issue] = bad.value.issues
        assert issue.field == f"probes[0].{field}", issue
        assert message in issue.message, issue
    assert spec("http://h:1", "up", "<", 1).empty == "fail"


# ---- against a real Prometheus -------------------------------------------------------------------


def test_threshold_pass_then_fail_as_the_scraped_value_changes(prometheus: PrometheusServer) -> None:
    prometheus.set_and_wait("kb_queue_depth", 3)
    below = spec(prometheus.url, "kb_queue_depth", "<", 10)
    seen = observe(below)
    assert seen == Observation(True, seen.latency, None)
    assert 0 < seen.latency < 2

    prometheus.set_and_wait("kb_queue_depth", 25)
    seen = observe(below)
    assert not seen.ok
    assert seen.error is not None
    assert seen.error.startswith('kb_queue_depth{instance="') and seen.error.endswith(
        'job="exporter"} = 25, expected < 10'
    )

    prometheus.set_and_wait("kb_queue_depth", 3)
    assert observe(below).ok


def test_prometheus_scraping_itself_is_up(prometheus: PrometheusServer) -> None:
    prometheus.wait_until('up{job="prometheus"}', lambda result: len(result) == 1)
    assert observe(spec(prometheus.url, 'up{job="prometheus"}', "==", 1)).ok
    assert observe(spec(prometheus.url + "/", "sum(up)", ">=", 2)).ok, "exporter and Prometheus itself"


def test_empty_result_fails_unless_the_spec_says_pass(prometheus: PrometheusServer) -> None:
    query = 'kb_never_exported{job="exporter"}'
    seen = observe(spec(prometheus.url, query, "<", 1))
    assert (seen.ok, seen.error) == (False, "query returned no series")
    assert observe(spec(prometheus.url, query, "<", 1, empty="pass")).ok


def test_bad_query_surfaces_the_prometheus_error(prometheus: PrometheusServer) -> None:
    seen = observe(spec(prometheus.url, "rate(kb_queue_depth[", "<", 1))
    assert not seen.ok
    assert seen.error is not None and seen.error.startswith("Prometheus bad_data: "), seen.error
    assert "parse error" in seen.error


def test_unreachable_server_fails_with_the_connection_error() -> None:
    seen = observe(spec(f"http://127.0.0.1:{free_port()}", "up", "==", 1))
    assert not seen.ok
    assert seen.error is not None and "ClientConnectorError" in seen.error and "Connect call failed" in seen.error


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A hung server: the kernel accepts connections into the backlog, nobody ever answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield int(sock.getsockname()[1])
    sock.close()


def test_hung_server_fails_at_the_timeout(silent_listener: int) -> None:
    seen = observe(spec(f"http://127.0.0.1:{silent_listener}", "up", "==", 1, timeout="300ms"))
    assert (seen.ok, seen.error) == (False, "timeout after 0.3s")
    assert 0.3 <= seen.latency < 5


def test_wrong_url_is_not_mistaken_for_a_result(prometheus: PrometheusServer) -> None:
    seen = observe(spec(prometheus.url + "/nothing-here", "up", "==", 1))
    assert not seen.ok
    assert seen.error is not None and seen.error.startswith("HTTP 404 from "), seen.error
