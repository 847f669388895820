"""Command probe: argv (no shell) exits with the expected code, and its output matches.

It runs in the drill file's folder, as every command a drill names does (resolvers, workload clients,
processes without a `cwd`), so a relative path in its argv means the same wherever drillctl was started.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from orchestrator.model.spec import CommandProbe as CommandProbeSpec
from orchestrator.probes.base import Observation


class CommandProbe:
    def __init__(self, spec: CommandProbeSpec, folder: Path) -> None:
        self.name = spec.name
        self.timeout = spec.timeout
        self._spec = spec
        self._folder = folder
        self._output = re.compile(spec.output_match) if spec.output_match else None

    async def observe(self) -> Observation:
        started = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._spec.argv,
                cwd=self._folder,
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
