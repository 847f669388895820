"""A private toxiproxy-server on a free loopback port, for drills with `toxiproxy.url: auto`."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from pathlib import Path

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_fixed

from orchestrator.errors import BackendError, PreflightError
from orchestrator.toxiproxy_client import ToxiproxyClient

BINARY = "toxiproxy-server"
ENV_BINARY = "DRILLCTL_TOXIPROXY_SERVER"


def find_binary() -> Path:
    """$DRILLCTL_TOXIPROXY_SERVER, then PATH, then .tools/bin of the current folder (what `make` installs)."""
    candidates = [os.environ.get(ENV_BINARY), shutil.which(BINARY), str(Path(".tools/bin") / BINARY)]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate).resolve()
    raise PreflightError(
        f"toxiproxy.url is 'auto' but no {BINARY} was found (set {ENV_BINARY}, put it on PATH, "
        "or run scripts/install-toxiproxy.sh)"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LocalToxiproxy:
    def __init__(self, log_path: Path, seed: int | None, timeout: float = 5.0) -> None:
        self.binary = find_binary()
        self.log_path = log_path
        self.seed = seed
        self.timeout = timeout
        self._proc: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start(self) -> str:
        """Start the server and return its URL once it answers."""
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        args = ["-host", "127.0.0.1", "-port", str(port)]
        if self.seed is not None:
            args += ["-seed", str(self.seed)]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                str(self.binary),
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        client = ToxiproxyClient(self.url, timeout=1.0)
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_delay(self.timeout),
                wait=wait_fixed(0.05),
                retry=retry_if_exception_type(BackendError),
                reraise=True,
            ):
                with attempt:
                    if self._proc.returncode is not None:
                        raise PreflightError(f"{self.binary} exited with {self._proc.returncode}; see {self.log_path}")
                    await client.version()
        except BackendError as e:
            await self.stop()
            raise PreflightError(f"{self.binary} did not answer on {self.url} within {self.timeout:g}s") from e
        return self.url

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    async def stop(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 5.0)
        except TimeoutError:
            proc.kill()
            await asyncio.wait_for(proc.wait(), 5.0)
