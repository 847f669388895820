"""Measurement accuracy against ground truth: outages of known length, and a frozen target.

Part 1. A real Toxiproxy proxy in front of the benchmark target (bench/target_server.py) is
disabled for D ms, over and over, while the real open-loop Sampler probes it over HTTP (a new
connection per sample, drillctl's default) at a fixed interval. Ground truth comes from the API
round trips: the outage starts at the midpoint of the disable call and ends at the midpoint of
the enable call (the bounds, both ends of each call, are printed as the truth's own
uncertainty). Each trial starts at a random phase of the sampling grid. Errors are printed
both against the midpoints and as the distance beyond those bounds (0 inside them): on a loaded
machine a slow API call alone moves the midpoint. On the Sampler's timeline, drillctl's own
analysis gives:
- unavailability (`analysis.unavailability`) against the true outage length;
- recovery from the fault's start (`analysis.recovered_at` after the disable) against it too.
Errors (measured - true) at p50/p99/max of |error| against the goal: p99 within one interval + 2 ms.
With `--before FILE` (another `analysis.py`, e.g. from `git archive`), the same timelines are also
measured by that analysis: a paired comparison that the machine's load cannot tilt.

Part 2. The target process is frozen (SIGSTOP) for 1 s while sampled every 20 ms: the samples
show the stall as a run of slow samples at the sampling cadence (counted against 1 s / 20 ms),
not as one slow sample (no coordinated omission).

    .venv/bin/python bench/accuracy.py                    # 100 trials at 10, 50 and 100 ms
    .venv/bin/python bench/accuracy.py --trials 20 --intervals 0.02
    .venv/bin/python bench/accuracy.py --before /tmp/before-timing/orchestrator/analysis.py
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import itertools
import os
import random
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from sampler_scale import start_targets

from orchestrator import analysis
from orchestrator.analysis import percentile
from orchestrator.model.spec import HttpProbe as HttpSpec
from orchestrator.model.timeline import Timeline
from orchestrator.probes.http import HttpProbe
from orchestrator.sampling import Recorder, Sampler, default_max_in_flight
from orchestrator.toxiproxy_client import ToxiproxyClient
from orchestrator.toxiproxy_server import LocalToxiproxy

OUTAGE = (0.25, 0.35)  # random per trial, so that it is no multiple of the interval
STALL = 1.0


@dataclass(frozen=True)
class Trial:
    disable: tuple[float, float]  # before and after the API call, seconds since t0
    enable: tuple[float, float]

    @property
    def true_length(self) -> float:
        return sum(self.enable) / 2 - sum(self.disable) / 2

    @property
    def bounds(self) -> tuple[float, float]:
        """Shortest and longest outage the API round trips allow."""
        return self.enable[0] - self.disable[1], self.enable[1] - self.disable[0]


def probe_spec(name: str, url: str, timeout: str) -> HttpSpec:
    return HttpSpec.model_validate({"type": "http", "name": name, "url": url, "timeout": timeout})


async def outages(client: ToxiproxyClient, url: str, interval: float, trials: int) -> tuple[Timeline, list[Trial]]:
    """One sampler over the whole series; trials spaced so each one's samples stand alone."""
    spec = probe_spec("target", url, "1s")
    limit = default_max_in_flight(spec.timeout, interval)
    probe, recorder = HttpProbe(spec, limit), Recorder()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    sampler = asyncio.create_task(Sampler(probe, interval, t0, limit, recorder).run())
    out: list[Trial] = []
    rng = random.Random(7)
    try:
        for _ in range(trials):
            await asyncio.sleep(3 * interval + 0.2 + rng.uniform(0, interval))
            a = loop.time()
            await client.set_enabled("target", False)
            b = loop.time()
            await asyncio.sleep(rng.uniform(*OUTAGE) - (b - a) / 2)
            c = loop.time()
            await client.set_enabled("target", True)
            d = loop.time()
            out.append(Trial((a - t0, b - t0), (c - t0, d - t0)))
        await asyncio.sleep(3 * interval + 0.2)
    finally:
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
        await probe.close()
    samples = tuple(recorder.samples)
    return Timeline(interval, ("target",), samples, (), (), samples[-1].at if samples else 0.0), out


def beyond(value: float, lo: float, hi: float) -> float:
    """How far `value` falls outside [lo, hi]; 0 inside."""
    return value - hi if value > hi else value - lo if value < lo else 0.0


def load_analysis(path: Path) -> ModuleType:
    """Another version of `orchestrator/analysis.py`, as a module of its own beside today's."""
    spec = importlib.util.spec_from_file_location("analysis_before", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def errors(timeline: Timeline, trials: list[Trial], measure: ModuleType = analysis) -> dict[str, list[float]]:
    """Per trial, measured - truth: against the midpoints, and beyond the bounds of the API round trips."""
    interval = timeline.interval
    stable = 3 * interval
    out: dict[str, list[float]] = {k: [] for k in ("unavail", "unavail_bounds", "recovery", "recovery_bounds")}
    for t in trials:
        start, end = t.disable[0] - interval, t.enable[1] + 2 * interval
        fault_start = sum(t.disable) / 2
        measured = measure.unavailability(timeline, ["target"], start, end)
        out["unavail"].append(measured - t.true_length)
        out["unavail_bounds"].append(beyond(measured, *t.bounds))
        back = measure.recovered_at(timeline, ["target"], fault_start, stable)
        window = back - fault_start if back is not None else float("inf")
        out["recovery"].append(window - t.true_length)
        out["recovery_bounds"].append(beyond(window, t.enable[0] - fault_start, t.enable[1] - fault_start))
    return out


def summary(label: str, values: list[float], goal: float | None = None) -> str:
    magnitudes = sorted(abs(v) for v in values)
    p99 = percentile(magnitudes, 99) or 0.0
    verdict = "" if goal is None else f"  goal <= {goal * 1e3:.0f}ms: {'met' if p99 <= goal else 'MISSED'}"
    return (
        f"  {label:43} |err| p50 {(percentile(magnitudes, 50) or 0) * 1e3:6.2f}ms  p99 {p99 * 1e3:6.2f}ms  "
        f"max {magnitudes[-1] * 1e3:6.2f}ms  (signed {min(values) * 1e3:+6.2f}..{max(values) * 1e3:+6.2f}ms){verdict}"
    )


async def part_one(target_port: int, intervals: list[float], trials: int, before: Path | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = LocalToxiproxy(Path(tmp) / "toxiproxy.log", seed=None)
        url = await server.start()
        try:
            client = ToxiproxyClient(url)
            proxy = await client.create_proxy("target", "127.0.0.1:0", f"127.0.0.1:{target_port}")
            probe_url = f"http://{proxy['listen']}/"
            print(
                f"Part 1: proxy disabled for {OUTAGE[0] * 1e3:.0f}-{OUTAGE[1] * 1e3:.0f}ms (random per trial), "
                f"{trials} trials per interval (Toxiproxy {url})"
            )
            previous = None if before is None else load_analysis(before)
            for interval in intervals:
                timeline, done = await outages(client, probe_url, interval, trials)
                lengths = sorted(t.true_length for t in done)
                spread = sorted(hi - lo for lo, hi in (t.bounds for t in done))
                print(
                    f"interval {interval * 1e3:.0f}ms: {len(timeline.samples)} samples, true outage "
                    f"p50 {(percentile(lengths, 50) or 0) * 1e3:.2f}ms (API round trips leave "
                    f"p50 {(percentile(spread, 50) or 0) * 1e3:.2f}ms, max {spread[-1] * 1e3:.2f}ms of doubt)"
                )
                lags = sorted(s.lag for s in timeline.samples if s.lag is not None)
                print(
                    f"  sampler lag p50 {(percentile(lags, 50) or 0) * 1e3:.2f}ms p99 "
                    f"{(percentile(lags, 99) or 0) * 1e3:.2f}ms max {lags[-1] * 1e3:.2f}ms"
                )
                goal = interval + 0.002
                for label, measure in (("", analysis), (" (before)", previous)):
                    if measure is None:
                        continue
                    found = errors(timeline, done, measure)
                    print(summary("unavailability vs midpoints" + label, found["unavail"], goal))
                    print(summary("unavailability beyond the bounds" + label, found["unavail_bounds"], goal))
                    print(summary("recovery from start vs midpoints" + label, found["recovery"], goal))
                    print(summary("recovery from start beyond bounds" + label, found["recovery_bounds"], goal))
        finally:
            await server.stop()


async def part_two(target_port: int, pid: int) -> None:
    interval = 0.02
    spec = probe_spec("frozen", f"http://127.0.0.1:{target_port}/", "2s")
    limit = default_max_in_flight(spec.timeout, interval)
    probe, recorder = HttpProbe(spec, limit), Recorder()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    sampler = asyncio.create_task(Sampler(probe, interval, t0, limit, recorder).run())
    await asyncio.sleep(1.0)
    stop_at = loop.time() - t0
    os.kill(pid, signal.SIGSTOP)
    await asyncio.sleep(STALL)
    os.kill(pid, signal.SIGCONT)
    cont_at = loop.time() - t0
    await asyncio.sleep(1.0)
    sampler.cancel()
    await asyncio.gather(sampler, return_exceptions=True)
    await probe.close()
    samples = sorted(recorder.samples, key=lambda s: s.at)
    frozen = [s for s in samples if stop_at <= s.at < cont_at]
    waited = [s for s in frozen if not s.ok or (s.latency or 0) >= cont_at - s.at - 0.005]
    slow = [s for s in samples if not s.ok or (s.latency or 0) > 0.1]
    ats = [s.at for s in frozen]
    on_grid = all(round((b - a) / interval) == 1 for a, b in itertools.pairwise(ats))
    print(f"\nPart 2: target frozen (SIGSTOP) for {(cont_at - stop_at) * 1e3:.0f}ms, sampled every 20ms over HTTP")
    print(
        f"  samples scheduled during the freeze: {len(frozen)}, expected {(cont_at - stop_at) / interval:.0f} "
        f"(the stall / the interval), one per 20ms tick: {on_grid}; of them {len(waited)} waited for the thaw "
        f"(latency >= time left to the thaw - 5ms) or failed"
    )
    if frozen:
        print(
            f"  latency of the first: {(frozen[0].latency or 0) * 1e3:.0f}ms, of the last: "
            f"{(frozen[-1].latency or 0) * 1e3:.0f}ms; samples slower than 100ms in the whole run: {len(slow)} "
            f"(a closed-loop poller would have recorded one)"
        )
    print(f"  samples in total: {len(samples)} over {samples[-1].at:.2f}s ({len(samples) / samples[-1].at:.1f}/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--intervals", type=float, nargs="+", default=[0.01, 0.05, 0.1], help="seconds")
    parser.add_argument("--before", type=Path, help="another analysis.py to measure the same timelines with")
    args = parser.parse_args()
    proc, ports = start_targets()
    try:
        asyncio.run(part_one(ports["http"], args.intervals, args.trials, args.before))
        asyncio.run(part_two(ports["http"], proc.pid))
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"(bench took {time.monotonic() - started:.1f}s)")
