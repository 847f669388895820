"""Network faults through Toxiproxy: toxics on a proxy, or the proxy taken down."""

from __future__ import annotations

from typing import Any

from orchestrator.model.durations import format_duration
from orchestrator.model.spec import (
    BandwidthFault,
    DownFault,
    LatencyFault,
    LimitDataFault,
    NetworkFault,
    ResetPeerFault,
    SlicerFault,
    SlowCloseFault,
    TimeoutFault,
)
from orchestrator.model.undo import Undo
from orchestrator.toxiproxy_client import ToxiproxyClient


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def toxic_of(spec: NetworkFault) -> tuple[str, dict[str, Any]]:
    """The Toxiproxy toxic type and attributes for a fault (Toxiproxy takes ms; slicer delay in us)."""
    if isinstance(spec, LatencyFault):
        return "latency", {"latency": _ms(spec.latency), "jitter": _ms(spec.jitter)}
    if isinstance(spec, BandwidthFault):
        return "bandwidth", {"rate": spec.rate_kbps}
    if isinstance(spec, TimeoutFault):
        return "timeout", {"timeout": _ms(spec.timeout)}
    if isinstance(spec, ResetPeerFault):
        return "reset_peer", {"timeout": _ms(spec.timeout)}
    if isinstance(spec, SlowCloseFault):
        return "slow_close", {"delay": _ms(spec.delay)}
    if isinstance(spec, SlicerFault):
        return "slicer", {
            "average_size": spec.average_size,
            "size_variation": spec.size_variation,
            "delay": round(spec.delay * 1_000_000),
        }
    if isinstance(spec, LimitDataFault):
        return "limit_data", {"bytes": spec.bytes}
    raise TypeError(f"no toxic for {type(spec).__name__}")


class _Clients:
    """Reverts may come from a journal of another run: reach the server its record names."""

    def __init__(self, client: ToxiproxyClient) -> None:
        self._by_url = {client.url: client}
        self._timeout = client.timeout
        self.default = client

    def __call__(self, url: str) -> ToxiproxyClient:
        if url not in self._by_url:
            self._by_url[url] = ToxiproxyClient(url, self._timeout)
        return self._by_url[url]


class ToxicDriver:
    name = "toxiproxy.toxic"

    def __init__(self, client: ToxiproxyClient) -> None:
        self._clients = _Clients(client)

    async def preflight(self, spec: NetworkFault) -> None:
        await self._clients.default.version()

    async def prepare(self, spec: NetworkFault, step_id: str) -> Undo:
        toxic = "drillctl-" + step_id.replace("/", "-")
        return Undo(self.name, step_id, {"url": self._clients.default.url, "proxy": spec.proxy, "toxic": toxic})

    async def inject(self, spec: NetworkFault, undo: Undo) -> None:
        kind, attributes = toxic_of(spec)
        await self._clients(undo.state["url"]).add_toxic(
            spec.proxy, undo.state["toxic"], kind, spec.stream, spec.toxicity, attributes
        )

    async def revert(self, undo: Undo) -> None:
        await self._clients(undo.state["url"]).remove_toxic(undo.state["proxy"], undo.state["toxic"])

    def describe(self, spec: NetworkFault) -> str:
        kind, attributes = toxic_of(spec)
        attrs = ", ".join(f"{k}={v}" for k, v in attributes.items())
        return (
            f"toxic {kind} ({attrs}) on proxy {spec.proxy} {spec.stream}, toxicity {spec.toxicity:g}, "
            f"for {format_duration(spec.duration)}"
        )


class ProxyDownDriver:
    name = "toxiproxy.down"

    def __init__(self, client: ToxiproxyClient) -> None:
        self._clients = _Clients(client)

    async def preflight(self, spec: DownFault) -> None:
        await self._clients.default.version()

    async def prepare(self, spec: DownFault, step_id: str) -> Undo:
        proxy = await self._clients.default.proxy(spec.proxy)
        was_enabled = True if proxy is None else bool(proxy.get("enabled", True))
        return Undo(
            self.name, step_id, {"url": self._clients.default.url, "proxy": spec.proxy, "was_enabled": was_enabled}
        )

    async def inject(self, spec: DownFault, undo: Undo) -> None:
        await self._clients(undo.state["url"]).set_enabled(spec.proxy, False)

    async def revert(self, undo: Undo) -> None:
        client = self._clients(undo.state["url"])
        if await client.proxy(undo.state["proxy"]) is not None:
            await client.set_enabled(undo.state["proxy"], bool(undo.state["was_enabled"]))

    def describe(self, spec: DownFault) -> str:
        return (
            f"proxy {spec.proxy} disabled (listener and open connections closed) for {format_duration(spec.duration)}"
        )
