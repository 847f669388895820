"""Helpers shared by the integration tests: drills written to disk, drillctl run as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import yaml

from orchestrator.faults.base import FaultDriver
from orchestrator.model.undo import Undo
from tests.fixtures.toxiproxy import free_port

ROOT = Path(__file__).resolve().parents[1]
DRILLCTL = str(Path(sys.executable).parent / "drillctl")
UPSTREAM = str(ROOT / "demo" / "upstream.py")


def upstream_process(name: str, port: int) -> dict[str, Any]:
    """The demo upstream (stdlib HTTP server) as a supervised local process."""
    return {
        "name": name,
        "argv": [sys.executable, UPSTREAM, "--port", str(port)],
        "ready": {"probe": {"type": "http", "name": f"{name}-ready", "url": f"http://127.0.0.1:{port}/healthz"}},
    }


def drill_behind_created_proxy(
    toxiproxy_url: str, interval: str, phases: dict[str, str], faults: list[dict[str, Any]]
) -> dict[str, Any]:
    """The upstream as node `n` behind proxy `up`, which is created on the server first so that it outlives the run
    and can be checked after it; probe `path` connects through the proxy."""
    upstream_port, proxy_port = free_port(), free_port()
    body = {"name": "up", "listen": f"127.0.0.1:{proxy_port}", "upstream": f"127.0.0.1:{upstream_port}"}
    requests.post(toxiproxy_url + "/proxies", json=body, timeout=5).raise_for_status()
    return drill(
        targets={
            "local": {
                "processes": [upstream_process("upstream", upstream_port)],
                "nodes": [{"name": "n", "processes": ["upstream"]}],
            }
        },
        proxies=[body],
        steady_state={
            "interval": interval,
            "probes": [{"type": "tcp", "name": "path", "host": "127.0.0.1", "port": proxy_port, "timeout": "500ms"}],
        },
        phases=phases,
        faults=faults,
    )


def drill(name: str = "test-drill", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"phases": {"baseline": "1s", "recovery": "10s"}}
    body.update(spec)
    return {"apiVersion": "drillctl.dev/v1", "kind": "Drill", "metadata": {"name": name}, "spec": body}


def proxied_upstream_drill(
    name: str,
    *,
    interval: str,
    probe_timeout: str,
    phases: dict[str, str],
    faults: list[dict[str, Any]],
    slas: list[dict[str, Any]],
) -> dict[str, Any]:
    """The demo upstream behind Toxiproxy proxy `up`, sampled through it by the http probe `stock` (free ports)."""
    upstream, proxy = free_port(), free_port()
    probe = {"type": "http", "name": "stock", "url": f"http://127.0.0.1:{proxy}/stock", "timeout": probe_timeout}
    return drill(
        name,
        targets={"local": {"processes": [upstream_process("upstream", upstream)]}},
        proxies=[{"name": "up", "listen": f"127.0.0.1:{proxy}", "upstream": f"127.0.0.1:{upstream}"}],
        steady_state={"interval": interval, "probes": [probe]},
        phases=phases,
        faults=faults,
        slas=slas,
    )


def write(tmp_path: Path, document: dict[str, Any], name: str = "drill.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def run(*args: str, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DRILLCTL, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT, env=_env()
    )


def _env() -> dict[str, str]:
    return {**os.environ, "NO_COLOR": "1"}


def run_dirs(runs_dir: Path) -> list[Path]:
    """The run directories in a runs folder, without the history store beside them (history.sqlite)."""
    return sorted(p for p in runs_dir.iterdir() if p.is_dir())


def report_of(runs_dir: Path) -> dict[str, Any]:
    """The report.json of the only run in `runs_dir`."""
    (run_dir,) = run_dirs(runs_dir)
    document: dict[str, Any] = json.loads((run_dir / "report.json").read_text())
    return document


def samples(report: dict[str, Any], probe: str) -> list[dict[str, Any]]:
    columns = report["samples"]["columns"]
    return [dict(zip(columns, row, strict=True)) for row in report["samples"]["rows"] if row[0] == probe]


def wait_while_running(
    proc: subprocess.Popen[str] | subprocess.Popen[bytes] | None,
    condition: Callable[[], bool],
    timeout: float,
    what: str,
) -> None:
    """Poll a real component until `condition`; fail at once, with drillctl's output, if drillctl ended."""
    deadline = time.monotonic() + timeout
    while not condition():
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            detail = ""
            if proc is not None:
                proc.kill()
                out, err = proc.communicate(timeout=30)
                detail = f" (drillctl exit {proc.returncode}):\n{out!s}\n{err!s}"
            raise AssertionError(f"gave up waiting for {what}{detail}")
        time.sleep(0.05)


async def prepared_and_injected(driver: FaultDriver[Any], spec: Any, step_id: str) -> Undo:
    """What the engine does before a fault holds: prepare (the undo record), then inject."""
    undo = await driver.prepare(spec, step_id)
    await driver.inject(spec, undo)
    return undo
