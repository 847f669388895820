"""A Toxiproxy API client with a deadline on every call, safe with several servers per process.

Why not toxiproxy-python's `Toxiproxy`/`Proxy` objects: they read the server address from
class attributes of `APIConsumer` (one server per process) and send requests without a
timeout. So each client uses a subclass of `APIConsumer` of its own (its own address), passes a
timeout on every call, and the library's `validate_response` still maps 400/404/409 to its
exceptions. The blocking call runs in a worker thread under an asyncio deadline.

The subclass does not send with the library's `requests.get/post/delete`: each of those builds a
session and a TCP connection of its own, and merges settings, cookies, hooks and the environment
on every call, which is what a rollback of a hundred toxics spent its CPU on
(bench/fault_latency.py). It prepares a plain `requests.Request` and sends it through one
`HTTPAdapter` per server, whose pool keeps a connection alive for each worker thread; the
environment's proxy settings and netrc are read once, when the client is built. The threads are
a pool of Toxiproxy's own, wide enough for a rollback of many toxics at once.

Every answer is read as a stream and bounded (`TOXIPROXY_ANSWER`, and in time by the call's
timeout): a wrong or hostile server on that port must not make drillctl read without end.
Redirects are not followed (Toxiproxy never sends one).
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import default_user_agent, get_environ_proxies, get_netrc_auth
from toxiproxy.api import APIConsumer, validate_response
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from orchestrator.bounded_io import read_stream
from orchestrator.errors import BackendError
from orchestrator.limits import TOXIPROXY_ANSWER, LimitExceeded

CALLS_AT_ONCE = 64
_pool = ThreadPoolExecutor(max_workers=CALLS_AT_ONCE, thread_name_prefix="toxiproxy")
_QUOTED = 300  # characters of an error answer quoted in a message
# requests' defaults, but no compression: the bound is on what is read, so there is nothing to inflate
_HEADERS = {"User-Agent": default_user_agent(), "Accept": "*/*", "Accept-Encoding": "identity"}


class ToxiproxyNotFound(BackendError):
    """The proxy or toxic does not exist (HTTP 404)."""


class _Consumer(APIConsumer):  # type: ignore[misc]
    """toxiproxy-python's APIConsumer for one server, sending through that server's keep-alive pool."""

    host: str
    port: int
    timeout: float
    adapter: HTTPAdapter
    proxies: dict[str, str]
    auth: tuple[str, str] | None

    @classmethod
    def get(cls, url: str, params: Any = None, **kwargs: Any) -> requests.Response:
        return cls._send("GET", url, params=params, **kwargs)

    @classmethod
    def delete(cls, url: str, **kwargs: Any) -> requests.Response:
        return cls._send("DELETE", url, **kwargs)

    @classmethod
    def post(cls, url: str, data: Any = None, json: Any = None, **kwargs: Any) -> requests.Response:
        return cls._send("POST", url, data=data, json=json, **kwargs)

    @classmethod
    def _send(cls, method: str, path: str, timeout: tuple[float, float], **kwargs: Any) -> requests.Response:
        url = f"http://{cls.host}:{cls.port}{path}"
        request = requests.Request(method, url, headers=_HEADERS, auth=cls.auth, **kwargs).prepare()
        response = cls.adapter.send(request, stream=True, timeout=timeout, proxies=cls.proxies)
        try:
            declared = response.headers.get("Content-Length", "")
            response._content = read_stream(
                response.raw,
                TOXIPROXY_ANSWER,
                f"{method} {path}",
                int(declared) if declared.isdigit() else None,
                time.monotonic() + cls.timeout,
            )
        except BaseException:
            response.close()  # the rest of the body stays unread: the connection must not be reused
            raise
        checked: requests.Response = validate_response(response)
        return checked


def _quoted(content: object) -> str:
    text = content.decode(errors="replace") if isinstance(content, bytes) else str(content)
    text = text.strip()
    return text if len(text) <= _QUOTED else text[:_QUOTED] + "..."


class ToxiproxyClient:
    def __init__(self, url: str, timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        if not parts.hostname or not parts.port:
            raise ValueError(f"Toxiproxy URL needs a host and a port: {url!r}")
        self.url = f"http://{parts.hostname}:{parts.port}"
        self.timeout = timeout
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=CALLS_AT_ONCE)
        weakref.finalize(self, adapter.close)
        self._api: type[_Consumer] = type(
            "APIConsumer",
            (_Consumer,),
            {
                "host": parts.hostname,
                "port": parts.port,
                "timeout": timeout,
                "adapter": adapter,
                "proxies": get_environ_proxies(self.url),
                "auth": get_netrc_auth(self.url),
            },
        )

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        def blocking() -> Any:
            kwargs: dict[str, Any] = {"timeout": (self.timeout, self.timeout)}
            if body is not None:
                kwargs["json"] = body
            response = getattr(self._api, method)(path, **kwargs)
            if not 200 <= response.status_code < 300:
                raise BackendError(
                    f"Toxiproxy at {self.url}: {method.upper()} {path} -> "
                    f"{response.status_code} {_quoted(response.content)}"
                )
            if not response.content:
                return None
            try:
                return json.loads(response.content)
            except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
                raise BackendError(
                    f"Toxiproxy at {self.url}: {method.upper()} {path} answered with something that is not JSON: "
                    f"{_quoted(response.content)!r}"
                ) from None

        try:
            async with asyncio.timeout(self.timeout * 2 + 1):
                return await asyncio.get_running_loop().run_in_executor(_pool, blocking)
        except NotFound as e:
            raise ToxiproxyNotFound(f"Toxiproxy at {self.url}: {path} not found") from e
        except (ProxyExists, InvalidToxic) as e:
            detail = _quoted(e.args[0]) if e.args else ""
            raise BackendError(f"Toxiproxy at {self.url}: {method.upper()} {path} refused: {detail}") from e
        except LimitExceeded as e:
            raise BackendError(f"Toxiproxy at {self.url}: {method.upper()} {path}: {e.reason}") from e
        except (requests.ConnectionError, requests.Timeout, TimeoutError) as e:
            raise BackendError(
                f"Toxiproxy at {self.url} is unreachable or did not answer within {self.timeout:g}s "
                f"({type(e).__name__})"
            ) from e
        except requests.RequestException as e:
            raise BackendError(f"Toxiproxy at {self.url}: {e}") from e

    def _shape(self, where: str, answer: Any, kind: type, what: str) -> Any:
        """A clear error, not a KeyError later, when a server on that port answers with the wrong shape."""
        if not isinstance(answer, kind):
            raise BackendError(f"Toxiproxy at {self.url}: {where} answered {_quoted(json.dumps(answer))}, not {what}")
        return answer

    async def version(self) -> str:
        answer = self._shape("GET /version", await self._call("get", "/version"), dict, "an object with a version")
        return str(self._shape("GET /version", answer.get("version"), str, "an object with a version"))

    async def proxy(self, name: str) -> dict[str, Any] | None:
        path = f"/proxies/{name}"
        try:
            answer = await self._call("get", path)
        except ToxiproxyNotFound:
            return None
        proxy: dict[str, Any] = self._shape(f"GET {path}", answer, dict, "a proxy")
        return proxy

    async def create_proxy(self, name: str, listen: str, upstream: str) -> dict[str, Any]:
        answer = await self._call(
            "post", "/proxies", {"name": name, "listen": listen, "upstream": upstream, "enabled": True}
        )
        proxy: dict[str, Any] = self._shape("POST /proxies", answer, dict, "a proxy")
        return proxy

    async def delete_proxy(self, name: str) -> bool:
        try:
            await self._call("delete", f"/proxies/{name}")
        except ToxiproxyNotFound:
            return False
        return True

    async def set_enabled(self, name: str, enabled: bool) -> None:
        await self._call("post", f"/proxies/{name}", {"enabled": enabled})

    async def toxics(self, proxy: str) -> list[dict[str, Any]]:
        path = f"/proxies/{proxy}/toxics"
        answer = self._shape(f"GET {path}", await self._call("get", path), list, "a list of toxics")
        for toxic in answer:
            self._shape(f"GET {path}", toxic, dict, "a list of toxics")
            self._shape(f"GET {path}", toxic.get("name"), str, "a list of named toxics")
        toxics: list[dict[str, Any]] = answer
        return toxics

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
