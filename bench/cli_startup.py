"""Start-up cost of the CLI, against Chaos Toolkit's `chaos` in the same run.

Times, as whole processes over repeated runs: `drillctl --help`, `drillctl validate` of the
quickstart, `drillctl validate` of 100 generated drills (one process; copies of the quickstart
under distinct names, with its runbook beside them) and `chaos --help`. The peer is installed
into bench/.peer-venv from PyPI the first time (`--no-peer` leaves it out). Beside the wall time,
each process's CPU time (user + system, from wait4): on a shared machine the wall time measures
the neighbours too. Goal: validate of 100 drills < 200 ms, no slower than `chaos --help` plus the
work itself.

Each command runs once untimed first, with bytecode cached in a private folder
(PYTHONPYCACHEPREFIX, PYTHONDONTWRITEBYTECODE unset): what an installed drillctl does, since pip
writes the bytecode at install. With PYTHONDONTWRITEBYTECODE=1 in the environment and an editable
install, every run compiles drillctl's modules again (32-41 ms of CPU for the validate path on
this machine at load ~5); `--compile-each-run` measures that way, with the caller's environment.

    .venv/bin/python bench/cli_startup.py
    .venv/bin/python bench/cli_startup.py --no-peer --runs 30
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEER_VENV = ROOT / "bench" / ".peer-venv"
PEER_VERSION = "chaostoolkit==1.19.0"
PROCESS_TIMEOUT = 60.0


def timed(argv: list[str], runs: int, env: dict[str, str] | None) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + system) seconds of each run of `argv` as a process of its own, after one untimed.
    The wait is wait4's blocking one (a timer kills a process past PROCESS_TIMEOUT): a wait with a timeout
    polls, up to 50 ms apart, and would round every figure up to its next look."""
    walls, cpus = [], []
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True, timeout=60)
    for _ in range(runs):
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        killer = threading.Timer(PROCESS_TIMEOUT, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        walls.append(time.perf_counter() - started)
        cpus.append(usage.ru_utime + usage.ru_stime)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, argv)
    return walls, cpus


def peer() -> Path:
    chaos = PEER_VENV / "bin" / "chaos"
    if not chaos.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True, timeout=300)
        subprocess.run([str(PEER_VENV / "bin" / "pip"), "install", "-q", PEER_VERSION], check=True, timeout=600)
    return chaos


def hundred_drills(folder: Path) -> Path:
    """100 valid drills in `folder/drills`, with the runbook they link to in `folder/runbooks`."""
    quickstart = (ROOT / "drills" / "examples" / "quickstart.yaml").read_text()
    shutil.copytree(ROOT / "runbooks", folder / "runbooks")
    drills = folder / "drills"
    drills.mkdir()
    for i in range(100):
        text = quickstart.replace("name: quickstart\n", f"name: quickstart-{i:03d}\n", 1)
        (drills / f"drill-{i:03d}.yaml").write_text(text)
    return drills


def main(runs: int, with_peer: bool, compile_each_run: bool) -> None:
    drillctl = str(Path(sys.executable).parent / "drillctl")
    quickstart = str(ROOT / "drills" / "examples" / "quickstart.yaml")
    peer_row = f"chaos --help ({PEER_VERSION})"
    with tempfile.TemporaryDirectory() as tmp:
        drills = hundred_drills(Path(tmp))
        env = None
        if not compile_each_run:
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "bytecode")
        rows = {
            "drillctl --help": timed([drillctl, "--help"], runs, env),
            "drillctl validate quickstart": timed([drillctl, "validate", quickstart], runs, env),
            "drillctl validate 100 drills (1 process)": timed([drillctl, "validate", str(drills)], runs, env),
        }
        if with_peer:
            rows[peer_row] = timed([str(peer()), "--help"], runs, env)
    reference = statistics.median(rows[peer_row][0]) if with_peer else None
    for name, (walls, cpus) in rows.items():
        ratio = "" if reference is None else f"  x{statistics.median(walls) / reference:.2f} chaos --help"
        print(
            f"{name:42} median {statistics.median(walls) * 1e3:7.1f}ms  min {min(walls) * 1e3:7.1f}ms  "
            f"max {max(walls) * 1e3:7.1f}ms  cpu median {statistics.median(cpus) * 1e3:6.1f}ms  ({runs} runs){ratio}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-peer", action="store_true", help="leave out chaos --help (no bench/.peer-venv)")
    parser.add_argument("--compile-each-run", action="store_true", help="no bytecode cache: the caller's environment")
    args = parser.parse_args()
    print(f"bytecode: {'as the environment says' if args.compile_each_run else 'cached (a private prefix)'}")
    main(args.runs, not args.no_peer, args.compile_each_run)
