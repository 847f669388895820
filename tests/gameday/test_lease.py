"""The game-day Lease against the real test control plane (kube-apiserver): two holders at once,
release and takeover, renewal, a lost lease, and two concurrent `drillctl gameday run`."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import pytest
from kubernetes import client

from orchestrator.gameday.lease import ClusterLease, LeaseBusy, LeaseConfig, LeaseHolder, micro_time
from orchestrator.kube.access import KubeAccess, KubeConnection, connect
from tests.fixtures.kube import KubeCluster
from tests.gameday.test_run import gameday, short_drill
from tests.support import DRILLCTL, wait_while_running, write


@pytest.fixture
def namespace(kube_cluster: KubeCluster) -> Iterator[str]:
    name = f"gday-lease-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(kube_cluster.api_client())
    core.create_namespace({"metadata": {"name": name}}, _request_timeout=10)
    yield name
    core.delete_namespace(name, _request_timeout=10)


@pytest.fixture
def connection(kube_cluster: KubeCluster) -> KubeConnection:
    return connect(KubeAccess(kubeconfig=str(kube_cluster.kubeconfig)))


def holder(
    connection: KubeConnection, namespace: str, who: str, duration: int = 30, wait: float | None = None
) -> LeaseHolder:
    config = LeaseConfig(name="drillctl-gameday", namespace=namespace, duration=duration, identity=who)
    return LeaseHolder(ClusterLease(connection, config), wait)


def read(kube_cluster: KubeCluster, namespace: str) -> client.V1Lease:
    api = client.CoordinationV1Api(kube_cluster.api_client())
    return api.read_namespaced_lease("drillctl-gameday", namespace, _request_timeout=10)


def test_second_holder_is_refused_then_waits_and_takes_the_released_lease(
    kube_cluster: KubeCluster, connection: KubeConnection, namespace: str
) -> None:
    first = holder(connection, namespace, "first")
    first.acquire()
    try:
        with pytest.raises(LeaseBusy, match="another game day holds lease") as refused:
            holder(connection, namespace, "second").acquire()
        assert refused.value.holder.identity == "first"

        began = time.monotonic()
        with pytest.raises(LeaseBusy):
            holder(connection, namespace, "second", wait=2.0).acquire()
        assert 1.5 < time.monotonic() - began < 20

        waiting = holder(connection, namespace, "second", wait=60.0)
        outcome: list[BaseException | None] = []
        thread = threading.Thread(target=lambda: outcome.append(_acquire(waiting)))
        thread.start()
        time.sleep(1.0)  # let it start waiting on the live lease
        assert read(kube_cluster, namespace).spec.holder_identity == "first"
    finally:
        released = time.monotonic()
        first.release()
    thread.join(60)
    took = time.monotonic() - released
    try:
        assert outcome == [None]
        assert read(kube_cluster, namespace).spec.holder_identity == "second"
        print(f"waiting holder took the released lease {took:.2f}s after release (lease duration 30s)")
        assert took < 15, "the waiter should see the release through its watch, not wait for expiry"
        assert read(kube_cluster, namespace).spec.lease_transitions == 1
    finally:
        waiting.release()
    assert not read(kube_cluster, namespace).spec.holder_identity


def _acquire(h: LeaseHolder) -> BaseException | None:
    try:
        h.acquire()
    except BaseException as e:
        return e
    return None


def test_an_expired_lease_is_taken_over_and_a_held_one_is_renewed(
    kube_cluster: KubeCluster, connection: KubeConnection, namespace: str
) -> None:
    api = client.CoordinationV1Api(kube_cluster.api_client())
    stale = datetime.now(UTC) - timedelta(seconds=120)
    api.create_namespaced_lease(
        namespace,
        {
            "metadata": {"name": "drillctl-gameday"},
            "spec": {
                "holderIdentity": "crashed-game-day",
                "leaseDurationSeconds": 60,
                "acquireTime": micro_time(stale),
                "renewTime": micro_time(stale),
                "leaseTransitions": 3,
            },
        },
        _request_timeout=10,
    )
    h = holder(connection, namespace, "new", duration=3)
    h.acquire()
    try:
        lease = read(kube_cluster, namespace)
        assert lease.spec.holder_identity == "new" and lease.spec.lease_transitions == 4
        first_renew = lease.spec.renew_time
        time.sleep(4.5)  # past the 3s duration: only renewals (every 1s) keep it ours
        lease = read(kube_cluster, namespace)
        assert lease.spec.holder_identity == "new" and lease.spec.renew_time > first_renew
        assert lease.spec.renew_time > datetime.now(UTC) - timedelta(seconds=3)
        assert not h.lost.is_set()
    finally:
        h.release()


def test_a_holder_notices_when_its_lease_is_taken(
    kube_cluster: KubeCluster, connection: KubeConnection, namespace: str
) -> None:
    h = holder(connection, namespace, "victim", duration=3)
    h.acquire()
    try:
        api = client.CoordinationV1Api(kube_cluster.api_client())
        lease = read(kube_cluster, namespace)
        lease.spec.holder_identity = "usurper"
        api.replace_namespaced_lease("drillctl-gameday", namespace, lease, _request_timeout=10)
        assert h.lost.wait(15), "a renewal should find the lease gone"
        assert "taken over" in (h.lost_reason or "")
    finally:
        h.release()
    assert read(kube_cluster, namespace).spec.holder_identity == "usurper"  # release leaves others' leases alone


class Drained:
    """A pipe read to its end by a thread of its own, so a test can wait for a line while the process runs."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line)

    def has(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def text(self, timeout: float = 30) -> str:
        self._thread.join(timeout)
        return "".join(self.lines)


def test_two_concurrent_game_days_one_refused_one_waits(
    kube_cluster: KubeCluster, namespace: str, tmp_path: Path
) -> None:
    """The first game day holds the lease, gated in its drill's setup, until a second was refused and a third is
    waiting: states, not sleeps (on a loaded machine a contender's start alone took longer than a whole short
    drill, so it found the lease free)."""
    gate = tmp_path / "gate"
    drill = short_drill("only", "2s")
    write(tmp_path, drill, "drill.yaml")
    gated = copy.deepcopy(drill)
    [upstream] = gated["spec"]["targets"]["local"]["processes"]
    healthz = upstream["ready"]["probe"]["url"]
    check = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)"
    upstream["ready"] = {
        "probe": {
            "type": "command",
            "name": "upstream-gated",
            "argv": ["sh", "-c", 'test -e "$1" && exec "$0" -c "$3" "$2"', sys.executable, str(gate), healthz, check],
        },
        "timeout": "3m",
        "interval": "200ms",
    }
    write(tmp_path, gated, "gated.yaml")
    lease = {"enabled": True, "namespace": namespace, "duration": "10s"}
    first_day = write(tmp_path, gameday(["gated.yaml"], lease=lease), "gameday-gated.yaml")
    path = write(tmp_path, gameday(["drill.yaml"], lease=lease), "gameday.yaml")
    kube = ["--kubeconfig", str(kube_cluster.kubeconfig)]

    def start(day: Path, runs: str, *extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [DRILLCTL, "gameday", "run", str(day), "--runs-dir", str(tmp_path / runs), "-o", "json", *kube, *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    first = start(first_day, "runs-1")

    def held() -> bool:
        try:
            return bool(read(kube_cluster, namespace).spec.holder_identity)
        except client.ApiException:
            return False

    wait_while_running(first, held, 60, "the first game day to take the lease")
    refused = subprocess.run(
        [DRILLCTL, "gameday", "run", str(path), "--runs-dir", str(tmp_path / "runs-2"), *kube],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert first.poll() is None, "the first game day ended before its gate opened"
    assert refused.returncode == 3, refused.stderr
    assert f"another game day holds lease {namespace}/drillctl-gameday: rehearsal@" in refused.stderr
    waiter = start(path, "runs-3", "--wait", "2m")
    assert waiter.stdout is not None and waiter.stderr is not None
    waiter_out, waiter_err = Drained(waiter.stdout), Drained(waiter.stderr)
    deadline = time.monotonic() + 60
    while not waiter_err.has("waiting for the game day lease: rehearsal@"):
        assert waiter.poll() is None and time.monotonic() < deadline, (
            f"the third game day did not wait:\n{waiter_err.text()}"
        )
        time.sleep(0.1)
    assert first.poll() is None, "the first game day ended before its gate opened"
    gate.touch()
    out1, err1 = first.communicate(timeout=180)
    waiter.wait(timeout=180)
    out3, err3 = waiter_out.text(), waiter_err.text()
    assert first.returncode == 0, err1
    assert waiter.returncode == 0, err3
    one, three = json.loads(out1), json.loads(out3)
    assert one["lease"]["identity"] != three["lease"]["identity"]
    assert datetime.fromisoformat(three["started_at"]) >= datetime.fromisoformat(one["finished_at"]) - timedelta(
        seconds=1
    )
    assert not read(kube_cluster, namespace).spec.holder_identity
