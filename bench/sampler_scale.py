"""The open-loop sampler at scale: N HTTP and N TCP probes at 10-100 Hz each, one process.

The targets run in a process of their own (bench/target_server.py), so they do not share the
orchestrator's event loop. For each scenario it prints achieved samples/s (and how many were
ok), cadence lag p50/p99/max (how late each sample really started) and the orchestrator's CPU
per 1,000 samples (resource.getrusage of this process, user + system) and its garbage
collections (how many full ones, the longest pause: a collection stops the loop). On a shared
2-core machine, repeat a scenario (--repeat) before believing one p99. Goal: >= 5,000 HTTP
samples/s with p99 lag < 2 ms. Nothing is asserted.

    .venv/bin/python bench/sampler_scale.py                      # the default matrix
    .venv/bin/python bench/sampler_scale.py --http 50 --tcp 0 --hz 100 --reuse --loop uvloop
    .venv/bin/python bench/sampler_scale.py --http 50 --hz 100 --reuse --profile /tmp/scale.html
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.analysis import percentile
from orchestrator.model.spec import HttpProbe as HttpSpec
from orchestrator.model.spec import TcpProbe as TcpSpec
from orchestrator.probes.base import Probe
from orchestrator.probes.http import HttpProbe
from orchestrator.probes.tcp import TcpProbe
from orchestrator.sampling import Recorder, Sampler, default_max_in_flight

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 0.5


@dataclass(frozen=True)
class Scenario:
    http: int
    tcp: int
    hz: float
    reuse: bool
    loop: str
    seconds: float

    def label(self) -> str:
        conn = "keep-alive" if self.reuse else "new conn"
        return f"{self.http:3d} http + {self.tcp:3d} tcp @ {self.hz:g} Hz, {conn:10}, {self.loop:7}"


@dataclass(frozen=True)
class Figures:
    planned: float
    achieved: float
    http_rate: float
    ok_ratio: float
    lag_p50: float
    lag_p99: float
    lag_max: float
    cpu_per_1000: float
    gc_full: int
    gc_max_pause: float


def start_targets() -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "target_server.py")], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError("target server did not start")
    return proc, json.loads(line)


def probes_for(s: Scenario, ports: dict[str, int]) -> list[Probe]:
    interval = 1.0 / s.hz
    out: list[Probe] = []
    for i in range(s.http):
        spec = HttpSpec.model_validate(
            {
                "type": "http",
                "name": f"http{i:03d}",
                "url": f"http://127.0.0.1:{ports['http']}/",
                "timeout": "1s",
                "reuse_connections": s.reuse,
            }
        )
        out.append(HttpProbe(spec, default_max_in_flight(spec.timeout, interval)))
    for i in range(s.tcp):
        tcp = TcpSpec.model_validate(
            {"type": "tcp", "name": f"tcp{i:03d}", "host": "127.0.0.1", "port": ports["tcp"], "timeout": "1s"}
        )
        out.append(TcpProbe(tcp))
    return out


class GcPauses:
    """Collections and their pauses (gc.callbacks): a full collection stops the event loop."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._started))


async def measure(s: Scenario, ports: dict[str, int]) -> Figures:
    interval = 1.0 / s.hz
    probes = probes_for(s, ports)
    recorder = Recorder()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    tasks = [
        asyncio.create_task(Sampler(p, interval, t0, default_max_in_flight(p.timeout, interval), recorder).run())
        for p in probes
    ]
    await asyncio.sleep(t0 + WARMUP - loop.time())
    before = resource.getrusage(resource.RUSAGE_SELF)
    first = len(recorder.samples)
    pauses = GcPauses()
    gc.callbacks.append(pauses)
    await asyncio.sleep(t0 + WARMUP + s.seconds + 0.05 - loop.time())
    gc.callbacks.remove(pauses)
    after = resource.getrusage(resource.RUSAGE_SELF)
    landed = len(recorder.samples) - first
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for p in probes:
        await p.close()
    window = [x for x in recorder.samples if WARMUP <= x.at < WARMUP + s.seconds]
    lags = sorted(x.lag for x in window if x.lag is not None)
    http = sum(1 for x in window if x.probe.startswith("http"))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Figures(
        planned=len(probes) * s.hz,
        achieved=len(window) / s.seconds,
        http_rate=http / s.seconds,
        ok_ratio=sum(x.ok for x in window) / len(window) if window else 0.0,
        lag_p50=percentile(lags, 50) or 0.0,
        lag_p99=percentile(lags, 99) or 0.0,
        lag_max=lags[-1] if lags else 0.0,
        cpu_per_1000=cpu / landed * 1000 if landed else float("nan"),
        gc_full=sum(1 for g, _ in pauses.pauses if g == 2),
        gc_max_pause=max((p for _, p in pauses.pauses), default=0.0),
    )


def run_in(loop: str, main: Callable[[], Coroutine[Any, Any, Figures]]) -> Figures:
    if loop == "uvloop":
        import uvloop

        return uvloop.run(main())
    return asyncio.run(main())


def show(s: Scenario, f: Figures) -> None:
    print(
        f"{s.label()}  planned {f.planned:6.0f}/s  achieved {f.achieved:6.0f}/s (http {f.http_rate:5.0f}/s, "
        f"ok {f.ok_ratio:6.1%})  lag p50 {f.lag_p50 * 1e3:6.2f}ms p99 {f.lag_p99 * 1e3:7.2f}ms "
        f"max {f.lag_max * 1e3:7.2f}ms  cpu {f.cpu_per_1000 * 1e3:6.1f}ms/1000 samples  "
        f"gc: {f.gc_full} full, longest pause {f.gc_max_pause * 1e3:5.2f}ms",
        flush=True,
    )


DEFAULT_MATRIX = [
    (10, 10, 10.0, False),
    (10, 10, 100.0, False),
    (25, 25, 100.0, False),
    (50, 0, 100.0, False),
    (50, 0, 100.0, True),
    (60, 0, 100.0, True),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--http", type=int, help="HTTP probes (with --tcp/--hz: one scenario, else the matrix)")
    parser.add_argument("--tcp", type=int, default=0)
    parser.add_argument("--hz", type=float, default=100.0)
    parser.add_argument("--reuse", action="store_true", help="HTTP keep-alive (reuse_connections: true)")
    parser.add_argument("--loop", choices=["asyncio", "uvloop", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=1, help="run each scenario this many times")
    parser.add_argument("--profile", type=Path, help="write a pyinstrument HTML profile of the run here")
    args = parser.parse_args()
    loops = ["asyncio", "uvloop"] if args.loop == "both" else [args.loop]
    matrix = [(args.http, args.tcp, args.hz, args.reuse)] if args.http is not None else DEFAULT_MATRIX
    scenarios = [
        Scenario(h, t, hz, r, lp, args.seconds) for h, t, hz, r in matrix for lp in loops for _ in range(args.repeat)
    ]
    proc, ports = start_targets()
    try:
        for s in scenarios:
            if args.profile:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.001, async_mode="disabled")
                profiler.start()
                figures = run_in(s.loop, lambda s=s: measure(s, ports))  # type: ignore[misc]
                profiler.stop()
                args.profile.write_text(profiler.output_html())
                print(profiler.output_text(unicode=False, color=False, show_all=True)[:60000])
            else:
                figures = run_in(s.loop, lambda s=s: measure(s, ports))  # type: ignore[misc]
            show(s, figures)
            gc.collect()
            time.sleep(0.5)
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"(bench took {time.monotonic() - started:.1f}s)")
