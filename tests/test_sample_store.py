"""samples.bin: what a run streams reads back exactly (to the microsecond, as report.json keeps it),
a torn tail is ignored, and at most one batch of samples is ever unwritten."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from orchestrator.model.timeline import Sample, SampleFile, SampleLog
from orchestrator.sample_store import (
    HEADER,
    SIZE,
    SampleFileError,
    SampleStream,
    StoredSamples,
    read_samples,
    sha256_of,
)

SAMPLES = [
    Sample("api", 0.0, "baseline", True, 0.0012345678, 0.0003),
    Sample("db", 0.0, "baseline", False, 1.0, 0.0, "timeout after 1s"),
    Sample("api", 0.02, "fault", False, None, None, "not started: 5 samples already in flight"),
    Sample("db", 0.0200004, "fault", False, 0.25, -0.0000015, "refusé: ünïcode 错误 " + "x" * 60),
    Sample("db", 3599.999999, "recovery", True, 0.0, 0.0123456789),
]


def as_stored(s: Sample) -> Sample:
    """A sample as report.json and samples.bin keep it: times and latencies to the microsecond."""

    def us(v: float | None) -> float | None:
        return None if v is None else round(v, 6)

    return Sample(s.probe, us(s.at) or 0.0, s.phase, s.ok, us(s.latency), us(s.lag), s.error)


def stream(path: Path, samples: list[Sample], batch: int = 2) -> tuple[SampleLog, SampleFile | None]:
    log = SampleLog()
    out = SampleStream(path, log, batch=batch)
    for s in samples:
        log.append(s)
        out.landed()
    return log, out.close()


def test_samples_read_back_as_report_json_keeps_them(tmp_path: Path) -> None:
    path = tmp_path / "samples.bin"
    _, ref = stream(path, SAMPLES)
    back = read_samples(path)
    assert list(back) == [as_stored(s) for s in SAMPLES]
    assert back.errors[1:] == ["timeout after 1s", SAMPLES[2].error, SAMPLES[3].error]
    assert ref == SampleFile("samples.bin", sha256_of(path), path.stat().st_size, len(SAMPLES))


def test_many_samples_across_batches_and_read_chunks(tmp_path: Path) -> None:
    samples = [
        Sample(f"p{i % 7}", i * 0.01, ("baseline", "fault")[i % 2], i % 3 != 0, (i % 50) * 1e-4, i * 1e-7, None)
        if i % 3
        else Sample(f"p{i % 7}", i * 0.01, "fault", False, None, 0.0, f"error {i % 13}")
        for i in range(20_000)
    ]
    path = tmp_path / "samples.bin"
    stream(path, samples, batch=997)
    back = read_samples(path, chunk_records=101)
    assert list(back) == [as_stored(s) for s in samples]


@pytest.mark.parametrize("cut", [1, SIZE - 1, SIZE // 2])
def test_a_torn_last_record_is_ignored(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "samples.bin"
    stream(path, SAMPLES)
    data = path.read_bytes()
    path.write_bytes(data[:-cut])
    assert list(read_samples(path)) == [as_stored(s) for s in SAMPLES[:-1]]


def test_a_text_cut_short_is_ignored_with_what_follows(tmp_path: Path) -> None:
    """The error text of SAMPLES[3] spans several records: a file cut inside it ends before that sample."""
    path = tmp_path / "samples.bin"
    stream(path, SAMPLES, batch=1)
    data = path.read_bytes()
    # the text record of the third error: kind 2, table 2, id 3
    start = next(i for i in range(HEADER.size, len(data), SIZE) if data[i : i + 8] == struct.pack("<BBHI", 2, 2, 0, 3))
    path.write_bytes(data[: start + 2 * SIZE])
    assert list(read_samples(path)) == [as_stored(s) for s in SAMPLES[:3]]


def test_at_most_one_batch_is_unwritten(tmp_path: Path) -> None:
    path = tmp_path / "samples.bin"
    log = SampleLog()
    out = SampleStream(path, log, batch=10, max_delay=60.0)
    sizes = []
    for i in range(25):
        log.append(Sample("api", i * 0.01, "baseline", True, 0.001, 0.0))
        out.landed()
        sizes.append(path.stat().st_size)
    records = [(size - HEADER.size) // SIZE for size in sizes]
    # the probe and phase names (a header and a record of text each) come with the first batch
    assert records[8] == 0 and records[9] == 14 and records[18] == 14 and records[19] == 24 and records[24] == 24
    ref = out.close()
    assert ref is not None and ref.samples == 25 and len(read_samples(path)) == 25


def test_a_quiet_stream_is_written_after_max_delay_of_run_time(tmp_path: Path) -> None:
    path = tmp_path / "samples.bin"
    log = SampleLog()
    out = SampleStream(path, log, batch=1000, max_delay=1.0)
    for at in (0.0, 0.5, 0.9, 1.0):
        log.append(Sample("slow", at, "baseline", True, 0.001, 0.0))
        out.landed()
    assert len(read_samples(path)) == 4
    out.close()


def test_not_a_samples_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "samples.bin"
    path.write_bytes(b"{}" * 20)
    with pytest.raises(SampleFileError, match="not a version 1 samples file"):
        read_samples(path)


def test_stored_samples_check_the_reports_sha256(tmp_path: Path) -> None:
    path = tmp_path / "samples.bin"
    _, ref = stream(path, SAMPLES)
    assert ref is not None
    stored = StoredSamples(path, ref)
    assert len(stored) == len(SAMPLES) and list(stored) == [as_stored(s) for s in SAMPLES]
    wrong = StoredSamples(path, SampleFile(ref.path, "0" * 64, ref.bytes, ref.samples))
    with pytest.raises(SampleFileError, match="sha256"):
        wrong[0]
