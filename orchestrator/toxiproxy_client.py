"""A Toxiproxy API client with a deadline on every call, safe with several servers per process.

Why not toxiproxy-python's `Toxiproxy`/`Proxy` objects: they read the server address from
class attributes of `APIConsumer` (one server per process) and send requests without a
timeout. So each client uses a subclass of `APIConsumer` of its own (its own address), passes a
timeout on every call, and the library's `validate_response` still maps 400/404/409 to its
exceptions. The blocking call runs in a worker thread under an asyncio deadline.

The subclass does not send with the library's `requests.get/post/delete`: each of those builds a
session and a TCP connection of its own, and merges settings, cookies, hooks and the environment on
every call, which is what a rollback of a hundred toxics spent its CPU on (bench/fault_latency.py,
revert to confirmed: 293 ms of CPU that way, 137-161 ms through one kept-alive `requests` adapter,
55-64 ms now). It sends through `http.client` connections kept alive per server, one per worker
thread in use, and only the library's `validate_response` and exceptions see the answer. Toxiproxy is a
local or in-cluster service, so the environment's HTTP proxy settings and netrc are not consulted
(through a corporate proxy a loopback call would be wrong anyway). The threads are a pool of
Toxiproxy's own, wide enough for a rollback of many toxics at once.

Every answer is read as a stream and bounded (`TOXIPROXY_ANSWER`, and in time by the call's
timeout): a wrong or hostile server on that port must not make drillctl read without end.
Redirects are not followed (Toxiproxy never sends one).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import queue
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from toxiproxy.api import APIConsumer, validate_response
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from orchestrator.bounded_io import content_length, read_stream
from orchestrator.errors import BackendError
from orchestrator.limits import TOXIPROXY_ANSWER, LimitExceeded

CALLS_AT_ONCE = 64
_pool = ThreadPoolExecutor(max_workers=CALLS_AT_ONCE, thread_name_prefix="toxiproxy")
_QUOTED = 300  # characters of an error answer quoted in a message
# No compression: the bound is on what is read, so there is nothing to inflate.
_HEADERS = {"User-Agent": "drillctl", "Accept": "*/*", "Accept-Encoding": "identity"}


class ToxiproxyNotFound(BackendError):
    """The proxy or toxic does not exist (HTTP 404)."""


@dataclass
class _Answer:
    """What toxiproxy-python's validate_response reads of an answer: its status and its whole body."""

    status_code: int
    content: bytes


class _Connections:
    """Keep-alive connections to one server, one in use per worker thread at most, idle ones reused."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._idle: queue.LifoQueue[http.client.HTTPConnection] = queue.LifoQueue(maxsize=CALLS_AT_ONCE)
        self.opened = 0
        """Connections made so far: a run of calls from one thread needs one."""

    def send(self, method: str, path: str, body: bytes | None) -> _Answer:
        """One request. A kept connection the server closed meanwhile (its idle timeout) fails before any
        answer: that request is sent once more on a new connection, the only retry here."""
        for reused in (True, False):
            conn = self._take() if reused else None
            if conn is None:
                reused = False
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                self.opened += 1
            try:
                answer = self._exchange(conn, method, path, body)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                if reused:
                    continue
                raise
            except BaseException:
                conn.close()  # the rest of the answer is unread: the connection must not be reused
                raise
            self._give_back(conn)
            return answer
        raise AssertionError("unreachable: the second try uses a new connection")

    def _exchange(self, conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None) -> _Answer:
        headers = dict(_HEADERS)
        if body is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        content = read_stream(
            response,
            TOXIPROXY_ANSWER,
            f"{method} {path}",
            content_length(response.getheader("Content-Length")),
            time.monotonic() + self.timeout,
        )
        if response.will_close:
            conn.close()
        return _Answer(response.status, content)

    def _take(self) -> http.client.HTTPConnection | None:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return None

    def _give_back(self, conn: http.client.HTTPConnection) -> None:
        if conn.sock is None:
            return
        try:
            self._idle.put_nowait(conn)
        except queue.Full:
            conn.close()

    def close(self) -> None:
        while (conn := self._take()) is not None:
            conn.close()


class _Consumer(APIConsumer):  # type: ignore[misc]
    """toxiproxy-python's APIConsumer for one server, sending through that server's keep-alive connections."""

    connections: _Connections

    @classmethod
    def get(cls, url: str, params: Any = None, **kwargs: Any) -> _Answer:
        return cls._send("GET", url, **kwargs)

    @classmethod
    def delete(cls, url: str, **kwargs: Any) -> _Answer:
        return cls._send("DELETE", url, **kwargs)

    @classmethod
    def post(cls, url: str, data: Any = None, json: Any = None, **kwargs: Any) -> _Answer:
        return cls._send("POST", url, json=json, **kwargs)

    @classmethod
    def _send(cls, method: str, path: str, json: Any = None) -> _Answer:
        body = None if json is None else _encode(json)
        checked: _Answer = validate_response(cls.connections.send(method, path, body))
        return checked


def _encode(value: Any) -> bytes:
    return json.dumps(value).encode()


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
        connections = _Connections(parts.hostname, parts.port, timeout)
        weakref.finalize(self, connections.close)
        self._api: type[_Consumer] = type("APIConsumer", (_Consumer,), {"connections": connections})

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        def blocking() -> Any:
            response = getattr(self._api, method)(path) if body is None else getattr(self._api, method)(path, json=body)
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
        except (OSError, TimeoutError) as e:  # refused, reset, timed out: socket errors are OSErrors
            raise BackendError(
                f"Toxiproxy at {self.url} is unreachable or did not answer within {self.timeout:g}s "
                f"({type(e).__name__})"
            ) from e
        except http.client.HTTPException as e:  # not HTTP: another server on that port
            raise BackendError(f"Toxiproxy at {self.url}: not an HTTP answer ({type(e).__name__}: {e})") from e

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
