"""The demo key-value store (demo/kv.py) as a drill's node, with a workload writing to it through `http`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tests.fixtures.toxiproxy import free_port
from tests.support import ROOT, drill

KV = str(ROOT / "demo" / "kv.py")


def kv_drill(data: Path, sync_every: str, slas: list[dict[str, Any]], **workload: Any) -> dict[str, Any]:
    """Node `store` (one kv process, data in `data`) crashes for 1s a second into the fault phase, while 100
    operations/s (30% reads) go to it; `sync_every` 0 persists every write before acknowledging it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = {
        "name": "kv",
        "argv": [sys.executable, KV, "--port", str(port), "--data", str(data), "--sync-every", sync_every],
        "ready": {"probe": {"type": "http", "name": "kv-ready", "url": f"{url}/healthz"}, "timeout": "10s"},
    }
    return drill(
        "kv-loss",
        targets={"local": {"processes": [process], "nodes": [{"name": "store", "processes": ["kv"]}]}},
        steady_state={
            "interval": "50ms",
            "probes": [{"type": "http", "name": "kv", "url": f"{url}/healthz", "timeout": "500ms"}],
        },
        phases={"baseline": "2s", "fault": "2500ms", "recovery": "10s"},
        faults=[{"name": "crash", "type": "node.loss", "node": "store", "start": "1s", "duration": "1s"}],
        workload={
            "rate": 100,
            "keys": 40,
            "reads": 0.3,
            "timeout": "500ms",
            "client": {"type": "http", "url": url},
            **workload,
        },
        slas=slas,
    )
