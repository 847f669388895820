"""Network fault drivers against a real toxiproxy-server: what lands on the server, and that revert removes it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import requests
from pydantic import TypeAdapter

from orchestrator.faults.registry import build_registry
from orchestrator.model.spec import FaultSpec, LocalTargets
from orchestrator.targets.local import LocalFleet
from orchestrator.toxiproxy_client import ToxiproxyClient
from tests.fixtures.toxiproxy import ToxiproxyServer
from tests.support import prepared_and_injected

FAULT = TypeAdapter(FaultSpec)
NO_LOCAL_TARGETS = LocalFleet(LocalTargets(), Path("."), Path("."))

CASES: list[tuple[dict[str, Any], str, dict[str, int]]] = [
    ({"type": "network.latency", "latency": "250ms", "jitter": "10ms"}, "latency", {"latency": 250, "jitter": 10}),
    ({"type": "network.bandwidth", "rate_kbps": 64}, "bandwidth", {"rate": 64}),
    ({"type": "network.timeout", "timeout": "1500ms"}, "timeout", {"timeout": 1500}),
    ({"type": "network.reset_peer", "timeout": "20ms"}, "reset_peer", {"timeout": 20}),
    ({"type": "network.slow_close", "delay": "2s"}, "slow_close", {"delay": 2000}),
    (
        {"type": "network.slicer", "average_size": 64, "size_variation": 8, "delay": "3ms"},
        "slicer",
        {"average_size": 64, "size_variation": 8, "delay": 3000},
    ),
    ({"type": "network.limit_data", "bytes": 1024}, "limit_data", {"bytes": 1024}),
]


@pytest.fixture
def proxy(toxiproxy: ToxiproxyServer) -> str:
    body = {"name": "db", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}
    requests.post(toxiproxy.url + "/proxies", json=body, timeout=5).raise_for_status()
    return "db"


@pytest.mark.parametrize(("fields", "toxic_type", "attributes"), CASES, ids=[c[1] for c in CASES])
def test_toxic_lands_with_our_attributes_and_revert_is_idempotent(
    toxiproxy: ToxiproxyServer, proxy: str, fields: dict[str, Any], toxic_type: str, attributes: dict[str, int]
) -> None:
    spec = FAULT.validate_python(
        {"name": "f", "proxy": proxy, "duration": "1s", "stream": "upstream", "toxicity": 0.5, **fields}
    )
    driver = build_registry(ToxiproxyClient(toxiproxy.url), NO_LOCAL_TARGETS).for_fault(spec)

    undo = asyncio.run(prepared_and_injected(driver, spec, "run-1/f"))
    (toxic,) = toxiproxy.get(f"/proxies/{proxy}/toxics").json()
    assert toxic["type"] == toxic_type
    assert toxic["stream"] == "upstream" and toxic["toxicity"] == 0.5
    assert toxic["name"] == undo.state["toxic"] == "drillctl-run-1-f"
    for key, value in attributes.items():
        assert toxic["attributes"][key] == value
    asyncio.run(driver.revert(undo))
    assert toxiproxy.get(f"/proxies/{proxy}/toxics").json() == []
    asyncio.run(driver.revert(undo))  # a second revert finds nothing to do and succeeds


def test_down_restores_what_was_there_before(toxiproxy: ToxiproxyServer, proxy: str) -> None:
    spec = FAULT.validate_python({"name": "cut", "type": "network.down", "proxy": proxy, "duration": "1s"})
    driver = build_registry(ToxiproxyClient(toxiproxy.url), NO_LOCAL_TARGETS).for_fault(spec)

    undo = asyncio.run(prepared_and_injected(driver, spec, "run-1/cut"))
    assert undo.state["was_enabled"] is True
    assert toxiproxy.get(f"/proxies/{proxy}").json()["enabled"] is False
    asyncio.run(driver.revert(undo))
    asyncio.run(driver.revert(undo))
    assert toxiproxy.get(f"/proxies/{proxy}").json()["enabled"] is True


def test_revert_works_from_the_record_alone(toxiproxy: ToxiproxyServer, proxy: str) -> None:
    """A driver built for another server still reverts a record that names this one (crash recovery)."""
    spec = FAULT.validate_python(
        {"name": "f", "type": "network.latency", "proxy": proxy, "latency": "1s", "duration": "1s"}
    )
    driver = build_registry(ToxiproxyClient(toxiproxy.url), NO_LOCAL_TARGETS).for_fault(spec)

    undo = asyncio.run(prepared_and_injected(driver, spec, "run-2/f"))
    other = build_registry(ToxiproxyClient("http://127.0.0.1:9"), NO_LOCAL_TARGETS).for_undo(undo)
    asyncio.run(other.revert(undo))
    assert toxiproxy.get(f"/proxies/{proxy}/toxics").json() == []
