"""The webhook's answer read within WEBHOOK_ANSWER_BYTES, from a real loopback server standing in for the
chat or incident tool: just under is delivered, just over (or endless) is not, with an error naming the bound
and its variable; never a crash, never more than the bound in memory."""

from __future__ import annotations

import pytest

from orchestrator.gameday.webhook import WebhookOutcome, deliver
from orchestrator.limits import WEBHOOK_ANSWER_BYTES
from tests.budget import run_bounded
from tests.fixtures.answers import Answer, AnswerServer


def post(url: str) -> WebhookOutcome:
    return deliver(url, {"gameday": "x"}, 10.0)


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "until-close"])
def test_an_answer_just_under_the_bound_is_delivered_and_just_over_is_not(
    answers: AnswerServer, declared: bool
) -> None:
    size = WEBHOOK_ANSWER_BYTES.default
    answers.answer(Answer(b"o" * size, declared=declared))
    assert run_bounded(post, f"{answers.url}/hook", seconds=10, memory_mib=48).value.delivered
    answers.answer(Answer(b"o" * (size + 1), declared=declared))
    outcome = run_bounded(post, f"{answers.url}/hook", seconds=10, memory_mib=48).value
    assert not outcome.delivered and outcome.error is not None
    assert outcome.error.startswith(f"AnswerTooLarge: {answers.url}/hook: a webhook's answer is over the limit of")
    assert f"{WEBHOOK_ANSWER_BYTES.env}=N" in outcome.error


def test_an_endless_answer_is_not_delivered_and_costs_the_bound(answers: AnswerServer) -> None:
    answers.answer(Answer(b"", declared=False, endless=True))
    outcome = run_bounded(post, f"{answers.url}/hook", seconds=10, memory_mib=48).value
    assert not outcome.delivered and "a webhook's answer is over the limit" in (outcome.error or "")
