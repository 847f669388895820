"""The workload generator at rate, beside probes: one drillctl process sends N operations/s through the `http`
client to a key-value store (bench/target_server.py, a process of its own) while P HTTP probes sample at H Hz.

For each run it prints achieved operations/s and samples/s (and the share ok), the workload's schedule lag
p50/p99/max (how late each operation really started after its intended start), the probes' lag, operation
latency p50/p99 (from the intended start), CPU of this process per 1,000 operations and samples, and what the
checker found after a read-back of every key. Goal: 2,000 operations/s with p99 schedule lag < 2 ms alongside
20 probes at 100 Hz. Nothing is asserted; on a shared 2-core machine, repeat (--repeat) before believing a p99.

    .venv/bin/python bench/workload_rate.py
    .venv/bin/python bench/workload_rate.py --rate 2000 --probes 20 --hz 100 --seconds 10 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import math
import resource
import time
from pathlib import Path

from sampler_scale import WARMUP, start_targets

from orchestrator.analysis import percentile
from orchestrator.model.operations import OperationLog
from orchestrator.model.spec import HttpProbe as HttpSpec
from orchestrator.model.workload import WorkloadSpec
from orchestrator.probes.http import HttpProbe
from orchestrator.sampling import Recorder, Sampler
from orchestrator.workloads.checker import check
from orchestrator.workloads.generator import History, Workload, verify
from orchestrator.workloads.registry import build_client


async def measure(rate: float, probes: int, hz: float, seconds: float, port: int) -> str:
    url = f"http://127.0.0.1:{port}"
    spec = WorkloadSpec.model_validate(
        {"rate": rate, "keys": 10_000, "reads": 0.3, "timeout": "1s", "client": {"type": "http", "url": url}}
    )
    client = build_client(spec, Path("."))
    recorder = Recorder()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    history = History(OperationLog())
    workload = Workload(spec, client, history, t0, lambda: recorder.phase, f"bench-{time.time_ns()}/", 7)
    samplers = []
    for i in range(probes):
        probe_spec = HttpSpec.model_validate(
            {"type": "http", "name": f"p{i:02d}", "url": f"{url}/", "timeout": "1s", "reuse_connections": True}
        )
        probe = HttpProbe(probe_spec, 10)
        samplers.append((probe, asyncio.create_task(Sampler(probe, 1 / hz, t0, 10, recorder).run())))
    operating = asyncio.create_task(workload.run())
    await asyncio.sleep(t0 + WARMUP - loop.time())
    before = resource.getrusage(resource.RUSAGE_SELF)
    ops_before, samples_before = len(history.log), len(recorder.samples)
    await asyncio.sleep(t0 + WARMUP + seconds - loop.time())
    after = resource.getrusage(resource.RUSAGE_SELF)
    landed = len(history.log) - ops_before + len(recorder.samples) - samples_before
    operating.cancel()
    for _, task in samplers:
        task.cancel()
    await asyncio.gather(operating, *(t for _, t in samplers), return_exceptions=True)
    for probe, _ in samplers:
        await probe.close()
    started = time.perf_counter()
    await verify(workload, "verify", loop.time() + 60)
    verified = time.perf_counter() - started
    await client.close()
    log = history.log
    window = [i for i in range(len(log)) if WARMUP <= log.at[i] < WARMUP + seconds and log.kind[i] < 2]
    lags = sorted(log.lag[i] for i in window if not math.isnan(log.lag[i]))
    latencies = sorted(log.latency[i] for i in window if not math.isnan(log.latency[i]))
    ok = sum(log.outcome[i] == 1 for i in window)
    samples = [s for s in recorder.samples if WARMUP <= s.at < WARMUP + seconds]
    sample_lags = sorted(s.lag for s in samples if s.lag is not None)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = check(log, "http", rate, True)
    p = percentile
    return (
        f"{rate:5.0f} ops/s + {probes} probes @ {hz:g} Hz: achieved {len(window) / seconds:6.0f} ops/s "
        f"(ok {ok / max(1, len(window)):6.1%}), {len(samples) / seconds:5.0f} samples/s "
        f"(ok {sum(s.ok for s in samples) / max(1, len(samples)):6.1%})  "
        f"op lag p50 {(p(lags, 50) or 0) * 1e3:5.2f}ms p99 {(p(lags, 99) or 0) * 1e3:5.2f}ms "
        f"max {(lags[-1] if lags else 0) * 1e3:6.2f}ms  probe lag p99 {(p(sample_lags, 99) or 0) * 1e3:5.2f}ms  "
        f"op latency p50 {(p(latencies, 50) or 0) * 1e3:5.2f}ms p99 {(p(latencies, 99) or 0) * 1e3:5.2f}ms  "
        f"cpu {cpu / max(1, landed) * 1e6:5.0f}us/op-or-sample  "
        f"read-back {result.keys_verified} keys in {verified:.2f}s: lost {result.lost}, stale {result.stale_reads}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--hz", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    server, ports = start_targets()
    try:
        for _ in range(args.repeat):
            print(asyncio.run(measure(args.rate, args.probes, args.hz, args.seconds, ports["http"])), flush=True)
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
