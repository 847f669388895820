"""Open-loop sampling (drillctl) against closed-loop polling (the peers' way), in the same run.

A real demo upstream is frozen with SIGSTOP for 1s in the middle of a 6s window, while two
samplers probe it over HTTP every 20ms:
- open loop: sample k starts at t0 + k*interval, whatever the earlier samples do (drillctl);
- closed loop: probe, then sleep one interval, as Chaos Toolkit's continuous checks do.
It prints how many samples each took, how much of the freeze each saw, latency percentiles,
and the scheduling lag of the open-loop sampler. Nothing is asserted: these are figures.

    .venv/bin/python bench/sampler_cadence.py
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from orchestrator.analysis import percentile, unavailability
from orchestrator.model.spec import HttpProbe as HttpSpec
from orchestrator.model.timeline import Sample, Timeline
from orchestrator.probes.http import HttpProbe
from orchestrator.sampling import Recorder, Sampler, default_max_in_flight

INTERVAL = 0.02
WINDOW = 6.0
FREEZE_AT, FREEZE_FOR = 2.5, 1.0
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def closed_loop(probe: HttpProbe, t0: float, until: float, out: list[Sample]) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        at = loop.time() - t0
        seen = await probe.observe()
        out.append(Sample(probe.name, at, "fault", seen.ok, seen.latency, 0.0, seen.error))
        await asyncio.sleep(INTERVAL)


async def freeze(pid: int, t0: float) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, t0 + FREEZE_AT - loop.time()))
    os.kill(pid, signal.SIGSTOP)
    await asyncio.sleep(FREEZE_FOR)
    os.kill(pid, signal.SIGCONT)


async def measure(port: int, server_pid: int) -> tuple[list[Sample], list[Sample]]:
    """Both samplers over the same window against the same target, frozen once in the middle."""
    await asyncio.sleep(0.5)
    spec = HttpSpec.model_validate(
        {"type": "http", "name": "target", "url": f"http://127.0.0.1:{port}/stock", "timeout": "2s"}
    )
    limit = default_max_in_flight(spec.timeout, INTERVAL)
    open_probe, closed_probe = HttpProbe(spec, limit), HttpProbe(spec, 1)
    recorder = Recorder()
    t0 = asyncio.get_running_loop().time()
    closed: list[Sample] = []
    sampler = asyncio.create_task(Sampler(open_probe, INTERVAL, t0, limit, recorder).run())
    await asyncio.gather(
        closed_loop(closed_probe, t0, t0 + WINDOW, closed), freeze(server_pid, t0), asyncio.sleep(WINDOW)
    )
    sampler.cancel()
    await asyncio.gather(sampler, return_exceptions=True)
    await open_probe.close()
    await closed_probe.close()
    return recorder.samples, closed


def main() -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "demo" / "upstream.py"), "--port", str(port)], stdout=subprocess.DEVNULL
    )
    try:
        open_loop, closed = asyncio.run(measure(port, server.pid))
    finally:
        server.kill()
        server.wait()
    report("open loop (drillctl)", open_loop)
    report("closed loop (peers)", closed)
    lags = sorted(s.lag for s in open_loop if s.lag is not None)
    print(
        f"\nopen-loop scheduling lag: p50 {percentile(lags, 50) * 1e3:.2f}ms  "
        f"p99 {percentile(lags, 99) * 1e3:.2f}ms  max {lags[-1] * 1e3:.2f}ms"
    )


def report(name: str, samples: list[Sample]) -> None:
    latencies = sorted(s.latency for s in samples if s.latency is not None)
    slow = [s for s in samples if s.latency is not None and s.latency > 0.1]
    # A sample slower than 100ms ran into the freeze: count it as down to see how long each saw it.
    as_failures = tuple(
        Sample(s.probe, s.at, s.phase, s.ok and (s.latency or 0) <= 0.1, s.latency, s.lag) for s in samples
    )
    degraded = unavailability(Timeline(INTERVAL, ("target",), as_failures, (), ()), ["target"], 0.0, WINDOW)
    print(
        f"{name:22} samples {len(samples):4d} ({len(samples) / WINDOW:5.1f}/s)  slow samples {len(slow):3d}  "
        f"degraded {degraded:5.2f}s of {FREEZE_FOR:.2f}s frozen  p50 {percentile(latencies, 50) * 1e3:7.2f}ms  "
        f"p99 {percentile(latencies, 99) * 1e3:7.2f}ms  max {latencies[-1] * 1e3:7.2f}ms"
    )


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"(bench took {time.monotonic() - started:.1f}s)")
