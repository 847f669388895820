"""HTTP probe (aiohttp): status in the expected set and, optionally, a body match."""

from __future__ import annotations

import re
import time

import aiohttp

from orchestrator.bounded_io import read_answer
from orchestrator.errors import BackendError
from orchestrator.limits import HTTP_PROBE_BODY_BYTES
from orchestrator.model.spec import HttpProbe as HttpProbeSpec
from orchestrator.probes.base import Observation


def _decode(body: bytes, charset: str | None) -> str:
    """As the server says (UTF-8 if it does not, or names a charset Python does not know)."""
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


class HttpProbe:
    def __init__(self, spec: HttpProbeSpec, max_in_flight: int) -> None:
        self.name = spec.name
        self.timeout = spec.timeout
        self._spec = spec
        self._body = re.compile(spec.body_match) if spec.body_match else None
        self._max_in_flight = max_in_flight
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_in_flight, force_close=not self._spec.reuse_connections)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"User-Agent": "drillctl-probe"},
            )
        return self._session

    async def observe(self) -> Observation:
        started = time.monotonic()
        try:
            async with self._client().request(self._spec.method, self._spec.url) as response:
                body = await read_answer(response, HTTP_PROBE_BODY_BYTES, self._spec.url) if self._body else b""
                text = _decode(body, response.charset)
                latency = time.monotonic() - started
                if response.status not in self._spec.expect_status:
                    return Observation(False, latency, f"HTTP {response.status}")
                if self._body and not self._body.search(text):
                    return Observation(False, latency, f"body does not match {self._body.pattern!r}")
                return Observation(True, latency)
        except TimeoutError:
            return Observation(False, time.monotonic() - started, f"timeout after {self.timeout:g}s")
        except aiohttp.ClientError as e:
            return Observation(False, time.monotonic() - started, f"{type(e).__name__}: {e}")
        except (OSError, BackendError) as e:
            return Observation(False, time.monotonic() - started, f"{type(e).__name__}: {e}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
