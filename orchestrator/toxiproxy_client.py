"""A Toxiproxy API client with a deadline on every call, safe with several servers per process.

Why not toxiproxy-python's `Toxiproxy`/`Proxy` objects: they read the server address from
class attributes of `APIConsumer` (one server per process), send requests without a timeout, and
make one round trip per call. This client keeps the library's answer check (`validate_response`,
which maps 400/404/409 to its exceptions) and sends through a transport of its own, in a worker
thread under an asyncio deadline.

The transport coalesces: the calls an event loop makes before it next gets to run a callback (a
rollback of many toxics, which the engine reverts concurrently; a read back of every proxy) go out
as pipelines, one per proxy: written back to back on one kept-alive connection (HTTP/1.1
pipelining, which Toxiproxy's Go server answers in order), their answers read in order, by one
worker thread per pipeline. A hundred toxics on ten proxies cost ten writes and ten read loops,
not a hundred round trips and a hundred thread hops (bench/fault_latency.py, bench/RESULTS.md
section 3). A lone call is a pipeline of one. Toxiproxy is a local or in-cluster service, so the
environment's HTTP proxy settings and netrc are not consulted (through a corporate proxy a
loopback call would be wrong anyway).

Every answer is read as a stream and bounded (`TOXIPROXY_ANSWER`, and in time by the call's
timeout): a wrong or hostile server on that port must not make drillctl read without end.
Redirects are not followed (Toxiproxy never sends one).
"""

from __future__ import annotations

import asyncio
import functools
import http.client
import io
import json
import queue
import socket
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from toxiproxy.api import validate_response
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from orchestrator.bounded_io import content_length, read_stream
from orchestrator.errors import BackendError
from orchestrator.limits import TOXIPROXY_ANSWER, LimitExceeded

PIPELINES_AT_ONCE = 16
PIPELINE_CALLS = 128
PIPELINE_BYTES = 16 * 1024
"""Requests in one pipeline, at most: few enough bytes to sit in the socket buffers whole, so writing
them never waits for the server to read (it reads the next request once it answered the last)."""
_pool = ThreadPoolExecutor(max_workers=PIPELINES_AT_ONCE, thread_name_prefix="toxiproxy")
_QUOTED = 300  # characters of an error answer quoted in a message
_GONE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class ToxiproxyNotFound(BackendError):
    """The proxy or toxic does not exist (HTTP 404)."""


@dataclass
class _Answer:
    """What toxiproxy-python's validate_response reads of an answer: its status and its whole body."""

    status_code: int
    content: bytes


@dataclass(frozen=True)
class _Request:
    """One request as written on the wire, and what a message calls it."""

    method: str
    path: str
    data: bytes

    @classmethod
    def of(cls, host: str, method: str, path: str, body: bytes | None) -> _Request:
        head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: drillctl\r\nAccept: */*\r\n"
        head += "Accept-Encoding: identity\r\n"  # the bound is on what is read: nothing to inflate
        if body is None:
            return cls(method, path, (head + "\r\n").encode())
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        return cls(method, path, head.encode() + body)


@dataclass
class _Call:
    """A request and the future its caller awaits."""

    request: _Request
    future: asyncio.Future[Any] = field(repr=False)


def _pipelines(calls: list[_Call]) -> list[list[_Call]]:
    """The calls cut into pipelines: one per proxy (in the order they were made), of at most
    PIPELINE_CALLS calls and PIPELINE_BYTES.

    Toxiproxy answers a pipeline in order, so a call that hangs holds up those behind it; a removal
    can hang on a busy proxy's lock (Shopify/toxiproxy#558). Calls to one proxy would wait on that
    lock anyway; calls to other proxies go on other connections and do not wait for it."""
    by_proxy: dict[str, list[list[_Call]]] = {}
    sizes: dict[str, int] = {}
    for call in calls:
        proxy = call.request.path.split("/")[2] if call.request.path.startswith("/proxies/") else ""
        pipelines = by_proxy.setdefault(proxy, [])
        size = len(call.request.data)
        if not pipelines or len(pipelines[-1]) == PIPELINE_CALLS or sizes[proxy] + size > PIPELINE_BYTES:
            pipelines.append([])
            sizes[proxy] = 0
        pipelines[-1].append(call)
        sizes[proxy] += size
    return [pipeline for pipelines in by_proxy.values() for pipeline in pipelines]


class _Reader:
    """A connection's one buffered reader, lent to each answer's HTTPResponse in turn: closing an
    answer must not close the reader the next answer is read from."""

    def __init__(self, reader: io.BufferedReader) -> None:
        self._reader = reader

    def makefile(self, mode: str) -> _Reader:
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)

    def close(self) -> None:
        """Kept open: the connection's own close closes it."""


class _Wire:
    """One kept-alive connection to the server."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")
        self.reader = _Reader(self.file)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


class _Connections:
    """Keep-alive connections to one server, one in use per pipeline at most, idle ones reused."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.deadline = timeout * 2 + 1
        """How long a caller waits for its answer: a socket timeout to connect, one to answer, and a second."""
        self._idle: queue.LifoQueue[_Wire] = queue.LifoQueue(maxsize=PIPELINES_AT_ONCE)
        self.opened = 0
        """Connections made so far: a run of calls needs one."""

    def send(self, calls: list[_Request]) -> list[_Answer | BaseException]:
        """Every call's answer, in order, or what went wrong with it.

        A kept connection the server closed meanwhile (its idle timeout) fails before any answer: the
        pipeline is sent once more on a new connection. An answer that closes the connection means the
        server read no request after it: those are sent again on a new connection. Once some answer has
        come, a broken connection fails the calls still unanswered (whether the server did them is not
        known), as a lone call that breaks does."""
        answers: list[_Answer | BaseException] = []
        retried = False
        while len(answers) < len(calls):
            before = len(answers)
            wire = self._take()
            reused = wire is not None
            try:
                if wire is None:
                    wire = _Wire(self.host, self.port, self.timeout)
                    self.opened += 1
                done = self._exchange(wire, calls[before:], answers)
            except Exception as e:
                if wire is not None:
                    wire.close()  # the rest of its answers is unread: it must not be reused
                if isinstance(e, _GONE) and reused and not retried and len(answers) == before:
                    retried = True
                    continue
                answers.append(e)
                unanswered = ConnectionAbortedError(f"no answer: the connection was dropped after {type(e).__name__}")
                answers += [unanswered] * (len(calls) - len(answers))
                break
            if done:
                self._give_back(wire)
            else:
                wire.close()
        return answers

    def _exchange(self, wire: _Wire, calls: list[_Request], answers: list[_Answer | BaseException]) -> bool:
        """Write every call, then read their answers into `answers`; False once the server closes.

        One deadline for the whole pipeline, the one its callers wait for: a server that answers each call
        just inside the socket's timeout must not keep the worker thread for a timeout per call."""
        deadline = time.monotonic() + self.deadline
        wire.sock.sendall(b"".join(call.data for call in calls))
        for call in calls:
            where = f"{call.method} {call.path}"
            response = http.client.HTTPResponse(wire.reader, method=call.method)  # type: ignore[arg-type]
            response.begin()
            content = read_stream(
                response,
                TOXIPROXY_ANSWER,
                where,
                content_length(response.getheader("Content-Length")),
                deadline,
            )
            answers.append(_Answer(response.status, content))
            if response.will_close:
                return False
        return True

    def _take(self) -> _Wire | None:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return None

    def _give_back(self, wire: _Wire) -> None:
        try:
            self._idle.put_nowait(wire)
        except queue.Full:
            wire.close()

    def close(self) -> None:
        while (wire := self._take()) is not None:
            wire.close()


def _settle(pipeline: list[_Call], sent: asyncio.Future[list[tuple[Any, BaseException | None]]]) -> None:
    """Each caller gets its own outcome; one that stopped waiting (its deadline) is skipped."""
    failed = None if sent.cancelled() else sent.exception()
    for n, call in enumerate(pipeline):
        if call.future.done():
            continue
        if sent.cancelled():
            call.future.cancel()
        elif failed is not None:
            call.future.set_exception(failed)
        else:
            value, error = sent.result()[n]
            if error is None:
                call.future.set_result(value)
            else:
                call.future.set_exception(error)


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
        self._host = f"{parts.hostname}:{parts.port}"
        self.connections = _Connections(parts.hostname, parts.port, timeout)
        weakref.finalize(self, self.connections.close)
        self._waiting: dict[asyncio.AbstractEventLoop, list[_Call]] = {}
        """Calls made since their loop last ran its callbacks, to go out as one pipeline."""

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        loop = asyncio.get_running_loop()
        call = _Call(self.request(method, path, body), loop.create_future())
        waiting = self._waiting.setdefault(loop, [])
        waiting.append(call)
        if len(waiting) == 1:
            loop.call_soon(self._send_waiting, loop)
        try:
            async with asyncio.timeout(self.connections.deadline):
                return await call.future
        except NotFound as e:
            raise ToxiproxyNotFound(f"Toxiproxy at {self.url}: {path} not found") from e
        except (ProxyExists, InvalidToxic) as e:
            detail = _quoted(e.args[0]) if e.args else ""
            raise BackendError(f"Toxiproxy at {self.url}: {method} {path} refused: {detail}") from e
        except LimitExceeded as e:
            raise BackendError(f"Toxiproxy at {self.url}: {method} {path}: {e.reason}") from e
        except (OSError, TimeoutError) as e:  # refused, reset, timed out: socket errors are OSErrors
            raise BackendError(
                f"Toxiproxy at {self.url} is unreachable or did not answer within {self.timeout:g}s "
                f"({type(e).__name__})"
            ) from e
        except http.client.HTTPException as e:  # not HTTP: another server on that port
            raise BackendError(f"Toxiproxy at {self.url}: not an HTTP answer ({type(e).__name__}: {e})") from e

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> _Request:
        return _Request.of(self._host, method, path, None if body is None else _encode(body))

    def _send_waiting(self, loop: asyncio.AbstractEventLoop) -> None:
        for pipeline in _pipelines(self._waiting.pop(loop, [])):
            sent = loop.run_in_executor(_pool, self._outcomes, [call.request for call in pipeline])
            sent.add_done_callback(functools.partial(_settle, pipeline))

    def _outcomes(self, requests: list[_Request]) -> list[tuple[Any, BaseException | None]]:
        """In a worker thread: each request's value, or what its caller is to raise."""
        outcomes: list[tuple[Any, BaseException | None]] = []
        for request, answer in zip(requests, self.connections.send(requests), strict=True):
            if isinstance(answer, BaseException):
                outcomes.append((None, answer))
                continue
            try:
                outcomes.append((self._value(request, answer), None))
            except Exception as e:
                outcomes.append((None, e))
        return outcomes

    def _value(self, request: _Request, answer: _Answer) -> Any:
        validate_response(answer)  # toxiproxy-python's own reading of 400, 404 and 409
        if not 200 <= answer.status_code < 300:
            raise BackendError(
                f"Toxiproxy at {self.url}: {request.method} {request.path} -> {answer.status_code} "
                f"{_quoted(answer.content)}"
            )
        if not answer.content:
            return None
        try:
            return json.loads(answer.content)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            raise BackendError(
                f"Toxiproxy at {self.url}: {request.method} {request.path} answered with something that is not JSON: "
                f"{_quoted(answer.content)!r}"
            ) from None

    def _shape(self, where: str, answer: Any, kind: type, what: str) -> Any:
        """A clear error, not a KeyError later, when a server on that port answers with the wrong shape."""
        if not isinstance(answer, kind):
            raise BackendError(f"Toxiproxy at {self.url}: {where} answered {_quoted(json.dumps(answer))}, not {what}")
        return answer

    async def version(self) -> str:
        answer = self._shape("GET /version", await self._call("GET", "/version"), dict, "an object with a version")
        return str(self._shape("GET /version", answer.get("version"), str, "an object with a version"))

    async def proxy(self, name: str) -> dict[str, Any] | None:
        path = f"/proxies/{name}"
        try:
            answer = await self._call("GET", path)
        except ToxiproxyNotFound:
            return None
        proxy: dict[str, Any] = self._shape(f"GET {path}", answer, dict, "a proxy")
        return proxy

    async def create_proxy(self, name: str, listen: str, upstream: str) -> dict[str, Any]:
        answer = await self._call(
            "POST", "/proxies", {"name": name, "listen": listen, "upstream": upstream, "enabled": True}
        )
        proxy: dict[str, Any] = self._shape("POST /proxies", answer, dict, "a proxy")
        return proxy

    async def delete_proxy(self, name: str) -> bool:
        try:
            await self._call("DELETE", f"/proxies/{name}")
        except ToxiproxyNotFound:
            return False
        return True

    async def set_enabled(self, name: str, enabled: bool) -> None:
        await self._call("POST", f"/proxies/{name}", {"enabled": enabled})

    async def toxics(self, proxy: str) -> list[dict[str, Any]]:
        path = f"/proxies/{proxy}/toxics"
        answer = self._shape(f"GET {path}", await self._call("GET", path), list, "a list of toxics")
        for toxic in answer:
            self._shape(f"GET {path}", toxic, dict, "a list of toxics")
            self._shape(f"GET {path}", toxic.get("name"), str, "a list of named toxics")
        toxics: list[dict[str, Any]] = answer
        return toxics

    async def add_toxic(
        self, proxy: str, name: str, kind: str, stream: str, toxicity: float, attributes: dict[str, Any]
    ) -> None:
        body = {"name": name, "type": kind, "stream": stream, "toxicity": toxicity, "attributes": attributes}
        await self._call("POST", f"/proxies/{proxy}/toxics", body)

    async def remove_toxic(self, proxy: str, name: str) -> bool:
        """False when there was nothing to remove, which makes reverts idempotent."""
        try:
            await self._call("DELETE", f"/proxies/{proxy}/toxics/{name}")
        except ToxiproxyNotFound:
            return False
        return True
