"""A Toxiproxy API client with a deadline on every call, safe with several servers per process.

Why not toxiproxy-python's `Toxiproxy`/`Proxy` objects: they read the server address from
class attributes of `APIConsumer` (one server per process) and send requests without a
timeout. Its `APIConsumer` classmethods, though, read `cls.host`/`cls.port` and pass extra
keyword arguments on to `requests`; so each client uses a subclass of its own (its own
address) and passes a timeout on every call, and the library still maps 400/404/409 to its
exceptions. The blocking call runs in a worker thread under an asyncio deadline.

The threads are a pool of Toxiproxy's own, wide enough for a rollback of a hundred toxics at
once: in the default executor (a handful of threads on 2 cores) concurrent reverts queued
behind each other (bench/fault_latency.py).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import requests
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from orchestrator.errors import BackendError

CALLS_AT_ONCE = 64
_pool = ThreadPoolExecutor(max_workers=CALLS_AT_ONCE, thread_name_prefix="toxiproxy")


class ToxiproxyNotFound(BackendError):
    """The proxy or toxic does not exist (HTTP 404)."""


class ToxiproxyClient:
    def __init__(self, url: str, timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        if not parts.hostname or not parts.port:
            raise ValueError(f"Toxiproxy URL needs a host and a port: {url!r}")
        self.url = f"http://{parts.hostname}:{parts.port}"
        self.timeout = timeout
        self._api: type[APIConsumer] = type("APIConsumer", (APIConsumer,), {"host": parts.hostname, "port": parts.port})

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        def blocking() -> Any:
            kwargs: dict[str, Any] = {"timeout": (self.timeout, self.timeout)}
            if body is not None:
                kwargs["json"] = body
            response = getattr(self._api, method)(path, **kwargs)
            if response.status_code >= 400:
                raise BackendError(
                    f"Toxiproxy at {self.url}: {method.upper()} {path} -> "
                    f"{response.status_code} {response.text.strip()}"
                )
            return response.json() if response.content else None

        try:
            call = asyncio.get_running_loop().run_in_executor(_pool, blocking)
            return await asyncio.wait_for(call, self.timeout * 2 + 1)
        except NotFound as e:
            raise ToxiproxyNotFound(f"Toxiproxy at {self.url}: {path} not found") from e
        except (ProxyExists, InvalidToxic) as e:
            detail = e.args[0].decode(errors="replace") if e.args and isinstance(e.args[0], bytes) else e
            raise BackendError(f"Toxiproxy at {self.url}: {method.upper()} {path} refused: {detail}") from e
        except (requests.ConnectionError, requests.Timeout, TimeoutError) as e:
            raise BackendError(
                f"Toxiproxy at {self.url} is unreachable or did not answer within {self.timeout:g}s "
                f"({type(e).__name__})"
            ) from e
        except requests.RequestException as e:
            raise BackendError(f"Toxiproxy at {self.url}: {e}") from e

    async def version(self) -> str:
        answer = await self._call("get", "/version")
        return str(answer["version"]) if isinstance(answer, dict) else str(answer)

    async def proxy(self, name: str) -> dict[str, Any] | None:
        try:
            answer: dict[str, Any] = await self._call("get", f"/proxies/{name}")
        except ToxiproxyNotFound:
            return None
        return answer

    async def create_proxy(self, name: str, listen: str, upstream: str) -> dict[str, Any]:
        answer: dict[str, Any] = await self._call(
            "post", "/proxies", {"name": name, "listen": listen, "upstream": upstream, "enabled": True}
        )
        return answer

    async def delete_proxy(self, name: str) -> bool:
        try:
            await self._call("delete", f"/proxies/{name}")
        except ToxiproxyNotFound:
            return False
        return True

    async def set_enabled(self, name: str, enabled: bool) -> None:
        await self._call("post", f"/proxies/{name}", {"enabled": enabled})

    async def toxics(self, proxy: str) -> list[dict[str, Any]]:
        answer: list[dict[str, Any]] = await self._call("get", f"/proxies/{proxy}/toxics")
        return answer

    async def add_toxic(
        self, proxy: str, name: str, kind: str, stream: str, toxicity: float, attributes: dict[str, Any]
    ) -> None:
        body = {"name": name, "type": kind, "stream": stream, "toxicity": toxicity, "attributes": attributes}
        await self._call("post", f"/proxies/{proxy}/toxics", body)

    async def remove_toxic(self, proxy: str, name: str) -> bool:
        """False when there was nothing to remove, which makes reverts idempotent."""
        try:
            await self._call("delete", f"/proxies/{proxy}/toxics/{name}")
        except ToxiproxyNotFound:
            return False
        return True
