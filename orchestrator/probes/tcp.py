"""TCP probe: the port accepts a connection within the timeout."""

from __future__ import annotations

import asyncio
import time

from orchestrator.model.spec import TcpProbe as TcpProbeSpec
from orchestrator.probes.base import Observation


class TcpProbe:
    def __init__(self, spec: TcpProbeSpec) -> None:
        self.name = spec.name
        self.timeout = spec.timeout
        self._spec = spec

    async def observe(self) -> Observation:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                _, writer = await asyncio.open_connection(self._spec.host, self._spec.port)
                writer.close()
                await writer.wait_closed()
        except TimeoutError:
            return Observation(False, time.monotonic() - started, f"timeout after {self.timeout:g}s")
        except OSError as e:
            return Observation(False, time.monotonic() - started, f"{type(e).__name__}: {e.strerror or e}")
        return Observation(True, time.monotonic() - started)

    async def close(self) -> None:
        return None
