"""The `command` workload client: a program (no shell) per operation, for systems with a CLI and no HTTP.

`write` and `read` are argv templates; `{key}` and `{value}` in any argument are replaced. Exit 0 is ok
(a read's stdout holds its value, one per line if several); `absent_exit` from a read means the key holds
nothing; `fail_exit` means the operation did not take effect; any other exit, or the timeout, leaves a
write unknown and fails a read.
"""

from __future__ import annotations

import asyncio
from typing import Any

from orchestrator.limits import WORKLOAD_ANSWER_BYTES
from orchestrator.model.operations import Operation
from orchestrator.model.workload_clients import CommandOptions
from orchestrator.workloads.base import ClientContext, Result


class CommandClient:
    def __init__(self, options: CommandOptions, context: ClientContext) -> None:
        self._options = options
        self._timeout = context.timeout
        self._cwd = context.folder / options.cwd if options.cwd else context.folder

    async def invoke(self, operation: Operation) -> Result:
        write = operation.kind == "write"
        template = self._options.write if write else self._options.read
        argv = [a.replace("{key}", operation.key).replace("{value}", operation.value or "") for a in template]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=self._cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError as e:  # never started: nothing happened
            return Result("fail", error=f"cannot start {argv[0]}: {e}")
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(self._timeout):
                out = bytearray()
                while len(out) <= WORKLOAD_ANSWER_BYTES.value and (piece := await proc.stdout.read(1 << 16)):
                    out += piece
                if len(out) <= WORKLOAD_ANSWER_BYTES.value:
                    await proc.wait()
        except TimeoutError:
            return Result("unknown" if write else "fail", error=f"timeout after {self._timeout:g}s")
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        if len(out) > WORKLOAD_ANSWER_BYTES.value:
            return Result("unknown" if write else "fail", error=f"output over {WORKLOAD_ANSWER_BYTES.value} bytes")
        code = proc.returncode
        if code == 0:
            values = () if write else tuple(v for v in bytes(out).decode(errors="replace").splitlines() if v)
            return Result("ok", values)
        if not write and code == self._options.absent_exit:
            return Result("ok")
        if code == self._options.fail_exit:
            return Result("fail", error=f"exit {code}")
        return Result("unknown" if write else "fail", error=f"exit {code}")

    async def close(self) -> None:
        return None


class CommandClientType:
    options = CommandOptions

    def build(self, options: Any, context: ClientContext) -> CommandClient:
        return CommandClient(options, context)


CLIENT = CommandClientType()
