"""The `http` workload client: a key-value store over HTTP (aiohttp, keep-alive, answers bounded).

The contract (docs/workload.md): `PUT {url}/kv/{key}` with the value as the body writes it; `GET
{url}/kv/{key}` answers 200 with the value (one per line if the key holds several) or 404 for a key that
holds nothing. A 2xx write is acknowledged; 4xx and 503 say it did not take effect (fail); any other
answer, a timeout or a connection lost after sending leaves it unknown. A refused connection fails.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from orchestrator.bounded_io import read_answer
from orchestrator.errors import BackendError
from orchestrator.limits import WORKLOAD_ANSWER_BYTES
from orchestrator.model.operations import Operation
from orchestrator.model.workload_clients import HttpOptions
from orchestrator.workloads.base import ClientContext, Outcome, Result

if TYPE_CHECKING:
    import aiohttp

FAILED_WRITES = frozenset({503})
"""Server errors that say the write was refused before it was applied (anything else 5xx is unknown)."""


class HttpClient:
    def __init__(self, options: HttpOptions, context: ClientContext) -> None:
        import aiohttp  # noqa: F401 - here, when the client is built: imported at its first operation, it held the loop ~0.5 s

        self._options = options
        self._context = context
        self._base = options.url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        import aiohttp  # not at the top: loading a drill does not import aiohttp

        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._context.max_in_flight, force_close=not self._options.reuse_connections
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self._context.timeout),
                headers={"User-Agent": "drillctl-workload"},
            )
        return self._session

    async def invoke(self, operation: Operation) -> Result:
        import aiohttp

        url = self._base + self._options.path.replace("{key}", operation.key)
        write = operation.kind == "write"
        sent = False
        try:
            session = self._client()
            request = session.put(url, data=(operation.value or "").encode()) if write else session.get(url)
            async with request as response:
                sent = True
                body = await read_answer(response, WORKLOAD_ANSWER_BYTES, url)
                return _result(write, response.status, body)
        except TimeoutError:
            return Result(_unsure(write), error=f"timeout after {self._context.timeout:g}s")
        except aiohttp.ClientConnectorError as e:  # never connected: nothing was sent
            return Result("fail", error=f"{type(e).__name__}: {e}")
        except (aiohttp.ClientError, OSError, BackendError) as e:
            return Result(_unsure(write) if sent or write else "fail", error=f"{type(e).__name__}: {e}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            await asyncio.sleep(0)


def _unsure(write: bool) -> Outcome:
    """A write whose answer was lost may have taken effect; a read has no effect to be unsure about."""
    return "unknown" if write else "fail"


def _result(write: bool, status: int, body: bytes) -> Result:
    if write:
        if 200 <= status < 300:
            return Result("ok")
        outcome: Outcome = "fail" if status < 500 or status in FAILED_WRITES else "unknown"
        return Result(outcome, error=f"HTTP {status}")
    if status == 404:
        return Result("ok")
    if status != 200:
        return Result("fail", error=f"HTTP {status}")
    text = body.decode("utf-8", errors="replace")
    return Result("ok", tuple(line for line in text.splitlines() if line))


class HttpClientType:
    options = HttpOptions

    def build(self, options: Any, context: ClientContext) -> HttpClient:
        return HttpClient(options, context)


CLIENT = HttpClientType()
