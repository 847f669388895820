"""Hostile Prometheus answers: real instant-query answers mutated in keys, values, types and structure, and
random bytes. The probe's parser and judge (`parse_answer`, `judge_instant_query`) must always give a
verdict (a malformed answer is a failed sample saying why) under a time and memory budget; never raise."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.probes.prometheus import QueryVerdict, judge_instant_query, parse_answer
from tests.budget import run_bounded
from tests.fuzzing import mutations

FUZZ = settings(max_examples=120, deadline=None)
ANSWERS = [
    {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"__name__": "up", "job": "api"}, "value": [1700000000.0, "1"]},
                {"metric": {"job": "db"}, "value": [1700000000.0, "NaN"]},
            ],
        },
    },
    {"status": "success", "data": {"resultType": "scalar", "result": [1700000000.0, "0.5"]}},
    {"status": "error", "errorType": "bad_data", "error": "parse error"},
]


def judged(body: bytes) -> QueryVerdict:
    return judge_instant_query(parse_answer(body), ">=", 1.0)


def check(body: bytes) -> None:
    outcome = run_bounded(judged, body, seconds=5, memory_mib=64)
    assert outcome.error is None, repr(outcome.error)
    verdict = outcome.value
    assert verdict.ok or verdict.reason


@FUZZ
@given(answer=st.sampled_from(ANSWERS), data=st.data())
def test_a_mutated_answer_gets_a_verdict(answer: dict[str, Any], data: st.DataObject) -> None:
    check(json.dumps(mutations(answer, data)).encode())


@FUZZ
@given(body=st.binary(max_size=500))
def test_random_bytes_get_a_verdict(body: bytes) -> None:
    check(body)
