"""A Pushgateway's answer read within PUSHGATEWAY_ANSWER_BYTES, from a real loopback server standing in for
it (a real Pushgateway answers a push with nothing): just under is a push, just over (or endless) is a push
that failed, logged with the bound and its variable; the run goes on."""

from __future__ import annotations

from typing import Any

import pytest
import structlog

from orchestrator.limits import PUSHGATEWAY_ANSWER_BYTES
from orchestrator.metrics import DrillMetrics, Pusher, PushTarget
from tests.budget import run_bounded
from tests.fixtures.answers import Answer, AnswerServer


def push(url: str) -> list[dict[str, Any]]:
    """One push; what it logged."""
    with structlog.testing.capture_logs() as logs:
        Pusher(DrillMetrics("drill"), PushTarget(url, every=60.0), "run-1").push()
    return logs


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "until-close"])
def test_an_answer_just_under_the_bound_is_a_push_and_just_over_a_failed_one(
    answers: AnswerServer, declared: bool
) -> None:
    size = PUSHGATEWAY_ANSWER_BYTES.default
    answers.answer(Answer(b"o" * size, content_type="text/plain", declared=declared))
    assert run_bounded(push, answers.url, seconds=10).value == []
    assert answers.requests[-1] == ("PUT", "/metrics/job/drillctl/drill/drill/run_id/run-1")
    answers.answer(Answer(b"o" * (size + 1), content_type="text/plain", declared=declared))
    (logged,) = run_bounded(push, answers.url, seconds=10).value
    assert logged["event"] == "pushgateway_push_failed"
    assert logged["error"].startswith(f"{answers.url}/metrics/job/drillctl/drill/drill/run_id/run-1: a Pushgateway")
    assert "over the limit of 65,536 bytes" in logged["error"] and PUSHGATEWAY_ANSWER_BYTES.env in logged["error"]


def test_an_endless_answer_is_a_failed_push_that_costs_the_bound(answers: AnswerServer) -> None:
    answers.answer(Answer(b"", content_type="text/plain", declared=False, endless=True))
    (logged,) = run_bounded(push, answers.url, seconds=10, memory_mib=32).value
    assert "a Pushgateway answer is over the limit" in logged["error"]
