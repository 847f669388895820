"""`drillctl serve` as a real process on a free loopback port, for the server and browser tests."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support import DRILLCTL, ROOT


@contextmanager
def serving(runs_dir: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """The server's URL while it runs; stopped with SIGTERM after (serve.json goes with it)."""
    proc = subprocess.Popen(
        [DRILLCTL, "serve", "--runs-dir", str(runs_dir), "--port", "0", "-o", "json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline() if ready else b""
    if not line:
        proc.kill()
        _, err = proc.communicate(timeout=30)
        raise AssertionError(f"drillctl serve did not start: {err.decode(errors='replace')}")
    try:
        yield str(json.loads(line)["url"]).rstrip("/")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
