"""Soak: no fault outlives its drill, whatever happens to `drillctl run`.

A short quickstart-style drill (a real Toxiproxy server, real processes: a latency toxic on a proxy,
stop-the-world pauses of the upstream, a libfaketime clock skew of a second process) is run again
and again, and the orchestrator is killed with SIGKILL at random moments (seeded: the seed is
printed, DRILLCTL_SOAK_SEED replays it), stopped with SIGTERM, or fails at each step of its engine.
After each, with no human action, nothing may be left: no drillctl toxic and no disabled proxy on
the Toxiproxy server, no target process alive (stopped or not), no skewed clock, no journal entry
unsettled.

DRILLCTL_SOAK_KILLS (default 50) and DRILLCTL_SOAK_TERMS (default 6) raise the counts for a longer
local soak. Under load (a CPU hog on every core, and the run's own event loop kept busy mid-fault) a
healthy run must live and end by itself, and a frozen one must still be rolled back. A last case
kills runs mid node.loss (cordon + taint) on a private KWOK node of the real test cluster and checks
the node comes back uncordoned and untainted (DRILLCTL_SOAK_KUBE_KILLS).
"""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from orchestrator.journal import pending, read_entries
from orchestrator.targets import faketime
from orchestrator.targets.local import process_state
from orchestrator.targets.procfs import proc_files
from tests.fixtures.toxiproxy import ToxiproxyServer, free_port
from tests.kube.support import Pool, kube_api, pool, wait_for
from tests.kube.test_leftovers import is_restored
from tests.support import DRILLCTL, drill, run_dirs, upstream_process, wait_while_running, write

__all__ = ["kube_api", "pool"]

SEED = int(os.environ.get("DRILLCTL_SOAK_SEED", "20261128"))
KILLS = int(os.environ.get("DRILLCTL_SOAK_KILLS", "50"))
TERMS = int(os.environ.get("DRILLCTL_SOAK_TERMS", "6"))
SETTLE_BOUND = 30.0
"""Generous: the watchdog reverts within about a second; stopping targets may take its grace of 3s."""
HOG_BOUND = 180.0
"""A CPU hog ends by itself after this long, even if the test that started it never stops it."""


@dataclass(frozen=True)
class Soak:
    toxiproxy: ToxiproxyServer
    drill_file: Path
    ports: tuple[int, ...]

    def start(self, runs: Path, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [DRILLCTL, "run", str(self.drill_file), "--runs-dir", str(runs), "--toxiproxy-url", self.toxiproxy.url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "NO_COLOR": "1", **env},
        )


@pytest.fixture
def soak(tmp_path: Path, toxiproxy: ToxiproxyServer) -> Iterator[Soak]:
    upstream_port, proxy_port, clock_port = free_port(), free_port(), free_port()
    proxy = {"name": "up", "listen": f"127.0.0.1:{proxy_port}", "upstream": f"127.0.0.1:{upstream_port}"}
    requests.post(toxiproxy.url + "/proxies", json=proxy, timeout=5).raise_for_status()
    document = drill(
        name="soak",
        targets={
            "local": {
                "processes": [
                    upstream_process("upstream", upstream_port),
                    {**upstream_process("clocky", clock_port), "clock": "faketime"},
                ],
                "nodes": [{"name": "a", "processes": ["upstream"]}],
            }
        },
        proxies=[proxy],
        steady_state={
            "interval": "100ms",
            "tolerance": 1.0,
            "probes": [{"type": "tcp", "name": "path", "host": "127.0.0.1", "port": proxy_port, "timeout": "300ms"}],
        },
        phases={"baseline": "300ms", "fault": "1800ms", "recovery": "500ms"},
        faults=[
            {"name": "slow", "type": "network.latency", "proxy": "up", "latency": "100ms", "duration": "1600ms"},
            {
                "name": "pause",
                "type": "gc.pause",
                "target": "a",
                "pause": "200ms",
                "every": "400ms",
                "duration": "1600ms",
            },
            {"name": "skew", "type": "clock.skew", "target": "clocky", "offset": "+90s", "duration": "1600ms"},
        ],
    )
    yield Soak(toxiproxy, write(tmp_path, document), (upstream_port, clock_port))


def _targets_alive(ports: tuple[int, ...]) -> list[str]:
    """Target processes of the soak drill still alive, by their unique port on the command line."""
    found = []
    wanted = [str(p).encode() for p in ports]
    for pid, cmdline in proc_files("cmdline"):
        argv = cmdline.split(b"\0")
        if b"--port" in argv and any(w in argv for w in wanted):
            state = process_state(pid)
            if state not in (None, "Z"):
                found.append(f"process {pid} ({b' '.join(argv).decode()}) in state {state}")
    return found


def _watchdog_running(run_dir: Path) -> bool:
    needle = f"orchestrator.watchdog\0{run_dir}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes() and process_state(int(entry.name)) != "Z":
                    return True
            except OSError:
                continue
    return False


def leftovers(soak: Soak, runs: Path) -> list[str]:
    """Everything a drill may have left behind; must be empty."""
    left = []
    for name, proxy in soak.toxiproxy.get("/proxies").json().items():
        left += [f"toxic {t['name']} on proxy {name}" for t in proxy["toxics"] if t["name"].startswith("drillctl-")]
        if not proxy["enabled"]:
            left.append(f"proxy {name} disabled")
    left += _targets_alive(soak.ports)
    for journal in runs.glob("*/journal.jsonl"):
        left += [f"unsettled {u.step_id}" for u in pending(journal)]
        for entry in read_entries(journal):
            if entry["event"] == "prepared" and entry["driver"] == "local.clock_skew":
                for clock in entry["state"]["clocks"]:
                    offset = faketime.read_offset(Path(clock["file"]))
                    if offset != clock["previous"]:
                        left.append(f"clock of {clock['file']} still at {offset}")
    return left


def _wait(condition: Any, bound: float) -> bool:
    deadline = time.monotonic() + bound
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _summary(kind: str, times: list[float]) -> str:
    if not times:
        return f"{kind}: no revert was needed"
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return (
        f"{kind}: n={len(times)} min {ordered[0]:.3f}s median {statistics.median(ordered):.3f}s "
        f"p90 {p90:.3f}s max {ordered[-1]:.3f}s"
    )


@pytest.fixture
def cpu_hogs() -> Iterator[int]:
    """One process spinning on every core for the length of a test: the machine of a loaded CI runner."""
    spin = f"import time\nend = time.monotonic() + {HOG_BOUND}\nwhile time.monotonic() < end:\n    pass\n"
    hogs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(os.cpu_count() or 2)]
    try:
        yield len(hogs)
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait(timeout=10)


def test_sigkill_at_random_moments_leaves_nothing(soak: Soak, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    print(f"\nsoak seed {SEED} (DRILLCTL_SOAK_SEED={SEED} replays it), {KILLS} kills")
    revert_times: list[float] = []
    dirty: list[str] = []
    for i in range(KILLS):
        runs = tmp_path / f"kill-{i}"
        delay = rng.uniform(0.2, 3.5)
        proc = soak.start(runs)
        time.sleep(delay)
        killed = time.monotonic()
        proc.kill()
        proc.communicate(timeout=30)
        for run_dir in runs.glob("*"):
            assert _wait(lambda d=run_dir: not _watchdog_running(d), SETTLE_BOUND), f"kill {i}: watchdog still busy"
            summary = run_dir / "watchdog.json"
            if summary.exists() and (facts := json.loads(summary.read_text()))["reverted"]:
                revert_times.append(facts["reverted_monotonic"] - killed)
        left = leftovers(soak, runs)
        dirty += [f"kill {i} at {delay:.3f}s: {item}" for item in left]
        # Let the next run start clean even after a leftover, so one failure does not hide others.
        if left:
            soak.toxiproxy.reset()
            requests.post(soak.toxiproxy.url + "/proxies/up", json={"enabled": True}, timeout=5)
    print(f"kills {KILLS} ({len(revert_times)} with faults to revert), leftovers {len(dirty)}")
    print(_summary("SIGKILL -> watchdog reverted all", revert_times))
    assert dirty == []
    assert revert_times, "some kills must land mid-fault for the soak to prove anything"


def test_sigterm_at_random_moments_reverts_and_leaves_nothing(soak: Soak, tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    print(f"\nsoak seed {SEED + 1}, {TERMS} SIGTERMs")
    exit_times: list[float] = []
    dirty: list[str] = []
    codes = []
    for i in range(TERMS):
        runs = tmp_path / f"term-{i}"
        delay = rng.uniform(0.8, 3.0)
        proc = soak.start(runs)
        # From the moment the run has its directory (its signal handlers follow at once): on a loaded machine
        # Python's start-up alone can outlast the shortest delay, and a SIGTERM then ends a process that has
        # done nothing yet, which proves nothing about rollback.
        wait_while_running(proc, functools.partial(_started, runs), 60, "the run to start")
        time.sleep(delay)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        exit_times.append(time.monotonic() - sent)
        codes.append(proc.returncode)
        assert proc.returncode in (0, 1, 3, 4), err
        dirty += [f"SIGTERM {i} at {delay:.3f}s: {item}" for item in leftovers(soak, runs)]
    print(f"SIGTERMs {TERMS}, exit codes {codes}, leftovers {len(dirty)}")
    print(_summary("SIGTERM -> exited, all reverted", exit_times))
    assert dirty == []
    assert 4 in codes, "some SIGTERMs must land after injection"


def test_under_cpu_load_healthy_runs_live_and_a_frozen_one_is_rolled_back(
    soak: Soak, tmp_path: Path, cpu_hogs: int
) -> None:
    """With every core taken by a hog: a plain run, and one whose event loop computes for several seconds
    mid-fault (longer than the watchdog's no-beat timeout), end by themselves; a frozen one is killed and
    rolled back by its watchdog."""
    for case, env in (("plain", {}), ("busy", {"DRILLCTL_TEST_FAIL_AT": "injected:slow:busy"})):
        runs = tmp_path / case
        proc = soak.start(runs, **env)
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, f"{case}: {err}"
        (run_dir,) = run_dirs(runs)
        summary = run_dir / "watchdog.json"
        # Not killed. Under this load its watchdog may still revert a fault whose deadline came first.
        assert not summary.exists() or json.loads(summary.read_text())["ending"] == "done", case
        assert leftovers(soak, runs) == [], case

    runs = tmp_path / "frozen"
    proc = soak.start(runs)
    assert _wait(lambda: bool(soak.toxiproxy.get("/proxies/up/toxics").json()), 60), "the latency fault"
    frozen = time.monotonic()
    proc.send_signal(signal.SIGSTOP)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    (run_dir,) = run_dirs(runs)
    assert _wait(lambda: not _watchdog_running(run_dir), SETTLE_BOUND), "watchdog still busy"
    summary = json.loads((run_dir / "watchdog.json").read_text())
    print(f"\n{cpu_hogs} CPU hogs: frozen -> reverted in {summary['reverted_monotonic'] - frozen:.3f}s")
    assert summary["ending"] == "hung"
    assert leftovers(soak, runs) == []


CHECKPOINTS = [
    ("preflight", (3,)),
    ("setup", (3,)),
    ("baseline", (3,)),
    ("prepare:pause", (3, 4)),
    ("inject:slow", (4,)),
    ("injected:skew", (4,)),
    ("hold:pause", (4,)),
    ("revert:slow", (4,)),
    ("recovery", (4,)),
]


@pytest.mark.parametrize(("checkpoint", "codes"), CHECKPOINTS, ids=[c for c, _ in CHECKPOINTS])
def test_a_failure_at_each_engine_step_leaves_nothing(
    soak: Soak, tmp_path: Path, checkpoint: str, codes: tuple[int, ...]
) -> None:
    """The failure comes from the engine's test-only hook: a driver failing at one precise step
    (say, between inject and its journal entry) cannot be produced for real. Everything else is real."""
    runs = tmp_path / "runs"
    proc = soak.start(runs, DRILLCTL_TEST_FAIL_AT=checkpoint)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in codes, err
    (run_dir,) = run_dirs(runs)
    report = json.loads((run_dir / "report.json").read_text())
    assert f"failure injected at {checkpoint}" in (report["run"]["reason"] or "") or checkpoint.startswith("revert:"), (
        report["run"]
    )
    if checkpoint.startswith("revert:"):
        # The run could not revert it; its watchdog retried after the run ended, and says so.
        assert report["rollback"]["failed"], report["rollback"]
        watchdog = json.loads((run_dir / "watchdog.json").read_text())
        assert [s.rsplit("/", 1)[1] for s in watchdog["reverted"]] == [checkpoint.split(":")[1]]
    assert leftovers(soak, runs) == []


def test_two_quick_ctrl_c_mid_fault_still_revert_everything(soak: Soak, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    proc = soak.start(runs)
    assert _wait(lambda: bool(soak.toxiproxy.get("/proxies/up/toxics").json()), 30), "the latency fault"
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    # And an impatient user's further Ctrl-Cs, all through the rollback (once the report is written,
    # drillctl gives Ctrl-C back its usual meaning: a game day runs several drills in one process).
    (run_dir,) = run_dirs(runs)
    repeats = 0
    while proc.poll() is None and time.monotonic() < sent + 60:
        if sum(e["event"] == "reverted" for e in read_entries(run_dir / "journal.jsonl")) == 3:
            break
        proc.send_signal(signal.SIGINT)
        repeats += 1
        time.sleep(0.01)
    _, err = proc.communicate(timeout=60)
    print(f"two quick SIGINTs and {repeats} more -> exited in {time.monotonic() - sent:.3f}s")
    assert proc.returncode == 4, err
    assert soak.toxiproxy.get("/proxies/up").json()["toxics"] == []
    assert leftovers(soak, runs) == []
    report = json.loads((run_dir / "report.json").read_text())
    assert report["run"]["stopped_by"]["kind"] == "signal" and report["run"]["stopped_by"]["name"] == "SIGINT"


KUBE_KILLS = int(os.environ.get("DRILLCTL_SOAK_KUBE_KILLS", "3"))


def test_sigkill_mid_node_loss_leaves_no_node_cordoned_or_tainted(pool: Pool, tmp_path: Path) -> None:
    """The real test cluster (KWOK nodes of a private pool): node.loss crash = cordon + NoExecute taint."""
    node = pool.add_node()
    document = drill(
        name="soak-kube",
        targets={"kubernetes": {"namespace": pool.namespace}},
        steady_state={"interval": "100ms", "probes": [{"type": "command", "name": "noop", "argv": ["true"]}]},
        phases={"baseline": "300ms", "fault": "20s", "recovery": "1s"},
        faults=[{"name": "lose", "type": "node.loss", "nodes": {"names": [node]}, "mode": "crash", "duration": "20s"}],
    )
    path = write(tmp_path, document, "kube.yaml")
    rng = random.Random(SEED + 2)
    times = []
    for i in range(KUBE_KILLS):
        runs = tmp_path / f"kube-{i}"
        cluster = ["--kubeconfig", str(pool.kubeconfig), "--namespace", pool.namespace]
        proc = subprocess.Popen(
            [DRILLCTL, "run", str(path), "--runs-dir", str(runs), "--quiet", *cluster],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for("the node to be cordoned", lambda: pool.node(node)["spec"].get("unschedulable"), timeout=60)
        time.sleep(rng.uniform(0.0, 0.5))
        killed = time.monotonic()
        proc.kill()
        proc.communicate(timeout=30)
        wait_for("the node to be restored", lambda: is_restored(pool, node), timeout=SETTLE_BOUND)
        (run_dir,) = run_dirs(runs)
        assert _wait(lambda d=run_dir: not _watchdog_running(d), SETTLE_BOUND)
        assert pending(run_dir / "journal.jsonl") == []
        times.append(json.loads((run_dir / "watchdog.json").read_text())["reverted_monotonic"] - killed)
    print(f"\nkube node-loss kills {KUBE_KILLS}, leftovers 0; {_summary('SIGKILL -> node restored', times)}")


def _started(runs: Path) -> bool:
    """The run has its directory and control FIFO: its signal handlers are installed right after."""
    return runs.exists() and any((d / "control").exists() for d in run_dirs(runs))
