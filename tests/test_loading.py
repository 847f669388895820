"""Loading drills: every bad input gets one clear error naming its file, line and field.

Each case writes a small drill into a temporary folder that also holds `runbooks/ops.md`, so
runbook links resolve the way they do for real drills (from the drill's folder upward). The line
an issue must point at is marked in the YAML with a `# <-` comment. The last tests drive the
`drillctl` command line as a subprocess: `validate`, and `run` refusing to start.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.errors import SpecError, SpecIssue
from orchestrator.loading import load_drill

REPO = Path(__file__).resolve().parent.parent
DRILLCTL = Path(sys.executable).parent / "drillctl"
MARK = "# <-"

RUNBOOK = """\
# Ops

## Overview

Who owns it.

## Outage

What to do.
"""

# A valid drill with one proxy and one tcp probe; cases append to it or edit one of its lines.
HEAD = """\
apiVersion: drillctl.dev/v1
kind: Drill
metadata:
  name: small
spec:
  proxies:
    - name: db
      listen: 127.0.0.1:25432
      upstream: 127.0.0.1:5432
  steady_state:
    interval: 100ms
    probes:
      - name: db-port
        type: tcp
        host: 127.0.0.1
        port: 25432
"""

VALID = (
    HEAD.replace("  name: small\n", "  name: small\n  runbook: runbooks/ops.md#overview\n")
    + """\
  phases:
    baseline: 1s
    fault: 3s
    recovery: 2s
  faults:
    - name: db-outage
      type: network.down
      proxy: db
      start: 500ms
      duration: 2s
      runbook: runbooks/ops.md#outage
  slas:
    - name: db-recovers
      type: recovery_window
      max: 1s
    - name: db-errors
      type: error_rate
      probes: [db-port]
      phase: baseline
      max: 0.01
"""
)


def fault(*lines: str) -> str:
    """HEAD plus a `faults:` list whose first item is `- name: f` followed by `lines`."""
    return HEAD + "  faults:\n    - name: f\n" + "".join(f"      {line}\n" for line in lines)


def sla(*lines: str) -> str:
    """HEAD plus an `slas:` list whose first item is `- name: s` followed by `lines`."""
    return HEAD + "  slas:\n    - name: s\n" + "".join(f"      {line}\n" for line in lines)


@dataclass(frozen=True)
class Case:
    id: str
    yaml: str
    field: str
    phrase: str


def marked_line(text: str) -> int:
    lines = [n for n, line in enumerate(text.splitlines(), start=1) if MARK in line]
    assert len(lines) == 1, f"mark exactly one line with {MARK!r}"
    return lines[0]


CASES = [
    Case(
        "malformed-yaml",
        "apiVersion: drillctl.dev/v1\nkind: Drill\nmetadata:\n  name: small\n   runbook: x  # <-\nspec: {}\n",
        "",
        "malformed YAML: mapping values are not allowed",
    ),
    Case(
        "malformed-yaml-unterminated-quote",
        "apiVersion: drillctl.dev/v1\nkind: Drill\nmetadata:\n  name: 'small  # <-\nspec: {}\n",
        "",
        "malformed YAML",
    ),
    Case(
        "interval-not-a-duration",
        HEAD.replace("interval: 100ms", "interval: fast  # <-"),
        "spec.steady_state.interval",
        "expected a duration such as '250ms', '30s' or '2m', got 'fast'",
    ),
    Case(
        "port-not-an-integer",
        HEAD.replace("port: 25432", 'port: "abc"  # <-'),
        "spec.steady_state.probes[0].port",
        "valid integer",
    ),
    Case(
        "bare-number-duration",
        fault("type: network.down", "proxy: db", "duration: 5  # <-"),
        "spec.faults[0].duration",
        "expected a duration such as '250ms', '30s' or '2m', got 5",
    ),
    Case("unknown-top-level-key", HEAD + "extra: 1  # <-\n", "extra", "unknown field"),
    Case(
        "unknown-key-in-spec",
        HEAD + "  steady_sate: {}  # <-\n",
        "spec.steady_sate",
        "unknown field",
    ),
    Case(
        "typo-in-a-fault",
        fault("type: network.latency", "proxy: db", "latency: 100ms", "jiter: 10ms  # <-", "duration: 2s"),
        "spec.faults[0].jiter",
        "unknown field",
    ),
    Case(
        "unknown-fault-type",
        fault("type: network.explode  # <-", "proxy: db", "duration: 2s"),
        "spec.faults[0].type",
        "unknown type 'network.explode'; expected one of 'network.latency', 'network.bandwidth',",
    ),
    Case(
        "unknown-sla-type",
        sla("type: latencyy  # <-", "probe: db-port", "phase: fault", "p99: 1s"),
        "spec.slas[0].type",
        "unknown type 'latencyy'; expected one of 'recovery_window', 'error_rate', 'latency'",
    ),
    Case(
        "fault-without-duration",
        HEAD + "  faults:\n    - name: f  # <-\n      type: network.down\n      proxy: db\n",
        "spec.faults[0].duration",
        "required field is missing",
    ),
    Case(
        "negative-duration",
        fault("type: network.down", "proxy: db", "duration: -1s  # <-"),
        "spec.faults[0].duration",
        "must be greater than zero, got '-1s'",
    ),
    Case(
        "zero-duration",
        fault("type: network.down", "proxy: db", "duration: 0s  # <-"),
        "spec.faults[0].duration",
        "must be greater than zero, got '0s'",
    ),
    Case(
        "interval-under-10ms",
        HEAD.replace("interval: 100ms", "interval: 5ms  # <-"),
        "spec.steady_state.interval",
        "must be at least 10ms, got 5ms",
    ),
    Case(
        "fault-past-its-phase",
        HEAD.replace("  proxies:", "  phases:\n    fault: 5s\n  proxies:")
        + "  faults:\n    - name: f\n      type: network.down\n      proxy: db\n      start: 3s\n"
        + "      duration: 4s  # <-\n",
        "spec.faults[0].duration",
        "ends at 7s, past the end of the fault phase (5s)",
    ),
    Case(
        "dangling-runbook-file",
        fault("type: network.down", "proxy: db", "duration: 1s", "runbook: runbooks/nope.md#outage  # <-"),
        "spec.faults[0].runbook",
        "runbook 'runbooks/nope.md' not found in the drill's folder or any folder above it",
    ),
    Case(
        "runbook-anchor-missing",
        fault("type: network.down", "proxy: db", "duration: 1s", "runbook: runbooks/ops.md#outages  # <-"),
        "spec.faults[0].runbook",
        "has no section #outages (sections: ops, outage, overview)",
    ),
    Case(
        "malformed-runbook-ref",
        HEAD.replace("  name: small\n", "  name: small\n  runbook: ops.md  # <-\n"),
        "metadata.runbook",
        "expected runbooks/<file>.md#<anchor>, got 'ops.md'",
    ),
    Case(
        "undeclared-proxy",
        fault("type: network.down", "proxy: cache  # <-", "duration: 1s"),
        "spec.faults[0].proxy",
        "names proxy 'cache', which spec.proxies does not declare",
    ),
    Case(
        "error-rate-sla-unknown-probe",
        sla("type: error_rate", "probes: [db-port, web]  # <-", "phase: fault", "max: 0.1"),
        "spec.slas[0].probes[1]",
        "names unknown probe 'web'",
    ),
    Case(
        "latency-sla-unknown-probe",
        sla("type: latency", "probe: web  # <-", "phase: fault", "p99: 1s"),
        "spec.slas[0].probe",
        "names unknown probe 'web'",
    ),
    Case(
        "recovery-sla-unknown-fault",
        fault("type: network.down", "proxy: db", "duration: 1s")
        + "  slas:\n    - name: s\n      type: recovery_window\n      fault: g  # <-\n      max: 1s\n",
        "spec.slas[0].fault",
        "names unknown fault 'g'",
    ),
    Case(
        "duplicate-yaml-key",
        HEAD + "  phases:\n    baseline: 1s\n    baseline: 2s  # <-\n",
        "spec.phases.baseline",
        "duplicate key",
    ),
    Case(
        "duplicate-fault-names",
        fault("type: network.down", "proxy: db", "duration: 1s")
        + "    - name: f  # <-\n      type: network.down\n      proxy: db\n      start: 2s\n      duration: 1s\n",
        "spec.faults[1].name",
        "duplicate name 'f'",
    ),
    Case(
        "overlapping-downs-on-one-proxy",
        HEAD
        + "  faults:\n    - name: a\n      type: network.down\n      proxy: db\n      duration: 3s\n"
        + "    - name: b\n      type: network.down\n      proxy: db\n      start: 2s  # <-\n      duration: 3s\n",
        "spec.faults[1].start",
        "overlaps fault 'a': both take proxy 'db' down",
    ),
    Case(
        "wrong-api-version",
        HEAD.replace("apiVersion: drillctl.dev/v1", "apiVersion: drillctl.dev/v2  # <-"),
        "apiVersion",
        "'drillctl.dev/v1'",
    ),
    Case("kind-not-drill", HEAD.replace("kind: Drill", "kind: Job  # <-"), "kind", "'Drill'"),
    Case(
        "toxicity-above-one",
        fault("type: network.latency", "proxy: db", "latency: 1s", "toxicity: 1.5  # <-", "duration: 1s"),
        "spec.faults[0].toxicity",
        "less than or equal to 1",
    ),
    Case(
        "latency-sla-without-threshold",
        sla("type: latency  # <-", "probe: db-port", "phase: fault"),
        "spec.slas[0].type",
        "a latency SLA needs at least one of p50, p90, p99, max",
    ),
    Case(
        "invalid-body-match-regex",
        HEAD.replace(
            "      - name: db-port\n",
            "      - name: web\n        type: http\n        url: http://127.0.0.1:8080/\n"
            "        body_match: '(unclosed'  # <-\n      - name: db-port\n",
        ),
        "spec.steady_state.probes[0].body_match",
        "not a valid regular expression",
    ),
    Case(
        "name-not-a-dns-label",
        HEAD.replace("  name: small", "  name: Small_Drill  # <-"),
        "metadata.name",
        "expected lowercase letters, digits and dashes, got 'Small_Drill'",
    ),
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A drills folder with runbooks/ops.md next to it."""
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "ops.md").write_text(RUNBOOK, encoding="utf-8")
    return tmp_path


def write(folder: Path, text: str, name: str = "drill.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def issues_of(path: Path) -> list[SpecIssue]:
    with pytest.raises(SpecError) as info:
        load_drill(path)
    return info.value.issues


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_one_issue_with_file_line_and_field(folder: Path, case: Case) -> None:
    path = write(folder, case.yaml)

    issues = issues_of(path)

    assert [(i.line, i.field) for i in issues] == [(marked_line(case.yaml), case.field)]
    [issue] = issues
    assert issue.file == str(path)
    assert case.phrase in issue.message
    assert str(issue).startswith(f"{path}:{issue.line}:")


def test_the_valid_base_and_full_drills_load(folder: Path) -> None:
    assert load_drill(write(folder, HEAD, "head.yaml")).spec.name == "small"

    drill = load_drill(write(folder, VALID))

    assert drill.path == folder / "drill.yaml"
    assert drill.folder == folder
    assert drill.spec.spec.steady_state.interval == pytest.approx(0.1)
    [outage] = drill.spec.spec.faults
    assert (outage.name, outage.type, outage.start, outage.duration) == ("db-outage", "network.down", 0.5, 2.0)
    assert drill.runbooks.resolve("runbooks/ops.md#outage").heading == "Outage"


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_an_empty_file_is_one_issue_on_line_1(folder: Path, text: str) -> None:
    path = write(folder, text)
    assert [(i.file, i.line, i.field, i.message) for i in issues_of(path)] == [(str(path), 1, "", "the file is empty")]


def test_a_missing_file_names_the_file(folder: Path) -> None:
    path = folder / "absent.yaml"
    [issue] = issues_of(path)
    assert (issue.file, issue.line, issue.field) == (str(path), None, "")
    assert issue.message.startswith("cannot read")


def test_several_shape_problems_are_all_reported(folder: Path) -> None:
    text = (
        HEAD.replace("interval: 100ms", "interval: fast")
        .replace("port: 25432", 'port: "abc"')
        .replace("kind: Drill", "kind: Job")
    ) + "  bogus: 1\n"
    issues = issues_of(write(folder, text))
    assert sorted((i.line, i.field) for i in issues) == [
        (2, "kind"),
        (11, "spec.steady_state.interval"),
        (16, "spec.steady_state.probes[0].port"),
        (17, "spec.bogus"),
    ]


def test_several_cross_field_problems_are_all_reported(folder: Path) -> None:
    text = (
        fault("type: network.down", "proxy: cache", "duration: 1s", "runbook: runbooks/nope.md#x")
        + "  slas:\n    - name: s\n      type: latency\n      probe: web\n      phase: fault\n      p99: 1s\n"
    )
    issues = issues_of(write(folder, text))
    assert sorted((i.line, i.field, i.message) for i in issues) == [
        (20, "spec.faults[0].proxy", "names proxy 'cache', which spec.proxies does not declare"),
        (
            22,
            "spec.faults[0].runbook",
            "runbook 'runbooks/nope.md' not found in the drill's folder or any folder above it",
        ),
        (26, "spec.slas[0].probe", "names unknown probe 'web'"),
    ]


def test_yaml_merge_keys_work_as_in_safe_load(folder: Path) -> None:
    text = HEAD + (
        "  faults:\n"
        "    - &outage\n"
        "      name: first\n"
        "      type: network.down\n"
        "      proxy: db\n"
        "      duration: 1s\n"
        "    - <<: *outage\n"
        "      name: second\n"
        "      start: 2s\n"
    )
    drill = load_drill(write(folder, text))
    assert [(f.name, f.type, f.start, f.duration) for f in drill.spec.spec.faults] == [
        ("first", "network.down", 0.0, 1.0),
        ("second", "network.down", 2.0, 1.0),
    ]


@pytest.mark.parametrize("value", ["!Ref x", "!!int abc", "!!timestamp nope", "!!python/name:os.system ''"])
def test_a_yaml_tag_that_cannot_be_constructed_is_a_spec_issue(folder: Path, value: str) -> None:
    text = HEAD.replace("  name: small\n", f"  name: small\n  description: {value}  # <-\n")
    [issue] = issues_of(write(folder, text))
    assert (issue.line, issue.field) == (marked_line(text), "metadata.description")


def test_runbooks_resolve_from_folders_above_the_drill(folder: Path) -> None:
    nested = folder / "drills" / "team"
    nested.mkdir(parents=True)
    drill = load_drill(write(nested, VALID))
    assert drill.runbooks.resolve("runbooks/ops.md#overview").path == (folder / "runbooks" / "ops.md").resolve()


def test_the_shipped_quickstart_drill_loads() -> None:
    drill = load_drill(REPO / "drills" / "examples" / "quickstart.yaml")
    spec = drill.spec.spec
    assert drill.spec.name == "quickstart"
    assert [f.name for f in spec.faults] == ["inventory-latency", "inventory-outage"]
    assert [p.name for p in spec.steady_state.probes] == ["orders", "inventory-path"]
    assert drill.spec.fault_phase_length() == 9.0
    assert drill.runbooks.resolve("runbooks/quickstart.md#inventory-outage").heading == "Inventory outage"


# --- the command line ---------------------------------------------------------------------------

BAD = fault("type: network.down", "proxy: db", "duration: 0s  # <-")


def drillctl(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(
        [str(DRILLCTL), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_validate_a_folder_reports_the_bad_drill_with_file_line_and_field(folder: Path) -> None:
    good, bad = write(folder, VALID, "good.yaml"), write(folder, BAD, "bad.yaml")

    result = drillctl("validate", folder, cwd=folder)

    assert result.returncode == 2, result.stderr
    lines = result.stdout.splitlines()
    assert f"ok      {good} (small)" in lines
    assert f"invalid {bad}" in lines
    expected = f"{bad}:{marked_line(BAD)}: spec.faults[0].duration: must be greater than zero, got '0s'"
    assert expected in [line.strip() for line in lines]


def test_validate_json_output(folder: Path) -> None:
    good, bad = write(folder, VALID, "good.yaml"), write(folder, BAD, "bad.yaml")

    result = drillctl("validate", "--output", "json", folder, cwd=folder)

    assert result.returncode == 2, result.stderr
    drills = {d["file"]: d for d in json.loads(result.stdout)["drills"]}
    assert drills[str(good)] == {"file": str(good), "valid": True, "drill": "small", "issues": []}
    assert drills[str(bad)]["valid"] is False
    assert drills[str(bad)]["issues"] == [
        {"line": marked_line(BAD), "field": "spec.faults[0].duration", "message": "must be greater than zero, got '0s'"}
    ]


def test_validate_passes_on_good_drills_only(folder: Path) -> None:
    write(folder, VALID, "good.yaml")
    result = drillctl("validate", folder, cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr


def test_run_refuses_an_invalid_drill_before_creating_anything(folder: Path) -> None:
    bad = write(folder, BAD, "bad.yaml")
    runs = folder / "runs"

    result = drillctl("run", bad, "--runs-dir", runs, "--toxiproxy-url", f"http://127.0.0.1:{free_port()}", cwd=folder)

    assert result.returncode == 2
    assert f"error: {bad}:{marked_line(BAD)}: spec.faults[0].duration:" in result.stderr
    assert not runs.exists()


def test_run_with_unreachable_toxiproxy_fails_preflight_and_injects_nothing(folder: Path) -> None:
    drill = write(
        folder,
        HEAD
        + "  phases:\n    baseline: 1s\n    recovery: 1s\n"
        + "  faults:\n    - name: db-latency\n      type: network.latency\n      proxy: db\n"
        + "      latency: 100ms\n      duration: 1s\n",
    )
    runs = folder / "runs"
    port = free_port()

    result = drillctl(
        "run", drill, "--quiet", "--runs-dir", runs, "--toxiproxy-url", f"http://127.0.0.1:{port}", cwd=folder
    )

    assert result.returncode == 3, result.stdout + result.stderr
    [run_dir] = [p for p in runs.iterdir() if p.is_dir()]  # not the history.sqlite beside it
    report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    assert report["run"]["status"] == "preflight_failed"
    assert report["run"]["exit_code"] == 3
    assert f"127.0.0.1:{port}" in report["run"]["reason"]
    assert [f["name"] for f in report["faults"]] == ["db-latency"]
    assert all(f["injected_at"] is None for f in report["faults"])
    assert report["rollback"] == {"reverted": [], "failed": []}


LOCAL = """\
apiVersion: drillctl.dev/v1
kind: Drill
metadata:
  name: local
spec:
  targets:
    local:
      processes:
        - {name: svc, argv: [python3, -c, pass], clock: faketime}
      nodes:
        - {name: n, processes: [svc]}
  steady_state:
    probes: [{name: p, type: tcp, host: 127.0.0.1, port: 1}]
  faults:
"""


@pytest.mark.parametrize(
    ("first", "second", "phrase"),
    [
        (
            "{name: a, type: clock.skew, target: svc, offset: +90s, duration: 5s}",
            "{name: b, type: clock.skew, target: svc, offset: -5m, start: 2s, duration: 5s}",
            "both skew the clock of 'svc'",
        ),
        (
            "{name: a, type: gc.pause, target: n, pause: 100ms, every: 1s, duration: 5s}",
            "{name: b, type: gc.pause, target: n, pause: 100ms, every: 1s, start: 4s, duration: 5s}",
            "both pause 'n'",
        ),
        (
            "{name: a, type: node.loss, node: n, duration: 1s, restore: false}",
            "{name: b, type: node.loss, node: n, mode: freeze, start: 10s, duration: 1s}",
            "both take down node 'n'",
        ),
    ],
    ids=["skews", "pauses", "node-loss-left-down"],
)
def test_overlapping_faults_on_one_target_are_refused(tmp_path: Path, first: str, second: str, phrase: str) -> None:
    path = tmp_path / "drill.yaml"
    path.write_text(LOCAL + f"    - {first}\n    - {second}  # <-\n")
    with pytest.raises(SpecError) as caught:
        load_drill(path)
    (issue,) = caught.value.issues
    assert issue.line == LOCAL.count("\n") + 2
    assert issue.field == "spec.faults[1].start"
    assert f"overlaps fault 'a': {phrase}" in issue.message


@pytest.mark.parametrize(
    ("process", "fault", "field", "phrase"),
    [
        (
            "{name: svc, argv: [python3], clock: faketime}",
            "{name: f, type: gc.pause, target: svc, pause: 2s, every: 2s, duration: 5s}",
            "spec.faults[0].pause",
            "does not fit in its period",
        ),
        (
            "{name: svc, argv: [python3], memory_limit: 128MiB}",
            "{name: f, type: memory.pressure, target: svc, size: 256MiB, duration: 5s}",
            "spec.faults[0].size",
            "above the memory limit of 'svc' (128MiB); set force: true",
        ),
        (
            "{name: svc, argv: [python3]}",
            "{name: f, type: memory.pressure, target: svc, size: 50%, duration: 5s}",
            "spec.faults[0].size",
            "has no memory_limit",
        ),
        (
            "{name: svc, argv: [python3]}",
            "{name: f, type: clock.skew, target: svc, offset: +90s, duration: 5s}",
            "spec.faults[0].target",
            "not started under libfaketime",
        ),
        (
            "{name: svc, argv: [python3]}",
            "{name: f, type: node.loss, node: ghost, duration: 5s}",
            "spec.faults[0].node",
            "names node 'ghost'",
        ),
    ],
    ids=[
        "pause-longer-than-period",
        "memory-above-limit",
        "memory-share-without-limit",
        "skew-without-faketime",
        "unknown-node",
    ],
)
def test_local_fault_spec_errors(tmp_path: Path, process: str, fault: str, field: str, phrase: str) -> None:
    text = LOCAL.replace("- {name: svc, argv: [python3, -c, pass], clock: faketime}", f"- {process}")
    text = text.replace("      nodes:\n        - {name: n, processes: [svc]}\n", "")
    path = tmp_path / "drill.yaml"
    path.write_text(text + f"    - {fault}\n")
    with pytest.raises(SpecError) as caught:
        load_drill(path)
    (issue,) = caught.value.issues
    assert (issue.line, issue.field) == (text.count("\n") + 1, field)
    assert phrase in issue.message


SKEWS = """\
apiVersion: drillctl.dev/v1
kind: Drill
metadata:
  name: skews
spec:
  targets:
    local:
      processes:
        - {name: svc, argv: [python3, -c, pass], clock: faketime}
        - {name: plain, argv: [python3, -c, pass]}
      adopted:
        - {name: db, port: 5432, restore: false}
      nodes:
        - {name: n, processes: [svc]}
        - {name: m, processes: [plain, db]}
  steady_state:
    probes: [{name: p, type: tcp, host: 127.0.0.1, port: 1}]
  faults:
    - {name: ok-node, type: clock.skew, target: n, offset: +90s, duration: 1s}
    - {name: ok-asked, type: clock.skew, target: {command: [cat, leader]}, offset: +90s, start: 1s, duration: 1s}
    - {name: adopted, type: clock.skew, target: db, offset: +90s, start: 2s, duration: 1s}
    - {name: mixed, type: clock.skew, target: m, offset: +90s, start: 3s, duration: 1s}
    - {name: mapped, type: clock.skew, target: {command: [cat, leader], names: {x: db}}, offset: +1s, duration: 1s}
    - {name: jvm-node, type: gc.full, target: m, every: 1s, duration: 1s}
    - {name: jvm-asked, type: gc.full, target: {url: "http://127.0.0.1:1/", pointer: /leader}, every: 1s, duration: 1s}
"""


def test_a_clock_skew_names_only_processes_drillctl_started_under_libfaketime(tmp_path: Path) -> None:
    path = tmp_path / "drill.yaml"
    path.write_text(SKEWS)
    with pytest.raises(SpecError) as caught:
        load_drill(path)
    adopted = "process db is adopted: drillctl did not start it, so it runs without libfaketime"
    plain = "process plain was not started under libfaketime: set clock: faketime on it"
    assert [(i.line, i.field, i.message) for i in caught.value.issues] == [
        (21, "spec.faults[2].target", adopted),
        (22, "spec.faults[3].target", f"node m: {adopted}; {plain}"),
        (23, "spec.faults[4].target.names.x", adopted),
    ]

    path.write_text(SKEWS.replace(", clock: faketime}", "}").split("    - {name: adopted")[0])
    with pytest.raises(SpecError) as caught:
        load_drill(path)
    (asked,) = [i for i in caught.value.issues if i.field == "spec.faults[1].target"]
    assert "no process in targets.local.processes has clock: faketime" in asked.message
    assert "never an adopted one's" in asked.message


def test_a_node_with_no_processes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "drill.yaml"
    fault = "    - {name: f, type: gc.pause, target: svc, pause: 100ms, every: 1s, duration: 2s}\n"
    path.write_text(LOCAL.replace("processes: [svc]}", "processes: []}") + fault)
    with pytest.raises(SpecError) as caught:
        load_drill(path)
    (issue,) = caught.value.issues
    assert issue.field == "spec.targets.local.nodes[0].processes"
    assert issue.line == 11
    assert "at least 1 item" in issue.message
