"""Command probe: argv (no shell) exits with the expected code, and its output matches."""

from __future__ import annotations

import asyncio
import re
import time

from orchestrator.model.spec import CommandProbe as CommandProbeSpec
from orchestrator.probes.base import Observation


class CommandProbe:
    def __init__(self, spec: CommandProbeSpec) -> None:
        self.name = spec.name
        self.timeout = spec.timeout
        self._spec = spec
        self._output = re.compile(spec.output_match) if spec.output_match else None

    async def observe(self) -> Observation:
        started = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._spec.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError as e:
            return Observation(False, time.monotonic() - started, f"cannot start {self._spec.argv[0]}: {e}")
        try:
            async with asyncio.timeout(self.timeout):
                out, _ = await proc.communicate()
        except TimeoutError:
            return Observation(False, time.monotonic() - started, f"timeout after {self.timeout:g}s")
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        latency = time.monotonic() - started
        if proc.returncode != self._spec.expect_exit:
            return Observation(False, latency, f"exit {proc.returncode}, expected {self._spec.expect_exit}")
        if self._output and not self._output.search(out.decode(errors="replace")):
            return Observation(False, latency, f"output does not match {self._output.pattern!r}")
        return Observation(True, latency)

    async def close(self) -> None:
        return None
