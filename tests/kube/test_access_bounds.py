"""Kubernetes answers read within their bounds: one answer (KUBE_ANSWER_BYTES) through the generated
client's own decoding and through `call_json`, a list through the watch cache a page at a time
(KUBE_LIST_PAGE, `continue`) within KUBE_LIST_ITEMS, and each watch event within KUBE_WATCH_EVENT_BYTES.

A real API server cannot be made to send an oversized or endless answer, so a loopback HTTP server
(tests/fixtures/answers.py) poses as one, answering the paths the official client asks for.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from kubernetes import client
from kubernetes.client import CoreV1Api, V1Pod  # here, once: in every forked child they would take seconds

from orchestrator.kube.access import KubeConnection, bounded
from orchestrator.kube.watch_cache import WatchCache, event_lines
from orchestrator.limits import KUBE_ANSWER_BYTES, KUBE_LIST_ITEMS, KUBE_LIST_PAGE, KUBE_WATCH_EVENT_BYTES
from tests.bounds import bounded_said
from tests.fixtures.answers import Answer, AnswerServer


def connection(url: str) -> KubeConnection:
    configuration = client.Configuration()
    configuration.host = url
    return KubeConnection(bounded(client.ApiClient(configuration)), None, "loopback", "default", url, 5.0)


def pod(name: str, size: int | None = None) -> dict[str, Any]:
    """A Pod; with `size`, padded so that its JSON is exactly that many bytes."""
    document: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "annotations": {}}}
    if size is not None:
        document["metadata"]["annotations"]["pad"] = ""
        document["metadata"]["annotations"]["pad"] = "p" * (size - len(json.dumps(document)))
    return document


def read_pod(url: str) -> str:
    """Through the generated client's own decoding (`_preload_content`, the default)."""
    conn = connection(url)
    found = asyncio.run(conn.call(CoreV1Api(conn.api).read_namespaced_pod, "p", "default"))
    assert isinstance(found, V1Pod)
    return str(found.metadata.name)


def read_pod_json(url: str) -> str:
    conn = connection(url)
    return str(asyncio.run(conn.call_json(CoreV1Api(conn.api).read_namespaced_pod, "p", "default"))["kind"])


@pytest.mark.parametrize("read", [read_pod, read_pod_json], ids=["call", "call_json"])
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "until-close"])
def test_an_answer_just_under_the_bound_is_read_and_just_over_refused(
    answers: AnswerServer, monkeypatch: pytest.MonkeyPatch, read: Any, declared: bool
) -> None:
    monkeypatch.setenv(KUBE_ANSWER_BYTES.env, str(2**18))
    answers.answer(Answer(json.dumps(pod("p", 2**18)).encode(), declared=declared))
    assert bounded_said(read, answers.url, seconds=10, memory_mib=128) in ("p", "Pod")
    answers.answer(Answer(json.dumps(pod("p", 2**18 + 1)).encode(), declared=declared))
    said = bounded_said(read, answers.url, seconds=10, memory_mib=128)
    where = f"{answers.url}/api/v1/namespaces/default/pods/p"
    assert said.startswith(f"refused: AnswerTooLarge: {where}: a Kubernetes API answer is over the limit of 262,144")
    assert f"{KUBE_ANSWER_BYTES.env}=N" in said


def test_an_endless_answer_is_refused_at_the_bound(answers: AnswerServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KUBE_ANSWER_BYTES.env, str(4 * 2**20))
    answers.answer(Answer(b'{"kind": "Pod", "x": "', declared=False, endless=True))
    for read in (read_pod, read_pod_json):
        said = bounded_said(read, answers.url, seconds=10, memory_mib=128)
        assert "a Kubernetes API answer is over the limit of 4,194,304 bytes" in said


def listing(pages: list[list[dict[str, Any]]]) -> Any:
    """An API server's answers to a paginated list of Pods (page k+1 asked for with continue=k+1), and to watches."""

    def respond(method: str, path: str) -> Answer:
        query = parse_qs(urlsplit(path).query)
        if query.get("watch") == ["true"]:
            return Answer(b"", declared=False)  # a watch that ends at once, with no event
        page = int(query.get("continue", ["0"])[0])
        more = {"continue": str(page + 1)} if page + 1 < len(pages) else {}
        body = {"kind": "PodList", "metadata": {"resourceVersion": "7", **more}, "items": pages[page]}
        return Answer(json.dumps(body).encode())

    return respond


def synced(url: str) -> tuple[list[str], str | None]:
    """The cache's first list: the names it holds, or why it failed."""

    async def first() -> tuple[list[str], str | None]:
        cache = WatchCache(connection(url), "Pod", "default")
        cache.start()
        try:
            await asyncio.wait_for(cache.wait_settled(), 10)
            snap = cache.snapshot()
            return sorted(snap.objects), snap.error
        finally:
            cache.stop()
            await asyncio.to_thread(cache.join, 5)

    return asyncio.run(first())


def test_the_watch_cache_lists_a_page_at_a_time(answers: AnswerServer) -> None:
    answers.respond = listing([[pod("a"), pod("b")], [pod("c")]])
    assert bounded_said(synced, answers.url, seconds=10, memory_mib=128) == (["a", "b", "c"], None)
    lists = [parse_qs(urlsplit(path).query) for _, path in answers.requests if "watch=true" not in path]
    assert [q["limit"] for q in lists[:2]] == [[str(KUBE_LIST_PAGE)]] * 2
    assert [q.get("continue") for q in lists[:2]] == [None, ["1"]]


def test_a_list_just_under_its_bound_is_held_and_just_over_refused(
    answers: AnswerServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers.respond = listing([[pod("a"), pod("b")], [pod("c")]])
    monkeypatch.setenv(KUBE_LIST_ITEMS.env, "3")
    assert bounded_said(synced, answers.url, seconds=10, memory_mib=128) == (["a", "b", "c"], None)
    monkeypatch.setenv(KUBE_LIST_ITEMS.env, "2")
    names, error = bounded_said(synced, answers.url, seconds=10, memory_mib=128)
    assert names == [] and error is not None
    assert error.startswith(f"AnswerTooLarge: {answers.url} (Pods in default): a Kubernetes list is over the limit")
    assert f"limit of 2 objects (3 objects); if this is a real need, raise it with {KUBE_LIST_ITEMS.env}=N" in error


def test_a_list_answer_over_its_bytes_fails_the_cache_and_says_why(
    answers: AnswerServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KUBE_ANSWER_BYTES.env, str(2**16))
    answers.respond = listing([[pod("a", 2**16)]])
    names, error = bounded_said(synced, answers.url, seconds=10, memory_mib=128)
    assert names == [] and error is not None and "a Kubernetes API answer is over the limit of 65,536" in error


def events(url: str) -> list[str]:
    """The events of one watch answer, read by the cache's line reader from a real HTTP stream."""
    conn = connection(url)
    response = conn.api.rest_client.pool_manager.request("GET", f"{url}/api/v1/pods?watch=true", preload_content=False)
    try:
        return [json.loads(line)["object"]["metadata"]["name"] for line in event_lines(response, url)]
    finally:
        response.release_conn()


def event(size: int) -> bytes:
    """One ADDED event line of exactly `size` bytes (newline not counted)."""
    document = {"type": "ADDED", "object": pod("e")}
    padding = size - len(json.dumps(document))
    document["object"]["metadata"]["annotations"]["pad"] = "p" * (padding - len(', "pad": ""') + 2)
    line = json.dumps(document).encode()
    assert len(line) == size, (len(line), size)
    return line + b"\n"


def test_a_watch_event_just_under_its_bound_is_read_and_just_over_refused(
    answers: AnswerServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KUBE_WATCH_EVENT_BYTES.env, str(2**16))
    answers.answer(Answer(event(2**16) * 3, declared=False))
    assert bounded_said(events, answers.url, seconds=10, memory_mib=128) == ["e", "e", "e"]
    answers.answer(Answer(event(2**16) + event(2**16 + 1), declared=False))
    said = bounded_said(events, answers.url, seconds=10, memory_mib=128)
    assert said.startswith(f"refused: AnswerTooLarge: {answers.url}: a Kubernetes watch event is over the limit")


def test_an_endless_watch_event_costs_its_bound(answers: AnswerServer) -> None:
    answers.answer(Answer(b'{"type": "ADDED", "object": "', declared=False, endless=True))
    said = bounded_said(events, answers.url, seconds=10, memory_mib=96)
    assert "a Kubernetes watch event is over the limit of 16,777,216 bytes" in said
