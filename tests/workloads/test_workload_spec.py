"""Spec errors of the workload: a client that is not installed, options its model refuses, SLAs without a workload;
and a client offered by an installed package's `drillctl.workloads` entry point, found for real."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import SpecError
from orchestrator.loading import load_drill
from tests.support import DRILLCTL, ROOT, drill, write

PROBE = {"type": "tcp", "name": "p", "host": "127.0.0.1", "port": 9}


def _drill(tmp_path: Path, client: dict[str, Any], slas: list[dict[str, Any]] | None = None) -> Path:
    document = drill(steady_state={"probes": [PROBE]}, workload={"rate": 10, "client": client}, slas=slas or [])
    return write(tmp_path, document)


def _issues(path: Path) -> list[tuple[int | None, str, str]]:
    with pytest.raises(SpecError) as caught:
        load_drill(path)
    return [(i.line, i.field, i.message) for i in caught.value.issues]


def test_a_workload_client_that_is_not_installed_is_a_spec_error_naming_it(tmp_path: Path) -> None:
    path = _drill(tmp_path, {"type": "cassandra", "hosts": ["a"]})
    ((line, field, message),) = _issues(path)
    assert field == "spec.workload.client.type"
    assert path.read_text().splitlines()[line - 1].strip() == "type: cassandra"  # type: ignore[operator]
    assert "'cassandra'" in message and "drillctl.workloads" in message
    done = subprocess.run([DRILLCTL, "validate", str(path)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 2 and "spec.workload.client.type" in done.stdout + done.stderr


def test_options_a_client_refuses_are_located_in_the_drill(tmp_path: Path) -> None:
    path = _drill(tmp_path, {"type": "http", "url": "ftp://x", "colour": "red"})
    found = {field: message for _, field, message in _issues(path)}
    assert set(found) == {"spec.workload.client.url", "spec.workload.client.colour"}
    assert found["spec.workload.client.colour"] == "unknown field"


def test_workload_slas_need_a_workload_and_latency_needs_a_threshold(tmp_path: Path) -> None:
    document = drill(
        steady_state={"probes": [PROBE]},
        slas=[{"name": "loss", "type": "data_loss"}, {"name": "lat", "type": "workload_latency", "phase": "fault"}],
    )
    found = [(field, message) for _, field, message in _issues(write(tmp_path, document))]
    assert ("spec.slas[0].type", "a data_loss SLA needs spec.workload") in found
    assert ("spec.slas[1].type", "a workload_latency SLA needs spec.workload") in found
    assert ("spec.slas[1].type", "a workload_latency SLA needs at least one of p50, p90, p99, max") in found


PLUGIN = """
from pydantic import BaseModel, ConfigDict

from orchestrator.workloads.base import Result


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    table: str


class Client:
    async def invoke(self, operation):
        return Result("ok")

    async def close(self):
        return None


class ClientType:
    options = Options

    def build(self, options, context):
        return Client()


CLIENT = ClientType()
"""


def test_a_client_from_an_installed_entry_point_is_found_and_checks_its_own_options(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "pgwork-1.0.dist-info").mkdir(parents=True)
    (site / "pgwork-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: pgwork\nVersion: 1.0\n")
    (site / "pgwork-1.0.dist-info" / "entry_points.txt").write_text("[drillctl.workloads]\npgwork = pgwork:CLIENT\n")
    (site / "pgwork.py").write_text(PLUGIN)
    good = _drill(tmp_path, {"type": "pgwork", "table": "kv"})
    (tmp_path / "bad").mkdir()
    bad = _drill(tmp_path / "bad", {"type": "pgwork"})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    ok = subprocess.run([DRILLCTL, "validate", str(good)], capture_output=True, text=True, env=env, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    refused = subprocess.run([DRILLCTL, "validate", str(bad)], capture_output=True, text=True, env=env, timeout=60)
    assert refused.returncode == 2 and "spec.workload.client.table" in refused.stdout + refused.stderr
    without = subprocess.run([DRILLCTL, "validate", str(good)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert without.returncode == 2 and "'pgwork'" in without.stdout + without.stderr
