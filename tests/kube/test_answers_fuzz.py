"""Hostile Kubernetes answers, as the watch cache parses them: list pages and watch events, real ones mutated
in keys, values, types and structure, and random JSON. Each must be taken, or refused with an error the
cache's worker thread turns into a cache error (a failed sample saying why), under a time and memory budget;
never another exception, which would end the thread and leave every probe of that cache on stale data."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes import client

from orchestrator.kube.access import KubeConnection
from orchestrator.kube.watch_cache import WatchCache, _Expired, list_page
from tests.budget import run_bounded
from tests.fuzzing import mutations, values

FUZZ = settings(max_examples=120, deadline=None)
TAKEN_OR_REFUSED = (_Expired, ValueError, KeyError, TypeError)
"""What `WatchCache._run` catches of a malformed answer (beside transport errors and DrillError)."""

POD = {"metadata": {"name": "a", "resourceVersion": "5", "labels": {"app": "x"}}, "status": {"phase": "Running"}}
PAGE = {"kind": "PodList", "metadata": {"resourceVersion": "7", "continue": "c"}, "items": [POD, POD]}
EVENTS = [
    {"type": "ADDED", "object": POD},
    {"type": "DELETED", "object": POD},
    {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}},
    {"type": "ERROR", "object": {"code": 410, "message": "too old"}},
]


def page(body: Any) -> str:
    try:
        items, _, version = list_page(body)
    except TAKEN_OR_REFUSED as e:
        return f"refused: {type(e).__name__}"
    assert isinstance(version, str) and all(isinstance(i["metadata"]["name"], str) for i in items)
    return "taken"


def applied(events: list[Any]) -> list[str]:
    """What a cache (its thread never started) makes of these events in turn."""
    conn = KubeConnection(client.ApiClient(client.Configuration()), None, "fuzz", "default", "http://0", 1.0)
    cache = WatchCache(conn, "Pod", "default")
    seen = []
    for event in events:
        try:
            seen.append(cache._apply(event, "1"))
        except TAKEN_OR_REFUSED as e:
            seen.append(f"refused: {type(e).__name__}")
    return seen


@FUZZ
@given(data=st.data())
def test_a_mutated_list_page_is_taken_or_refused(data: st.DataObject) -> None:
    body = json.loads(json.dumps(mutations(PAGE, data)))
    outcome = run_bounded(page, body, seconds=5)
    assert outcome.error is None, repr(outcome.error)


@FUZZ
@given(events=st.lists(st.sampled_from(EVENTS), min_size=1, max_size=4), data=st.data())
def test_mutated_watch_events_are_taken_or_refused(events: list[dict[str, Any]], data: st.DataObject) -> None:
    hostile = [json.loads(json.dumps(mutations(e, data))) for e in events] + [data.draw(values)]
    outcome = run_bounded(applied, hostile, seconds=5)
    assert outcome.error is None, repr(outcome.error)
    assert all(isinstance(s, str) for s in outcome.value)
