"""The same outage drill as a Chaos Toolkit experiment and as a drillctl drill, in one run.

One target (bench/target_server.py), one private toxiproxy-server, one proxy in front of the
target. The outage: 2 s of steady state, the proxy disabled for 3 s, then 3 s of recovery,
the target probed over HTTP through the proxy every 100 ms. Chaos Toolkit (pinned below,
installed into bench/.peer-venv from PyPI the first time) runs it as a JSON experiment with
chaostoolkit-toxiproxy's disable/enable actions and its continuous hypothesis strategy;
drillctl runs it as a drill. For each tool: wall time, exit code, number of probe samples,
and what it reports about the outage; for Chaos Toolkit the outage window is derived here
from its journal's timestamps (it computes none). Then each tool again, interrupted with
SIGINT (to its process group, as a terminal's Ctrl-C) 1 s into the outage: its exit, and what
the Toxiproxy API shows afterwards (proxy still disabled? toxics left?).

    .venv/bin/python bench/vs_chaostoolkit.py
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
import yaml
from sampler_scale import start_targets

from orchestrator.toxiproxy_client import ToxiproxyClient
from orchestrator.toxiproxy_server import LocalToxiproxy

ROOT = Path(__file__).resolve().parents[1]
PEER_VENV = ROOT / "bench" / ".peer-venv"
PEER = ["chaostoolkit==1.19.0", "chaostoolkit-toxiproxy==0.3.1"]
BASELINE, OUTAGE, RECOVERY, INTERVAL = 2.0, 3.0, 3.0, 0.1


def peer() -> Path:
    """`chaos` with the Toxiproxy extension, pinned, in a venv of its own."""
    chaos = PEER_VENV / "bin" / "chaos"
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True, timeout=300)
    probe = subprocess.run([str(python), "-c", "import chaostoxi"], capture_output=True, timeout=60)
    if probe.returncode != 0 or not chaos.exists():
        subprocess.run([str(PEER_VENV / "bin" / "pip"), "install", "-q", *PEER], check=True, timeout=900)
    return chaos


def experiment(toxiproxy: str, probe_url: str) -> dict[str, Any]:
    def proxy_action(name: str, func: str, **pauses: float) -> dict[str, Any]:
        action: dict[str, Any] = {
            "type": "action",
            "name": name,
            "provider": {
                "type": "python",
                "module": "chaostoxi.proxy.actions",
                "func": func,
                "arguments": {"proxy_name": "target"},
            },
        }
        if pauses:
            action["pauses"] = pauses
        return action

    return {
        "version": "1.0.0",
        "title": "The target survives its proxy going down for 3s",
        "description": "Side by side with the drillctl drill of the same name (bench/vs_chaostoolkit.py).",
        "configuration": {"toxiproxy_url": toxiproxy},
        "steady-state-hypothesis": {
            "title": "The target answers 200",
            "probes": [
                {
                    "type": "probe",
                    "name": "target-answers",
                    "tolerance": 200,
                    "provider": {"type": "http", "url": probe_url, "timeout": 1},
                }
            ],
        },
        "method": [
            proxy_action("disable-proxy", "disable_proxy", before=BASELINE, after=OUTAGE),
            proxy_action("enable-proxy", "enable_proxy", after=RECOVERY),
        ],
        "rollbacks": [proxy_action("enable-proxy-rollback", "enable_proxy")],
    }


def ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def drill(toxiproxy: str, listen: str, upstream: str, probe_url: str) -> dict[str, Any]:
    return {
        "apiVersion": "drillctl.dev/v1",
        "kind": "Drill",
        "metadata": {"name": "side-by-side", "description": "The target survives its proxy going down for 3s"},
        "spec": {
            "toxiproxy": {"url": toxiproxy},
            "proxies": [{"name": "target", "listen": listen, "upstream": upstream}],
            "steady_state": {
                "interval": ms(INTERVAL),
                "probes": [{"name": "target", "type": "http", "url": probe_url, "timeout": "1s"}],
            },
            "phases": {"baseline": ms(BASELINE), "fault": ms(OUTAGE), "recovery": ms(RECOVERY)},
            "faults": [
                {"name": "outage", "type": "network.down", "proxy": "target", "start": "0s", "duration": ms(OUTAGE)}
            ],
            "slas": [
                {
                    "name": "target-recovers",
                    "type": "recovery_window",
                    "from": "fault_end",
                    "fault": "outage",
                    "max": "2s",
                    "stable_for": "500ms",
                }
            ],
        },
    }


def ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def chaos_view(journal: dict[str, Any]) -> str:
    """What Chaos Toolkit's journal says, plus the outage window derived from its timestamps."""
    states = journal.get("steady_states") or {}
    checks = [states.get("before"), *(states.get("during") or []), states.get("after")]
    runs = [p for c in checks if c for p in c.get("probes", [])]
    failed = [r for r in runs if not r.get("tolerance_met", True) or r.get("status") != "succeeded"]
    disable = next((r for r in journal.get("run", []) if r["activity"]["name"] == "disable-proxy"), None)
    enable = next((r for r in journal.get("run", []) if r["activity"]["name"] == "enable-proxy"), None)
    text = (
        f"status {journal.get('status')}, deviated {journal.get('deviated')}, {len(runs)} probe runs, "
        f"{len(failed)} failed"
    )
    if failed and disable and enable:
        first_fail = min(ts(r["start"]) for r in failed)
        last_fail = max(ts(r["start"]) for r in failed)
        after = [ts(r["start"]) for r in runs if ts(r["start"]) > last_fail and r not in failed]
        back = min(after) if after else None
        down, up = ts(disable["end"]), ts(enable["end"])
        text += (
            f"; derived here: first failed check {first_fail - down:+.3f}s from the disable, "
            f"first passing check after the outage {back - up if back else float('nan'):+.3f}s from the enable, "
            f"failing span {last_fail - first_fail:.3f}s (true outage {up - down:.3f}s)"
        )
    return text


def drillctl_view(report: dict[str, Any]) -> str:
    (window,) = report["recovery_windows"]
    (fault,) = report["faults"]
    (sla,) = report["slas"]
    impact, recover = window["time_to_impact"], window["time_to_recover"]
    return (
        f"status {report['run']['status']}, {len(report['samples']['rows'])} samples (the recovery phase ends "
        f"once every recovery window is measured); outage injected at {fault['injected_at']:.3f}s, reverted at "
        f"{fault['reverted_at']:.3f}s ({fault['reverted_at'] - fault['injected_at']:.3f}s); unavailability "
        f"{window['unavailability']:.3f}s, time to impact {impact:.3f}s, time to recover {recover:.3f}s "
        f"(resolution {window['resolution']:.3f}s); SLA {sla['name']}: passed {sla['passed']}, measured "
        f"{sla['measured']:.3f}s of {sla['threshold']:g}s"
    )


def proxy_state(url: str) -> str:
    proxy = requests.get(f"{url}/proxies/target", timeout=5).json()
    return f"proxy enabled: {proxy['enabled']}, toxics: {[t['name'] for t in proxy.get('toxics', [])]}"


def wait_disabled(url: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if not requests.get(f"{url}/proxies/target", timeout=5).json()["enabled"]:
            return True
        time.sleep(0.02)
    return False


def run_tool(name: str, argv: list[str], toxiproxy: str, interrupt: bool, cwd: Path) -> None:
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if interrupt:
            if not wait_disabled(toxiproxy, time.monotonic() + 30):
                print(f"  {name}: the proxy never went down")
            time.sleep(1.0)
            os.killpg(proc.pid, signal.SIGINT)
            interrupted = time.monotonic()
        output, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
    wall = time.monotonic() - started
    if interrupt:
        print(
            f"  {name:9} SIGINT 1s into the outage: exit {proc.returncode} "
            f"after {time.monotonic() - interrupted:.2f}s; Toxiproxy afterwards: {proxy_state(toxiproxy)}"
        )
    else:
        print(f"  {name:9} wall {wall:.2f}s, exit {proc.returncode}")
        if proc.returncode not in (0, 1):
            print(output.decode(errors="replace")[-2000:])


async def shared_toxiproxy(log: Path, target_port: int) -> tuple[LocalToxiproxy, str, str]:
    server = LocalToxiproxy(log, seed=None)
    url = await server.start()
    proxy = await ToxiproxyClient(url).create_proxy("target", "127.0.0.1:0", f"127.0.0.1:{target_port}")
    return server, url, str(proxy["listen"])


def main() -> None:
    chaos = peer()
    target, ports = start_targets()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        loop = asyncio.new_event_loop()
        server, url, listen = loop.run_until_complete(shared_toxiproxy(tmp / "toxiproxy.log", ports["http"]))
        try:
            probe_url = f"http://{listen}/"
            (tmp / "experiment.json").write_text(json.dumps(experiment(url, probe_url), indent=1))
            (tmp / "drill.yaml").write_text(yaml.safe_dump(drill(url, listen, f"127.0.0.1:{ports['http']}", probe_url)))
            ctk = [
                str(chaos),
                "run",
                "--hypothesis-strategy",
                "continuously",
                "--hypothesis-frequency",
                str(INTERVAL),
                "--journal-path",
                str(tmp / "journal.json"),
                str(tmp / "experiment.json"),
            ]
            drillctl_bin = str(Path(sys.executable).parent / "drillctl")
            dctl = [drillctl_bin, "run", str(tmp / "drill.yaml"), "--runs-dir", str(tmp / "runs"), "--quiet"]
            print(
                f"outage drill: {BASELINE:g}s steady, proxy down {OUTAGE:g}s, {RECOVERY:g}s recovery, "
                f"HTTP probe every {INTERVAL * 1e3:.0f}ms through Toxiproxy ({url})"
            )
            print("Full runs:")
            run_tool("chaos", ctk, url, False, tmp)
            print(f"    reports: {chaos_view(json.loads((tmp / 'journal.json').read_text()))}")
            run_tool("drillctl", dctl, url, False, tmp)
            (report,) = (tmp / "runs").glob("*/report.json")
            print(f"    reports: {drillctl_view(json.loads(report.read_text()))}")
            print("Interrupted runs:")
            for name, argv in (("chaos", ctk), ("drillctl", dctl)):
                requests.post(f"{url}/proxies/target", json={"enabled": True}, timeout=5).raise_for_status()
                run_tool(name, argv, url, True, tmp)
        finally:
            loop.run_until_complete(server.stop())
            loop.close()
            target.kill()
            target.wait()


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"(bench took {time.monotonic() - started:.1f}s)")
