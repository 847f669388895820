"""The http probe's body and the Prometheus probe's answer read within their bounds, from a real loopback
server (tests/fixtures/answers.py) standing in for the service and for Prometheus: an answer just under the
bound is judged, one just over (declared, or not declared, or endless) is a failed sample whose error names
the bound, the URL and the variable that raises it; never a crash, never more than the bound in memory."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from orchestrator.limits import HTTP_PROBE_BODY_BYTES, PROMETHEUS_ANSWER_BYTES, Limit
from orchestrator.model.spec import ProbeSpec
from orchestrator.probes.base import Observation
from orchestrator.probes.registry import build_probe
from tests.budget import run_bounded
from tests.fixtures.answers import Answer, AnswerServer

PROBES = TypeAdapter(ProbeSpec)


def observe(fields: dict[str, Any]) -> tuple[bool, str | None]:
    async def once() -> Observation:
        probe = build_probe(PROBES.validate_python(fields), 4, Path())
        try:
            return await probe.observe()
        finally:
            await probe.close()

    seen = asyncio.run(once())
    return seen.ok, seen.error


def http_probe(url: str) -> dict[str, Any]:
    return {"type": "http", "name": "web", "url": f"{url}/health", "body_match": "ok", "timeout": "5s"}


def prometheus_probe(url: str) -> dict[str, Any]:
    return {
        "type": "prometheus",
        "name": "prom",
        "url": url,
        "query": "up",
        "op": "==",
        "threshold": 1,
        "timeout": "5s",
    }


def vector_of(size: int) -> bytes:
    """A Prometheus answer of exactly `size` bytes whose one series passes `== 1`."""
    head = b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{"pad":"'
    tail = b'"},"value":[1,"1"]}]}}'
    return head + b"p" * (size - len(head) - len(tail)) + tail


CASES = [
    (HTTP_PROBE_BODY_BYTES, http_probe, lambda size: b"ok" + b" " * (size - 2), "/health"),
    (PROMETHEUS_ANSWER_BYTES, prometheus_probe, vector_of, "/api/v1/query"),
]


@pytest.mark.parametrize(("limit", "probe", "body", "path"), CASES, ids=["http", "prometheus"])
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "until-close"])
def test_an_answer_just_under_the_bound_is_judged_and_just_over_fails_the_sample(
    answers: AnswerServer,
    monkeypatch: pytest.MonkeyPatch,
    limit: Limit,
    probe: Any,
    body: Any,
    path: str,
    declared: bool,
) -> None:
    monkeypatch.setenv(limit.env, str(2**20))
    answers.answer(Answer(body(2**20), declared=declared))
    assert run_bounded(observe, probe(answers.url), seconds=10, memory_mib=96).value == (True, None)
    answers.answer(Answer(body(2**20 + 1), declared=declared))
    ok, error = run_bounded(observe, probe(answers.url), seconds=10, memory_mib=96).value
    assert not ok and error is not None
    assert error.startswith(f"AnswerTooLarge: {answers.url}{path}: {limit.what} is over the limit of 1,048,576")
    assert f"{limit.env}=N" in error


@pytest.mark.parametrize(("limit", "probe", "body", "path"), CASES, ids=["http", "prometheus"])
def test_an_endless_answer_fails_the_sample_at_the_default_bound(
    answers: AnswerServer, limit: Limit, probe: Any, body: Any, path: str
) -> None:
    answers.answer(Answer(b"", declared=False, endless=True))
    ok, error = run_bounded(observe, probe(answers.url), seconds=10, memory_mib=limit.default // 2**20 * 3 + 64).value
    assert not ok and error is not None and error.startswith(f"AnswerTooLarge: {answers.url}{path}:")


def test_a_prometheus_answer_nested_too_deep_is_not_json(answers: AnswerServer) -> None:
    answers.answer(Answer(b"[" * 100_000))
    ok, error = run_bounded(observe, prometheus_probe(answers.url), seconds=10).value
    assert not ok and error == f"HTTP 200 from {answers.url}/api/v1/query: not JSON"


def test_the_http_probe_reads_no_body_without_body_match(answers: AnswerServer) -> None:
    """No `body_match`: the body is not needed and not read, so even an endless one passes on its status."""
    answers.answer(Answer(b"", declared=False, endless=True))
    fields = {k: v for k, v in http_probe(answers.url).items() if k != "body_match"}
    assert run_bounded(observe, fields, seconds=10, memory_mib=64).value == (True, None)
