"""Open-loop sampling against real sockets: cadence holds, a hung target costs samples not cadence."""

from __future__ import annotations

import asyncio
import gc
import itertools
import math
import socket
import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.analysis import percentile
from orchestrator.model.spec import HttpProbe as HttpSpec
from orchestrator.model.spec import TcpProbe as TcpSpec
from orchestrator.model.timeline import ERROR_OVERFLOW, MAX_ERROR_CHARS, MAX_ERROR_TEXTS, Sample, SampleLog
from orchestrator.probes.http import HttpProbe
from orchestrator.probes.tcp import TcpProbe
from orchestrator.sample_store import read_samples
from orchestrator.sampling import Recorder, Sampler, default_max_in_flight
from tests.fixtures.toxiproxy import free_port
from tests.support import drill, report_of, run, upstream_process, write


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A hung server: the kernel completes connections into the backlog, nobody ever answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    yield int(sock.getsockname()[1])
    sock.close()


def test_twenty_probes_at_100ms_keep_their_cadence(tmp_path: Path) -> None:
    """Twenty samplers side by side stay on their own grids, miss no tick and keep a small lag.

    At 200 samples/s: what a loaded 2-core machine (load 8) gives one run. At 20ms (1,000 samples/s, a TCP
    handshake with a thread-per-connection upstream each) the run and its upstream need most of a core, and on
    that machine the loop fell seconds behind, samples could not start or timed out, and the baseline failed:
    a throughput figure, which belongs in bench/ (`bench/sampler_scale.py --http 0 --tcp 20 --hz 50`), not a fact
    about cadence.
    """
    port = free_port()
    probes = [
        {"type": "tcp", "name": f"p{i:02d}", "host": "127.0.0.1", "port": port, "timeout": "1s"} for i in range(20)
    ]
    document = drill(
        targets={"local": {"processes": [upstream_process("target", port)]}},
        steady_state={"interval": "100ms", "probes": probes},
        phases={"baseline": "5s", "recovery": "1s"},
    )
    path = write(tmp_path, document)
    result = run("run", str(path), "--runs-dir", str(tmp_path / "runs"), "--quiet", timeout=60)
    report = report_of(tmp_path / "runs")
    assert result.returncode == 0, result.stdout + result.stderr  # a baseline failure says why on stdout
    rows = [dict(zip(report["samples"]["columns"], r, strict=True)) for r in report["samples"]["rows"]]
    baseline = [r for r in rows if r["phase"] == "baseline"]
    per_probe = {p["name"]: [r for r in baseline if r["probe"] == p["name"]] for p in probes}
    length = report["phases"][0]["end"] - report["phases"][0]["start"]
    expected = length / 0.100
    lags = sorted(r["lag"] for r in baseline if r["lag"] is not None)
    rate = len(baseline) / length
    print(
        f"achieved {rate:.0f} samples/s of {20 / 0.100:.0f} planned; lag p50 {percentile(lags, 50) * 1000:.2f}ms "
        f"p90 {percentile(lags, 90) * 1000:.2f}ms p99 {percentile(lags, 99) * 1000:.2f}ms max {lags[-1] * 1000:.2f}ms"
    )
    for name, series in per_probe.items():
        assert len(series) >= 0.9 * expected, f"{name}: {len(series)} samples, expected about {expected:.0f}"
        ats = sorted(r["at"] for r in series)
        steps = {round((b - a) * 1000) for a, b in itertools.pairwise(ats)}
        assert steps == {100}, f"{name}: scheduled times are not on a 100ms grid: {sorted(steps)[:5]}"
    assert statistics.median(lags) < 0.050
    assert sum(r["ok"] for r in baseline) / len(baseline) > 0.99


def test_a_hung_target_shows_as_failures_at_full_cadence(silent_listener: int) -> None:
    """Closed-loop probing would take one sample per timeout; open loop keeps every tick."""

    async def scenario() -> list[Sample]:
        spec = HttpSpec.model_validate(
            {"type": "http", "name": "hung", "url": f"http://127.0.0.1:{silent_listener}/", "timeout": "300ms"}
        )
        recorder = Recorder()
        loop = asyncio.get_running_loop()
        interval = 0.02
        limit = default_max_in_flight(spec.timeout, interval)
        probe = HttpProbe(spec, limit)
        sampler = Sampler(probe, interval, loop.time(), limit, recorder)
        task = asyncio.create_task(sampler.run())
        await asyncio.sleep(1.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await probe.close()
        return list(recorder.samples)

    samples = asyncio.run(scenario())
    assert len(samples) >= 40, f"only {len(samples)} samples in 1s at 20ms: the cadence was not kept"
    timeouts = [s for s in samples if not s.ok and s.error and "timeout" in s.error]
    assert len(timeouts) >= 0.9 * len(samples), {s.error for s in samples}
    assert all(s.latency is not None and s.latency >= 0.29 for s in timeouts)


SAMPLES = [
    Sample("api", 0.0, "baseline", True, 0.0012, 0.0003),
    Sample("db", 0.0, "baseline", False, 1.0, 0.0, "timeout after 1s"),
    Sample("api", 0.02, "fault", False, None, None, "not started: 5 samples already in flight"),
    Sample("db", 0.02, "recovery", True, 0.0, -0.0),
]


def test_sample_log_reads_back_every_field_as_written() -> None:
    log = SampleLog()
    for sample in SAMPLES:
        log.append(sample)
    assert list(log) == SAMPLES
    assert len(log) == 4
    assert log[1] == SAMPLES[1] and log[-1] == SAMPLES[-1]
    assert log[1:3] == SAMPLES[1:3] and log[::-1] == SAMPLES[::-1]
    assert tuple(log) == tuple(SAMPLES)
    with pytest.raises(IndexError):
        log[4]
    with pytest.raises(IndexError):
        log[-5]


def test_sample_log_gives_the_garbage_collector_nothing_to_walk() -> None:
    """The point of the columns: a list of Sample objects adds tracked objects with every sample."""
    log = SampleLog()
    gc.collect()
    before = len(gc.get_objects())
    for i in range(20_000):
        log.append(Sample(f"p{i % 7}", i * 0.01, "fault", i % 3 != 0, 0.001 * (i % 5), 0.0, f"e{i % 11}"))
    gc.collect()
    assert len(gc.get_objects()) - before < 100
    assert math.isclose(log[19_999].at, 199.99) and log[19_999].error == f"e{19_999 % 11}"


def test_error_texts_are_cleaned_once_each_cut_and_bounded() -> None:
    """Errors that quote ports or times must not grow the log without end; each text is redacted once."""
    seen: list[str] = []

    def clean(text: str) -> str:
        seen.append(text)
        return text.replace("secret", "***")

    log = SampleLog(clean)
    for i in range(3):
        log.append(Sample("api", i * 0.1, "fault", False, None, 0.0, "refused by secret host"))
    log.append(Sample("api", 0.3, "fault", False, None, 0.0, "y" * 5000))
    for i in range(MAX_ERROR_TEXTS + 50):
        log.append(Sample("api", 1.0 + i, "fault", False, None, 0.0, f"connect to port {i} failed"))
    assert seen.count("refused by secret host") == 1 and log[0].error == log[2].error == "refused by *** host"
    cut = log[3].error
    assert cut is not None and len(cut) == MAX_ERROR_CHARS and cut.endswith("…")
    assert len(log.errors) == MAX_ERROR_TEXTS + 2  # "" (no error), the kept texts, the overflow text
    assert log[-1].error == ERROR_OVERFLOW and log[4].error == "connect to port 0 failed"


def test_recorder_keeps_what_its_listeners_saw_from_a_real_sampler(silent_listener: int, tmp_path: Path) -> None:
    """Two TCP probes on real sockets (one port answers, one is closed): stored samples equal the live ones,
    in memory and in the samples.bin the recorder streamed them to.

    The heap that existed before sampling stays out of the collector's way while it runs, and only then.
    """
    closed_port = free_port()

    frozen: list[int] = []

    async def scenario() -> tuple[list[Sample], list[Sample]]:
        recorder = Recorder(tmp_path / "samples.bin")
        live: list[Sample] = []
        recorder.listeners.append(live.append)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        probes = [
            TcpProbe(
                TcpSpec.model_validate({"type": "tcp", "name": n, "host": "127.0.0.1", "port": p, "timeout": "1s"})
            )
            for n, p in (("up", silent_listener), ("down", closed_port))
        ]
        tasks = [asyncio.create_task(Sampler(p, 0.01, t0, 10, recorder).run()) for p in probes]
        await asyncio.sleep(0.3)
        recorder.phase = "fault"
        frozen.append(gc.get_freeze_count())
        await asyncio.sleep(0.2)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        frozen.append(gc.get_freeze_count())
        assert recorder.close() is not None
        return live, list(recorder.samples)

    live, stored = asyncio.run(scenario())
    assert frozen[0] > 1000 and frozen[1] == 0, f"heap frozen while sampling, back after: {frozen}"
    assert stored == live
    on_disk = read_samples(tmp_path / "samples.bin")
    assert [(s.probe, s.phase, s.ok, s.error, round(s.at, 6)) for s in stored] == [
        (s.probe, s.phase, s.ok, s.error, s.at) for s in on_disk
    ]
    assert {s.phase for s in stored} == {"baseline", "fault"}
    up = [s for s in stored if s.probe == "up"]
    down = [s for s in stored if s.probe == "down"]
    assert len(up) >= 25 and all(s.ok and s.error is None for s in up)
    assert len(down) >= 25 and not any(s.ok for s in down) and all(s.error for s in down)
