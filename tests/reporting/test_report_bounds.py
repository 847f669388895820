"""report.json and samples.bin read within their bounds: just under is read, just over is refused with a
message naming the file, the bound and its variable, and `drillctl report`/`compare` on a huge report.json
exit 2 at once, in a few MB, without a traceback."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator.limits import REPORT_BYTES, REPORT_VALUES, SAMPLES_FILE_BYTES
from orchestrator.model.timeline import Sample, SampleLog
from orchestrator.reporting.json_report import read_report, write_json
from orchestrator.sample_store import SampleStream, read_samples
from tests.bounds import bounded_said
from tests.reporting.test_renderers_fuzz import make_report
from tests.support import DRILLCTL, ROOT

STRINGS = ["probe", "sla", "fault", "delay", "k", "v", "error", "drill"]


def report_file(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_json(make_report(STRINGS, run_dir), run_dir / "report.json")
    return run_dir / "report.json"


def drill_name(path: Path) -> str:
    return read_report(path).drill.name


def test_a_report_just_under_its_bound_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = report_file(tmp_path)
    monkeypatch.setenv(REPORT_BYTES.env, str(path.stat().st_size))
    assert bounded_said(drill_name, path) == "drill"


def test_a_report_just_over_its_bound_is_refused_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = report_file(tmp_path)
    monkeypatch.setenv(REPORT_BYTES.env, str(path.stat().st_size - 1))
    said = bounded_said(drill_name, path)
    assert said.startswith(f"refused: ReportFormatError: {path}: report.json is over the limit of")
    assert f"raise it with {REPORT_BYTES.env}=N" in said


def test_a_report_of_values_just_under_its_bound_is_read_and_just_over_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = report_file(tmp_path)
    values = path.read_bytes().count(b",") + 1
    monkeypatch.setenv(REPORT_VALUES.env, str(values))
    assert bounded_said(drill_name, path) == "drill"
    monkeypatch.setenv(REPORT_VALUES.env, str(values - 1))
    said = bounded_said(drill_name, path)
    assert said.startswith(
        f"refused: ReportFormatError: {path}: report.json is over the limit of {values - 1:,} values"
    )


def test_a_report_of_many_small_values_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    """8 MB of `[],` is 2.8 million empty lists, 200 MB once decoded: refused from the bytes alone."""
    path = tmp_path / "report.json"
    path.write_bytes(b"[" + b"[]," * (REPORT_VALUES.default + 1) + b"[]]")
    said = bounded_said(drill_name, path, seconds=5, memory_mib=48)
    assert said.startswith(f"refused: ReportFormatError: {path}: report.json is over the limit of 4,000,000 values")


def test_a_report_that_grows_past_its_size_is_refused_once_read_passes_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A device (or a file still growing) says nothing true of its size: reading itself stops at the bound."""
    monkeypatch.setenv(REPORT_BYTES.env, str(2**20))
    said = bounded_said(drill_name, Path("/dev/zero"), memory_mib=16)
    assert said.startswith("refused: ReportFormatError: /dev/zero: report.json is over the limit of 1,048,576 bytes")


def test_a_report_nested_deeper_than_python_reads_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text("[" * 200_000)
    said = bounded_said(drill_name, path)
    assert said == f"refused: ReportFormatError: {path} is not a report: its JSON is nested deeper than Python can read"


def run_measured(*args: str) -> tuple[int, str, float, int]:
    """Run drillctl; its exit code, stderr, wall time and its own peak RSS in KiB (wait4: that child alone)."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [DRILLCTL, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT, env=os.environ.copy()
    )
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, err, time.monotonic() - started, usage.ru_maxrss


@pytest.fixture
def huge_report(tmp_path: Path) -> Path:
    """A report.json of 4 GiB (sparse: it costs no disk), far over the default bound."""
    run_dir = tmp_path / "huge"
    run_dir.mkdir()
    with (run_dir / "report.json").open("wb") as f:
        f.truncate(4 * 2**30)
    return run_dir


def test_drillctl_report_and_compare_refuse_a_huge_report_at_once(huge_report: Path, tmp_path: Path) -> None:
    small = report_file(tmp_path).parent
    code, _, help_seconds, baseline = run_measured("--help")
    assert code == 0
    for args in (("report", str(huge_report)), ("compare", str(small), str(huge_report))):
        code, err, seconds, peak = run_measured(*args)
        assert code == 2, err
        assert err.startswith(f"error: {huge_report / 'report.json'}: report.json is over the limit of 67,108,864")
        assert f"{REPORT_BYTES.env}=N" in err and "Traceback" not in err
        # About as long as `drillctl --help` (the refusal itself is a stat); reading 4 GiB would take many times
        # that. Against `--help` measured just before, so that a loaded machine slows both alike.
        assert seconds < max(1.5, 3 * help_seconds), (seconds, help_seconds)
        assert peak - baseline < 8 * 1024, (peak, baseline)  # KiB: what `--help` needs, and a few MB


def samples_file(tmp_path: Path) -> Path:
    path = tmp_path / "samples.bin"
    log = SampleLog()
    stream = SampleStream(path, log)
    for k in range(100):
        log.append(Sample("api", k * 0.01, "baseline", k % 3 != 0, 0.001, 0.0, None if k % 3 else "timeout"))
        stream.landed()
    stream.close()
    return path


def count(path: Path) -> int:
    return len(read_samples(path))


def test_samples_bin_just_under_its_bound_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = samples_file(tmp_path)
    monkeypatch.setenv(SAMPLES_FILE_BYTES.env, str(path.stat().st_size))
    assert bounded_said(count, path, memory_mib=32) == 100


def test_samples_bin_just_over_its_bound_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = samples_file(tmp_path)
    monkeypatch.setenv(SAMPLES_FILE_BYTES.env, str(path.stat().st_size - 1))
    said = bounded_said(count, path, memory_mib=32)
    assert said.startswith(f"refused: LimitExceeded: {path}: samples.bin is over the limit of")


def test_a_huge_samples_bin_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "samples.bin"
    with path.open("wb") as f:
        f.truncate(SAMPLES_FILE_BYTES.default + 1)
    assert "samples.bin is over the limit of 2,147,483,648 bytes" in bounded_said(count, path, seconds=1, memory_mib=8)
