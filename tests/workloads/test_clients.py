"""The built-in clients against real programs: `command` through a small CLI store, `http` against demo/kv.py."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from orchestrator.model.operations import Operation
from orchestrator.model.workload import WorkloadSpec
from orchestrator.workloads.base import Result
from orchestrator.workloads.registry import build_client
from tests.fixtures.toxiproxy import free_port
from tests.workloads.drills import KV

CLI = """
import pathlib, sys, time
folder, verb, key = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
if key == "refused":
    sys.exit(1)
if key == "crashes":
    sys.exit(5)
if key == "hangs":
    time.sleep(30)
if verb == "set":
    (folder / key).write_text(sys.argv[4])
elif (folder / key).exists():
    print((folder / key).read_text())
else:
    sys.exit(3)
"""


def _invoke(spec: WorkloadSpec, folder: Path, *operations: Operation) -> list[Result]:
    async def scenario() -> list[Result]:
        client = build_client(spec, folder)
        try:
            return [await client.invoke(op) for op in operations]
        finally:
            await client.close()

    return asyncio.run(scenario())


def test_the_command_client_maps_exits_to_outcomes(tmp_path: Path) -> None:
    (tmp_path / "kvctl.py").write_text(CLI)
    store = tmp_path / "store"
    store.mkdir()
    cli = [sys.executable, "kvctl.py", str(store)]
    client = {"type": "command", "write": [*cli, "set", "{key}", "{value}"], "read": [*cli, "get", "{key}"]}
    spec = WorkloadSpec.model_validate({"rate": 1, "timeout": "2s", "client": client})
    results = _invoke(
        spec,
        tmp_path,
        Operation("write", "a", "17"),
        Operation("read", "a"),
        Operation("read", "b"),
        Operation("write", "refused", "1"),
        Operation("write", "crashes", "1"),
        Operation("read", "crashes"),
        Operation("write", "hangs", "1"),
    )
    assert [(r.outcome, r.values) for r in results] == [
        ("ok", ()),
        ("ok", ("17",)),
        ("ok", ()),  # exit 3: the key holds nothing
        ("fail", ()),
        ("unknown", ()),  # a write that ended some other way may have happened
        ("fail", ()),  # a read has nothing to be unsure about
        ("unknown", ()),
    ]
    assert results[-1].error == "timeout after 2s"


@pytest.fixture
def kv(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, KV, "--port", str(port), "--data", str(tmp_path / "kv.data")]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline()
    yield f"http://127.0.0.1:{port}"
    proc.kill()
    proc.wait()


def test_the_http_client_writes_reads_and_fails_when_refused(kv: str, tmp_path: Path) -> None:
    spec = WorkloadSpec.model_validate({"rate": 1, "client": {"type": "http", "url": kv}})
    first = _invoke(spec, tmp_path, Operation("write", "x/1", "5"), Operation("read", "x/1"), Operation("read", "x/2"))
    assert [(r.outcome, r.values) for r in first] == [("ok", ()), ("ok", ("5",)), ("ok", ())]
    assert requests.get(f"{kv}/kv/x/1", timeout=5).text == "5"
    closed = WorkloadSpec.model_validate(
        {"rate": 1, "client": {"type": "http", "url": f"http://127.0.0.1:{free_port()}"}}
    )
    refused = _invoke(closed, tmp_path, Operation("write", "x/1", "6"), Operation("read", "x/1"))
    assert [r.outcome for r in refused] == ["fail", "fail"]  # never connected: the write did not happen
