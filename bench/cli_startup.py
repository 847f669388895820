"""Start-up cost of the CLI, against Chaos Toolkit's `chaos` in the same run.

Times, as whole processes over repeated runs: `drillctl --help`, `drillctl validate` of the
quickstart, `drillctl validate` of 100 generated drills (one process; copies of the quickstart
under distinct names, with its runbook beside them) and `chaos --help`. The peer is installed
into bench/.peer-venv from PyPI the first time. Goal: no slower than `chaos --help`.

    .venv/bin/python bench/cli_startup.py
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
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


def main() -> None:
    drillctl = str(Path(sys.executable).parent / "drillctl")
    quickstart = str(ROOT / "drills" / "examples" / "quickstart.yaml")
    chaos = str(peer())
    with tempfile.TemporaryDirectory() as tmp:
        drills = hundred_drills(Path(tmp))
        rows = {
            "drillctl --help": timed([drillctl, "--help"]),
            "drillctl validate quickstart": timed([drillctl, "validate", quickstart]),
            "drillctl validate 100 drills (1 process)": timed([drillctl, "validate", str(drills)]),
            f"chaos --help ({PEER_VERSION})": timed([chaos, "--help"]),
        }
    reference = statistics.median(rows[f"chaos --help ({PEER_VERSION})"])
    for name, times in rows.items():
        print(
            f"{name:42} median {statistics.median(times) * 1e3:7.1f}ms  min {min(times) * 1e3:7.1f}ms  "
            f"max {max(times) * 1e3:7.1f}ms  ({RUNS} runs)  x{statistics.median(times) / reference:.2f} chaos --help"
        )


if __name__ == "__main__":
    main()
