"""How fast `drillctl freeze` stops running drills: 1 and 3 runs at once, each mid-fault (a 50 s latency toxic); then
a game day in a 60 s cool-down between two drills; with a kubeconfig, a lone run of a drill that names the cluster.

Real `drillctl run` processes, each with its upstream and a private toxiproxy-server (`toxiproxy.url: auto`). For each
round, once every run has injected its toxic, `drillctl freeze -o json` is run. Printed per round: the freeze
command's own time, each run's time from the request to its report written (`waited`: the run closed its control
FIFO), each fault's revert after the freeze (the journal's `reverted` entry, wall clock), the runs' exit codes and
the journals left unsettled. For the game day (`drillctl gameday run` of the drills of tests/gameday/test_run.py),
once its first drill has ended: the game day's `waited` (the request to its report written, its control FIFO
closed), the freeze command's own time and the game day's exit code. With a kubeconfig (the test cluster's:
`scripts/k8s/up.sh` prints it), a run of a drill with `targets.kubernetes` is frozen by the cluster's freeze
ConfigMap, created as `drillctl freeze --cluster` creates it (`ClusterFreeze.write`, timed here without the command's
start-up): its fault's revert after the ConfigMap was created and after the run heard the freeze (through its
watch), its exit code. Nothing is asserted: these are figures.

    .venv/bin/python bench/freeze_stop.py [rounds per size, default 5] [KUBECONFIG]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from orchestrator.freeze import new_freeze  # noqa: E402
from orchestrator.journal import read_entries  # noqa: E402
from orchestrator.kube.access import KubeAccess, connect  # noqa: E402
from orchestrator.kube.freeze import ClusterFreeze  # noqa: E402
from orchestrator.recovery import unsettled  # noqa: E402
from tests.gameday.test_run import short_drill  # noqa: E402
from tests.support import DRILLCTL, proxied_upstream_drill, write  # noqa: E402

SIZES = (1, 3)


def long_fault_drill(name: str) -> dict[str, Any]:
    """The demo upstream behind a proxy with 50 ms of latency for 50 s."""
    return proxied_upstream_drill(
        name,
        interval="100ms",
        probe_timeout="1s",
        phases={"baseline": "300ms", "fault": "60s", "recovery": "1s"},
        faults=[{"name": "slow", "type": "network.latency", "proxy": "up", "latency": "50ms", "duration": "50s"}],
        slas=[],
    )


def reached(procs: list[subprocess.Popen[bytes]], condition: Callable[[], bool], timeout: float = 120) -> bool:
    """Poll until `condition`; False (every process killed) when one ends first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            for p in procs:
                p.kill()
                p.wait()
            return False
        time.sleep(0.05)
    return True


def timed_freeze(runs: Path) -> tuple[float, dict[str, Any]]:
    """`drillctl freeze -o json` on `runs`: how long it took, and what it printed."""
    began = time.monotonic()
    frozen = subprocess.run(
        [DRILLCTL, "freeze", "--reason", "bench", "--runs-dir", str(runs), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    document: dict[str, Any] = json.loads(frozen.stdout)
    return time.monotonic() - began, document


def start_runs(folder: Path, count: int) -> tuple[Path, list[subprocess.Popen[bytes]]]:
    runs = folder / "runs"
    procs = []
    for i in range(count):
        path = write(folder, long_fault_drill(f"frozen-{i}"), f"drill-{i}.yaml")
        procs.append(
            subprocess.Popen(
                [DRILLCTL, "run", str(path), "--runs-dir", str(runs), "--quiet"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    return runs, procs


def injected(runs: Path) -> int:
    journals = list(runs.glob("*/journal.jsonl")) if runs.exists() else []
    return sum(any(e["event"] == "injected" for e in read_entries(j)) for j in journals)


def reverted_at(run_dir: Path) -> float | None:
    walls = [float(e["wall"]) for e in read_entries(run_dir / "journal.jsonl") if e["event"] == "reverted"]
    return max(walls) if walls else None


def heard_at(run_dir: Path) -> float | None:
    """When the run heard the freeze: its log's `stop_requested` line (wall clock, as the journal's)."""
    for line in (run_dir / "drill.log.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if entry.get("event") == "stop_requested":
            return datetime.fromisoformat(entry["timestamp"]).timestamp()
    return None


def one_round(count: int) -> tuple[list[float], str]:
    with tempfile.TemporaryDirectory() as tmp:
        runs, procs = start_runs(Path(tmp), count)
        if not reached(procs, lambda: injected(runs) >= count):
            return [], "the runs did not all reach their faults"
        sent = time.time()
        took, frozen = timed_freeze(runs)
        codes = [p.wait(timeout=60) for p in procs]
        stopped = frozen["stopped"]
        waited = sorted(s["waited"] for s in stopped)
        dirs = [Path(s["run_dir"]) for s in stopped]
        reverts = sorted(r - sent for d in dirs if (r := reverted_at(d)) is not None)
        heard = [(h, r) for d in dirs if (h := heard_at(d)) is not None and (r := reverted_at(d)) is not None]
        line = (
            f"freeze {took:.3f}s; runs ended {', '.join(f'{w:.3f}s' for w in waited)} after the request; faults "
            f"reverted {', '.join(f'{r:.3f}s' for r in reverts)} after the command started, "
            f"{', '.join(f'{r - h:.3f}s' for h, r in heard)} after the run heard it; exit codes {codes}; "
            f"unsettled journals {len(unsettled(runs))}"
        )
        return waited, line


def gameday_round() -> tuple[float | None, str]:
    """A game day of two drills 60 s apart, frozen once its first drill has ended (in the cool-down)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder, runs = Path(tmp), Path(tmp) / "runs"
        write(folder, short_drill("first", "2s"), "first.yaml")
        write(folder, short_drill("second", "2s"), "second.yaml")
        body = {"drills": ["first.yaml", "second.yaml"], "cooldown": "60s"}
        day = {"apiVersion": "drillctl.dev/v1", "kind": "GameDay", "metadata": {"name": "bench"}, "spec": body}
        path = write(folder, day, "gameday.yaml")
        proc = subprocess.Popen(
            [DRILLCTL, "gameday", "run", str(path), "--runs-dir", str(runs), "--quiet"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def first_ended() -> bool:
            return any(not (r.parent / "control").exists() for r in runs.glob("first-*/report.json"))

        if not reached([proc], first_ended):
            return None, "the first drill did not end"
        took, frozen = timed_freeze(runs)
        code = proc.wait(timeout=60)
        (stopped,) = frozen["stopped"]
        line = (
            f"game day in its cool-down ended {stopped['waited']:.3f}s after the request ({stopped['status']}); "
            f"freeze {took:.3f}s; exit code {code}"
        )
        return float(stopped["waited"]), line


def cluster_round(kubeconfig: str, namespace: str) -> tuple[float | None, str]:
    """A lone run of a drill that names the cluster, mid-fault, frozen by `drillctl freeze --cluster`."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        runs = folder / "runs"
        document = long_fault_drill("cluster-frozen")
        document["spec"]["targets"]["kubernetes"] = {"namespace": namespace}
        path = write(folder, document, "drill.yaml")
        kube = ["--kubeconfig", kubeconfig]
        proc = subprocess.Popen(
            [DRILLCTL, "run", str(path), "--runs-dir", str(runs), "--quiet", *kube, "--freeze-namespace", namespace],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not reached([proc], lambda: injected(runs) >= 1):
            return None, "the run did not reach its fault"
        freeze = ClusterFreeze(connect(KubeAccess(kubeconfig)), namespace)
        sent = time.time()
        asyncio.run(freeze.write(new_freeze("bench", datetime.now(UTC))))  # what `drillctl freeze --cluster` does
        written = time.time()
        code = proc.wait(timeout=60)
        asyncio.run(freeze.clear())
        (run_dir,) = [d for d in runs.iterdir() if d.is_dir()]
        reverted, heard = reverted_at(run_dir), heard_at(run_dir)
        if reverted is None or heard is None:
            return None, f"no revert or no stop in the run's journal and log; exit code {code}"
        line = (
            f"fault reverted {reverted - written:.3f}s after the freeze ConfigMap was created (the call took "
            f"{written - sent:.3f}s), {reverted - heard:.3f}s after the run heard it; exit code {code}; unsettled "
            f"journals {len(unsettled(runs))}"
        )
        return reverted - written, line


def cluster_rounds(rounds: int, kubeconfig: str) -> None:
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
    namespace = f"bench-freeze-{int(time.time())}"
    api.create_namespace({"metadata": {"name": namespace}})
    try:
        print(f"a lone Kubernetes run frozen by the cluster's freeze, {rounds} rounds:")
        figures: list[float] = []
        for _ in range(rounds):
            figure, line = cluster_round(kubeconfig, namespace)
            figures += [] if figure is None else [figure]
            print(f"  {line}", flush=True)
        if figures:
            median, most = statistics.median(figures), max(figures)
            print(f"  reverted after the ConfigMap was created: median {median:.3f}s, max {most:.3f}s")
    finally:
        api.delete_namespace(namespace)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    if len(sys.argv) > 2:
        cluster_rounds(rounds, sys.argv[2])
    for count in SIZES:
        print(f"{count} run(s) at once, {rounds} rounds:")
        ended: list[float] = []
        for _ in range(rounds):
            waited, line = one_round(count)
            ended += waited
            print(f"  {line}", flush=True)
        if ended:
            print(f"  runs ended after the freeze: median {statistics.median(ended):.3f}s, max {max(ended):.3f}s")
    print(f"a game day in a 60 s cool-down, {rounds} rounds:")
    days: list[float] = []
    for _ in range(rounds):
        day, line = gameday_round()
        days += [] if day is None else [day]
        print(f"  {line}", flush=True)
    if days:
        print(f"  game days ended after the freeze: median {statistics.median(days):.3f}s, max {max(days):.3f}s")


if __name__ == "__main__":
    main()
