"""A long game day: one hour at 1,000 samples/s (3.6 million samples), compressed in time.

The samples of a synthetic hour (10 probes at 100 Hz; failure bursts, latency spikes, three
outages) go through the real path of a run: `Recorder.add` into the in-memory `SampleLog` and
the `samples.bin` stream, as fast as Python makes them. Then the real analysis and report
(`build_report`), every renderer, and a re-render from report.json as `drillctl report` does.
It prints peak RSS (VmHWM) after each stage, bytes per sample in memory and on disk, report.json's
size, and the time of each stage (the analysis's index, probe stats, recovery windows, SLA
verdicts, the chart series) and renderer. Nothing is asserted: these are figures.

    .venv/bin/python bench/long_gameday.py                      # the hour
    .venv/bin/python bench/long_gameday.py --seconds 600        # ten minutes
    .venv/bin/python bench/long_gameday.py --no-analysis        # stream + report without analysis
"""

from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from orchestrator.analysis import index_of, judge, probe_stats, recovery_windows
from orchestrator.loading import load_drill
from orchestrator.logs import redact
from orchestrator.model.timeline import FaultMark, PhaseMark, Sample, Timeline
from orchestrator.reporting.html import render_html
from orchestrator.reporting.json_report import read_report, render_json
from orchestrator.reporting.junit import render_junit
from orchestrator.reporting.markdown import render_markdown
from orchestrator.reporting.report import DrillInfo, Report, RunFacts, build_report, environment
from orchestrator.reporting.series import summarize
from orchestrator.sampling import Recorder

T = TypeVar("T")
PROBES = ("orders", "inventory", "payments", "search", "cart", "users", "auth", "shipping", "pricing", "media")
DRILL = """\
apiVersion: drillctl.dev/v1
kind: Drill
metadata: {{name: long-gameday, description: An hour of sampling at 1000 samples/s.}}
spec:
  proxies: [{{name: db, listen: "127.0.0.1:25432", upstream: "127.0.0.1:5432"}}]
  steady_state:
    interval: {interval_ms}ms
    probes:
{probes}
  phases: {{baseline: {baseline}s, fault: {fault}s, recovery: {recovery}s}}
  faults:
{faults}
  slas:
    - {{name: recovers, type: recovery_window, from: fault_end, max: 30s, stable_for: 5s}}
    - {{name: fault-errors, type: error_rate, phase: fault, max: 0.05}}
    - {{name: orders-latency, type: latency, probe: orders, phase: fault, p99: 50ms}}
"""


READBACK = """
import sys, time
from pathlib import Path
from orchestrator.sample_store import read_samples
start = time.perf_counter()
back = read_samples(Path(sys.argv[1]))
took = time.perf_counter() - start
hwm = next(int(l.split()[1]) for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
print(f"samples.bin read back by another process: {len(back):,} samples in {took:.1f}s; "
      f"its peak RSS {hwm / 1024:.0f} MB")
"""


def hwm_mb() -> float:
    """Peak resident set of this process so far (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def outages(seconds: float) -> list[tuple[str, float, float]]:
    """Three faults spread over the fault phase (20, 45 and 8 s in an hour): (name, start, end) in run time."""
    base, fault = seconds * 0.1, seconds * 0.75
    return [
        (f"outage-{k}", round(base + fault * f, 3), round(base + fault * (f + d), 3))
        for k, (f, d) in enumerate(((0.1, 0.0075), (0.45, 0.0165), (0.8, 0.003)))
    ]


def generate(recorder: Recorder, seconds: float, rate: int, seed: int) -> None:
    """Samples of every probe at `rate` in all; outages fail everything, bursts fail one probe a while."""
    rnd = random.Random(seed)
    interval = len(PROBES) / rate
    faults = outages(seconds)
    baseline_end, fault_end = seconds * 0.1, seconds * 0.85
    burst_until = {p: -1.0 for p in PROBES}
    spike_until = -1.0
    for k in range(int(seconds / interval)):
        at = round(k * interval, 9)
        phase = "baseline" if at < baseline_end else "fault" if at < fault_end else "recovery"
        recorder.phase = phase
        down = next((name for name, start, end in faults if start <= at < end + 1.5), None)
        if rnd.random() < 2e-5:
            spike_until = at + rnd.uniform(0.5, 3.0)
        for probe in PROBES:
            if rnd.random() < 5e-6:
                burst_until[probe] = at + rnd.uniform(0.2, 2.0)
            lag = rnd.expovariate(1 / 0.0004)
            if down is not None:
                port = 40000 + k % 20000
                error = f"connect to 127.0.0.1:{port} failed: ECONNREFUSED ({down})"
                recorder.add(Sample(probe, at, phase, False, rnd.uniform(0.0001, 0.001), lag, error))
            elif at < burst_until[probe]:
                recorder.add(Sample(probe, at, phase, False, 0.5, lag, f"timeout after 500ms ({probe})"))
            else:
                latency = rnd.lognormvariate(-6.2, 0.35) * (40 if at < spike_until else 1)
                recorder.add(Sample(probe, at, phase, True, latency, lag))


def drill_file(folder: Path, seconds: float, rate: int) -> Path:
    interval_ms = len(PROBES) / rate * 1000
    probes = "\n".join(
        f"      - {{name: {p}, type: tcp, host: 127.0.0.1, port: {25432 + i}, timeout: 500ms}}"
        for i, p in enumerate(PROBES)
    )
    faults = "\n".join(
        f"      - {{name: {name}, type: network.down, proxy: db, start: {start - seconds * 0.1:.3f}s, "
        f"duration: {end - start:.3f}s}}"
        for name, start, end in outages(seconds)
    )
    text = DRILL.format(
        interval_ms=f"{interval_ms:g}",
        probes=probes,
        baseline=f"{seconds * 0.1:g}",
        fault=f"{seconds * 0.75:g}",
        recovery=f"{seconds * 0.15:g}",
        faults=faults,
    )
    path = folder / "long-gameday.yaml"
    path.write_text(text)
    return path


def timed(label: str, results: dict[str, float], call: Callable[[], T]) -> T:
    start = time.perf_counter()
    value = call()
    results[label] = time.perf_counter() - start
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3600.0, help="run time simulated (default: an hour)")
    parser.add_argument("--rate", type=int, default=1000, help="samples per second, all probes together")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-analysis", action="store_true", help="report without SLAs, windows and stats")
    args = parser.parse_args()
    seconds, rate = args.seconds, args.rate
    times: dict[str, float] = {}
    folder = Path(tempfile.mkdtemp(prefix="drillctl-long-"))
    drill = load_drill(drill_file(folder, seconds, rate))
    print(f"{seconds:g}s at {rate} samples/s over {len(PROBES)} probes; run directory {folder}")
    print(f"peak RSS at start (modules loaded): {hwm_mb():.0f} MB")

    recorder = Recorder(folder / "samples.bin", clean=redact)
    timed("stream", times, lambda: generate(recorder, seconds, rate, args.seed))
    samples_file = recorder.close()
    log = recorder.samples
    n = len(log)
    print(
        f"streamed {n:,} samples in {times['stream']:.1f}s ({n / times['stream']:,.0f}/s, "
        f"{times['stream'] / n * 1e6:.2f} us each); peak RSS {hwm_mb():.0f} MB"
    )
    assert samples_file is not None
    print(
        f"in memory: {log.nbytes() / n:.1f} bytes/sample ({log.nbytes() / 1e6:.0f} MB, "
        f"{len(log.errors) - 1} distinct error texts kept); on disk: {samples_file.bytes / n:.1f} bytes/sample "
        f"({samples_file.bytes / 1e6:.0f} MB)"
    )

    faults = tuple(
        FaultMark(name, "network.down", {"proxy": "db"}, start, end, start + 0.003, end + 0.004, ended_at=end)
        for name, start, end in outages(seconds)
    )
    phases = (
        PhaseMark("baseline", 0.0, seconds * 0.1),
        PhaseMark("fault", seconds * 0.1, seconds * 0.85),
        PhaseMark("recovery", seconds * 0.85, seconds),
    )
    interval = len(PROBES) / rate
    timeline = Timeline(interval, PROBES, log, phases, faults, seconds, samples_file)
    now = datetime.now(UTC)
    facts = RunFacts(folder.name, folder, now, now, "completed", None, True, [f.name for f in faults], [], None, {})
    if args.no_analysis:
        report = timed(
            "report",
            times,
            lambda: Report(
                drill=DrillInfo(drill.spec.name, drill.path, drill.spec.metadata.description, None, None, 0),
                facts=facts,
                timeline=timeline,
                verdicts=[],
                windows=[],
                stats=[],
                runbooks={},
                environment=environment(),
                series=summarize(timeline),
            ),
        )
        print(f"series only (no analysis) in {times['report']:.1f}s; peak RSS {hwm_mb():.0f} MB")
    else:
        stages = {
            "index": lambda: index_of(log),
            "probe_stats": lambda: probe_stats(timeline),
            "recovery_windows": lambda: recovery_windows(drill.spec, timeline),
            "judge": lambda: judge(drill.spec, timeline),
            "series": lambda: summarize(timeline),
        }
        for stage, call in stages.items():
            timed(stage, times, call)
            print(f"  {stage:<17} {times[stage]:6.2f}s  peak RSS {hwm_mb():.0f} MB")
        analysis = sum(times[stage] for stage in stages)
        report = timed("report", times, lambda: build_report(drill, facts, timeline))
        print(
            f"analysis + series {analysis:.1f}s (the stages above, as build_report runs them); build_report again "
            f"on the memoized index {times['report']:.1f}s; peak RSS {hwm_mb():.0f} MB"
        )
    assert report.series is not None
    print(f"series: {len(report.series.buckets)} buckets of {report.series.width:g}s")

    renders = {"json": render_json, "md": render_markdown, "html": render_html, "junit": render_junit}
    names = {"json": "report.json", "md": "report.md", "html": "report.html", "junit": "report.junit.xml"}
    for fmt, render in renders.items():
        text = timed(fmt, times, lambda render=render: render(report))
        (folder / names[fmt]).write_text(text, encoding="utf-8")
        print(f"  {names[fmt]:<17} {len(text.encode()) / 1024:8.0f} KB  rendered in {times[fmt] * 1000:7.0f} ms")
    print(f"peak RSS after rendering: {hwm_mb():.0f} MB")

    again = timed("reread", times, lambda: read_report(folder))
    for fmt, render in renders.items():
        timed(f"re-{fmt}", times, lambda render=render: render(again))
    total = times["reread"] + sum(times[f"re-{f}"] for f in renders)
    same = all(render(again) == (folder / names[f]).read_text(encoding="utf-8") for f, render in renders.items())
    print(
        f"drillctl report (read report.json + 4 renderers): {total:.2f}s "
        f"(read {times['reread']:.2f}s); identical to the run's own: {same}"
    )
    readback = subprocess.run(  # another process, as any reader of samples.bin is: not both logs in one
        [sys.executable, "-c", READBACK, str(folder / "samples.bin")], capture_output=True, text=True, timeout=600
    )
    print(readback.stdout.strip() or readback.stderr.strip())


if __name__ == "__main__":
    main()
