"""Target resolvers against real commands, a real local HTTP server and the real API server (`kube_cluster`);
then whole runs whose resolver fails: a clear error, exit 3, nothing injected."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from kubernetes import client

from orchestrator.journal import read_entries
from orchestrator.kube.access import KubeAccess
from orchestrator.model.spec import LocalTargets, TargetResolver
from orchestrator.resolvers import ResolveError, Wanted, resolve
from orchestrator.targets.local import LocalFleet
from tests.fixtures.kube import KubeCluster
from tests.fixtures.servers import Servers, adopting_drill, server_argv, serving
from tests.support import run, run_dirs

FLEET = LocalTargets.model_validate(
    {
        "adopted": [{"name": "db-a", "cmdline": "no-such-process-xyz", "restore": False}],
        "nodes": [{"name": "a", "processes": ["db-a"]}, {"name": "b", "processes": ["db-a"]}],
    }
)


def _resolve(tmp_path: Path, wanted: Wanted = "node", kube: KubeAccess | None = None, **resolver: Any) -> str:
    spec = TargetResolver.model_validate(resolver)
    fleet = LocalFleet(FLEET, tmp_path, tmp_path)
    return asyncio.run(resolve(spec, fleet, wanted, tmp_path, kube)).target


def test_a_command_names_the_node_and_bad_answers_are_clear_errors(tmp_path: Path) -> None:
    assert _resolve(tmp_path, command=["echo", "b"]) == "b"
    assert _resolve(tmp_path, command=["echo", "pg-1.example"], names={"pg-1.example": "a"}) == "a"
    bad = {
        "answered nothing": ["true"],
        "answered several targets": ["printf", "a\nb\n"],
        "answered 'garbage', which is no declared node": ["echo", "garbage"],
        "exited with 3: boom": ["sh", "-c", "echo boom >&2; exit 3"],
        "cannot start": ["/nonexistent/leader"],
    }
    for message, argv in bad.items():
        with pytest.raises(ResolveError, match=message):
            _resolve(tmp_path, command=argv)
    with pytest.raises(ResolveError, match="which is not a pid"):
        _resolve(tmp_path, command=["echo", "x1"], answer="pid")


def test_a_hanging_command_is_killed_with_its_children_at_the_deadline(tmp_path: Path) -> None:
    marker = tmp_path / "child-alive"
    script = f"(sleep 3; touch {marker}) & sleep 30"
    started = time.monotonic()
    with pytest.raises(ResolveError, match=r"no answer within 0\.5s"):
        _resolve(tmp_path, command=["sh", "-c", script], timeout="500ms")
    took = time.monotonic() - started
    assert took < 5, f"gave up after {took:.1f}s"
    time.sleep(3.5)
    assert not marker.exists(), "the command's whole session was killed, its children too"


def test_a_pid_or_port_answer_names_the_process_or_node_that_holds_it(tmp_path: Path, servers: Servers) -> None:
    proc, port = servers.start()
    targets = LocalTargets.model_validate(
        {
            "adopted": [{"name": "web", "port": port, "restart": server_argv(port)}],
            "nodes": [{"name": "n", "processes": ["web"]}],
        }
    )
    fleet = LocalFleet(targets, tmp_path, tmp_path)

    def ask(wanted: Wanted, **resolver: Any) -> str:
        spec = TargetResolver.model_validate(resolver)
        return asyncio.run(resolve(spec, fleet, wanted, tmp_path, None)).target

    assert ask("node", command=["echo", str(port)], answer="port") == "n"
    assert ask("process", command=["echo", str(proc.pid)], answer="pid") == "web"
    with pytest.raises(ResolveError, match="is in no declared node"):
        ask("node", command=["echo", "1"], answer="pid")


class _Status(BaseHTTPRequestHandler):
    answers: ClassVar[dict[str, tuple[int, bytes]]] = {}

    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(3)
        status, body = self.answers.get(self.path, (404, b"no"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return None

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except BrokenPipeError:
            return  # the resolver gave up on /slow at its deadline, as it should


@pytest.fixture
def status_server() -> Iterator[str]:
    _Status.answers = {
        "/cluster": (200, json.dumps({"leader": {"node": "a"}, "replicas": ["a", "b"], "ok": True}).encode()),
        "/nobody": (200, b'{"leader": null}'),
        "/html": (200, b"<html>not json</html>"),
        "/slow": (200, b'"a"'),
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Status)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_http_json_pointer_names_the_node_and_bad_answers_are_clear_errors(
    tmp_path: Path, status_server: str
) -> None:
    assert _resolve(tmp_path, url=f"{status_server}/cluster", pointer="/leader/node") == "a"
    assert _resolve(tmp_path, url=f"{status_server}/cluster", pointer="/replicas/1") == "b"
    bad = {
        ("/cluster", "/replicas"): "answered several targets",
        ("/cluster", "/leader/name"): "nothing at /leader/name",
        ("/cluster", "/ok"): "expected a name, pid or port",
        ("/cluster", "/leader"): "expected a name, pid or port",
        ("/nobody", "/leader"): "answered nothing",
        ("/html", ""): "not JSON",
        ("/missing", ""): "HTTP 404",
    }
    for (path, pointer), message in bad.items():
        with pytest.raises(ResolveError, match=message):
            _resolve(tmp_path, url=status_server + path, pointer=pointer)
    with pytest.raises(ResolveError, match=r"no answer within 0\.5s"):
        _resolve(tmp_path, url=f"{status_server}/slow", timeout="500ms")


def test_a_lease_holder_and_a_label_selector_are_read_from_the_cluster_now(
    tmp_path: Path, kube_cluster: KubeCluster
) -> None:
    api = kube_cluster.api_client()
    core, coordination = client.CoreV1Api(api), client.CoordinationV1Api(api)
    namespace = f"resolve-{int(time.time() * 1000) % 10**9}"
    core.create_namespace({"metadata": {"name": namespace}})
    access = KubeAccess(str(kube_cluster.kubeconfig), namespace=namespace)
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    try:
        lease = {"holderIdentity": "pg-1.example", "leaseDurationSeconds": 60, "renewTime": now}
        coordination.create_namespaced_lease(namespace, {"metadata": {"name": "leader"}, "spec": lease})
        picked = _resolve(tmp_path, kube=access, lease="leader", names={"pg-1.example": "a"})
        assert picked == "a"
        stale = {
            "holderIdentity": "pg-1.example",
            "leaseDurationSeconds": 1,
            "renewTime": (datetime.now(UTC) - timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
        }
        coordination.create_namespaced_lease(namespace, {"metadata": {"name": "old"}, "spec": stale})
        with pytest.raises(ResolveError, match="answered nothing"):
            _resolve(tmp_path, kube=access, lease="old")
        with pytest.raises(ResolveError, match=r"not found|404"):
            _resolve(tmp_path, kube=access, lease="none")
        for name, role in (("b", "primary"), ("a-replica", "replica"), ("c", "replica")):
            pod = {"name": name, "labels": {"app": "db", "role": role}}
            spec = {"containers": [{"name": "c", "image": "busybox"}]}
            core.create_namespaced_pod(namespace, {"metadata": pod, "spec": spec})
        assert _resolve(tmp_path, kube=access, label_selector="app=db,role=primary") == "b"
        with pytest.raises(ResolveError, match="answered several targets"):
            _resolve(tmp_path, kube=access, label_selector="role=replica")
        with pytest.raises(ResolveError, match="answered nothing"):
            _resolve(tmp_path, kube=access, label_selector="role=witness")
    finally:
        core.delete_namespace(namespace)


def _resolving_drill(tmp_path: Path, servers: Servers, resolver: dict[str, Any]) -> tuple[Path, int]:
    _, port = servers.start()
    fault = {"name": "kill", "type": "node.loss", "node": resolver, "duration": "1s"}
    return adopting_drill(tmp_path, port, [fault], baseline="500ms", recovery="2s"), port


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["true"], "answered nothing"),
        (["printf", "n\\nn\\n"], "answered several targets"),
        (["echo", "{oops"], "which is no declared node"),
        (["sleep", "30"], "no answer within 1s"),
    ],
)
def test_a_run_whose_resolver_cannot_answer_stops_in_preflight_with_nothing_injected(
    tmp_path: Path,
    servers: Servers,
    argv: list[str],
    error: str,
) -> None:
    path, port = _resolving_drill(tmp_path, servers, {"command": argv, "timeout": "1s"})
    plan = run("plan", str(path), "--resolve")
    assert plan.returncode == 3 and error in plan.stdout, plan.stdout + plan.stderr
    result = run("run", str(path), "--runs-dir", str(tmp_path / "runs"), "--quiet", timeout=120)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "fault kill:" in result.stdout and error in result.stdout
    (run_dir,) = run_dirs(tmp_path / "runs")
    assert list(read_entries(run_dir / "journal.jsonl")) == [], "nothing prepared, nothing injected"
    assert serving(port), "the adopted server was never touched"


def test_a_resolver_that_fails_at_injection_aborts_that_fault_before_anything_is_injected(
    tmp_path: Path,
    servers: Servers,
) -> None:
    """It answers once (the check after setup), then nothing: the fault's prepare fails, nothing is journaled."""
    once = tmp_path / "answered"
    script = f"test -e {once} || {{ touch {once}; echo n; }}"
    path, port = _resolving_drill(tmp_path, servers, {"command": ["sh", "-c", script]})
    result = run("run", str(path), "--runs-dir", str(tmp_path / "runs"), "--quiet", "-o", "json", timeout=120)
    assert result.returncode == 3, result.stdout + result.stderr
    (run_dir,) = run_dirs(tmp_path / "runs")
    report = json.loads((run_dir / "report.json").read_text())
    (fault,) = report["faults"]
    assert fault["injected_at"] is None
    assert (
        fault["error"].startswith("prepare failed, nothing injected: command sh -c")
        and "answered nothing" in fault["error"]
    )
    assert list(read_entries(run_dir / "journal.jsonl")) == []
    assert serving(port), "the adopted server was never touched"
