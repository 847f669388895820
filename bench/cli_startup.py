"""Start-up cost of the CLI, against Chaos Toolkit's `chaos` in the same run.

Times `drillctl --help` and `drillctl validate` of the quickstart, and `chaos --help`, over
repeated runs. The peer is installed into bench/.peer-venv from PyPI the first time.

    .venv/bin/python bench/cli_startup.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEER_VENV = ROOT / "bench" / ".peer-venv"
PEER_VERSION = "chaostoolkit==1.19.0"
RUNS = 15


def timed(argv: list[str]) -> list[float]:
    out = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=60)
        out.append(time.perf_counter() - started)
    return out


def peer() -> Path:
    chaos = PEER_VENV / "bin" / "chaos"
    if not chaos.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True, timeout=300)
        subprocess.run([str(PEER_VENV / "bin" / "pip"), "install", "-q", PEER_VERSION], check=True, timeout=600)
    return chaos


def main() -> None:
    drillctl = str(Path(sys.executable).parent / "drillctl")
    quickstart = str(ROOT / "drills" / "examples" / "quickstart.yaml")
    rows = {
        "drillctl --help": timed([drillctl, "--help"]),
        "drillctl validate quickstart": timed([drillctl, "validate", quickstart]),
        f"chaos --help ({PEER_VERSION})": timed([str(peer()), "--help"]),
    }
    for name, times in rows.items():
        print(
            f"{name:42} median {statistics.median(times) * 1e3:7.1f}ms  min {min(times) * 1e3:7.1f}ms  "
            f"max {max(times) * 1e3:7.1f}ms  ({RUNS} runs)"
        )


if __name__ == "__main__":
    main()
