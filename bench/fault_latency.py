"""Fault latency through drillctl's own Toxiproxy driver: scheduled start -> active, scheduled end -> reverted.

A private toxiproxy-server (the pinned binary) with 10 proxies. For 1, 10 and 100 concurrent
latency toxics spread over those proxies, `ToxicDriver.inject` is started for all of them at a
scheduled moment on the monotonic clock; "active" is when every inject call has returned and a
read back of every proxy's toxics (`ToxiproxyClient.toxics`) shows them all. Then every
`ToxicDriver.revert` starts at a scheduled end; "reverted" is when every call has returned and
the read back shows none. Prints p50/p99/max per size, and the CPU time this process (all its
threads) spent from each scheduled moment to the confirmation: on a shared machine the wall times
swing with the neighbours' load, the CPU much less. Goal: 100 toxics reverted in < 50 ms.

Kubernetes: `node.loss` (mode crash: cordon + NoExecute taint) through `KubeNodeLossDriver`
against the running test control plane ($KUBECONFIG, else /tmp/drillctl-k8s/kubeconfig), on a
KWOK node the benchmark adds (and deletes): scheduled start -> inject returned -> the node read
back cordoned and tainted; scheduled end -> revert returned -> read back as before.

    .venv/bin/python bench/fault_latency.py
    .venv/bin/python bench/fault_latency.py --kube-trials 0      # Toxiproxy only
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from orchestrator.analysis import percentile
from orchestrator.faults.network import ToxicDriver
from orchestrator.logs import silence
from orchestrator.model.spec import LatencyFault
from orchestrator.toxiproxy_client import ToxiproxyClient
from orchestrator.toxiproxy_server import LocalToxiproxy

PROXIES = 10
SIZES = (1, 10, 100)
LEAD = 0.05


async def visible(client: ToxiproxyClient, proxies: list[str]) -> int:
    lists = await asyncio.gather(*(client.toxics(p) for p in proxies))
    return sum(len(x) for x in lists)


Trial = tuple[float, float, float, float, float, float]


async def trial(client: ToxiproxyClient, proxies: list[str], n: int, k: int) -> Trial:
    """Seconds after the schedule: inject calls returned, confirmed active, revert calls returned, confirmed
    reverted; then this process's CPU time (every thread) from the schedule to each confirmation."""
    driver = ToxicDriver(client)
    specs = [
        LatencyFault.model_validate(
            {"name": f"t{i}", "type": "network.latency", "proxy": proxies[i % len(proxies)], "duration": "1s"}
            | {"latency": "5ms"}
        )
        for i in range(n)
    ]
    undos = [await driver.prepare(s, f"bench-{k}/t{i}") for i, s in enumerate(specs)]
    loop = asyncio.get_running_loop()

    start = loop.time() + LEAD
    await asyncio.sleep(start - loop.time())
    cpu = time.process_time()
    await asyncio.gather(*(driver.inject(s, u) for s, u in zip(specs, undos, strict=True)))
    injected = loop.time() - start
    seen = await visible(client, proxies)
    active = loop.time() - start
    inject_cpu = time.process_time() - cpu
    if seen != n:
        raise RuntimeError(f"{seen} toxics visible after injecting {n}")

    end = loop.time() + LEAD
    await asyncio.sleep(end - loop.time())
    cpu = time.process_time()
    await asyncio.gather(*(driver.revert(u) for u in undos))
    reverted_calls = loop.time() - end
    left = await visible(client, proxies)
    reverted = loop.time() - end
    revert_cpu = time.process_time() - cpu
    if left:
        raise RuntimeError(f"{left} toxics left after reverting {n}")
    return injected, active, reverted_calls, reverted, inject_cpu, revert_cpu


def row(label: str, values: list[float]) -> str:
    ordered = sorted(values)
    p50, p99 = percentile(ordered, 50) or 0.0, percentile(ordered, 99) or 0.0
    return f"{label:30} p50 {p50 * 1e3:7.1f}ms  p99 {p99 * 1e3:7.1f}ms  max {ordered[-1] * 1e3:7.1f}ms"


KUBECONFIG = os.environ.get("KUBECONFIG", "/tmp/drillctl-k8s/kubeconfig")


def kwok_node(name: str) -> dict[str, Any]:
    """A fake node KWOK keeps Ready; tainted NoSchedule so that nothing else lands on it."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": name, "drillctl-bench": name},
        },
        "spec": {"taints": [{"key": "drillctl-bench/pool", "value": name, "effect": "NoSchedule"}]},
        "status": {
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        },
    }


async def kube_trials(trials: int) -> None:
    from kubernetes import client, config

    from orchestrator.faults.kube_node import KubeNodeLossDriver
    from orchestrator.kube.access import KubeAccess
    from orchestrator.kube.marks import TAINT_KEY
    from orchestrator.model.spec import NodeLossFault

    api = client.CoreV1Api(config.new_client_from_config(config_file=KUBECONFIG))
    name = f"drillctl-bench-{os.getpid()}"
    await asyncio.to_thread(api.create_node, kwok_node(name))
    loop = asyncio.get_running_loop()

    async def node_state() -> tuple[bool, bool]:
        node = await asyncio.wait_for(asyncio.to_thread(api.read_node, name, _request_timeout=5), 10)
        tainted = any(t.key == TAINT_KEY for t in node.spec.taints or [])
        return bool(node.spec.unschedulable), tainted

    try:
        driver = KubeNodeLossDriver(KubeAccess(kubeconfig=KUBECONFIG, namespace="default", horizon=60.0), seed=1)
        spec = NodeLossFault.model_validate(
            {"type": "node.loss", "name": "bench", "duration": "1s", "mode": "crash"}
            | {"nodes": {"label_selector": f"drillctl-bench={name}"}}
        )
        rows: list[tuple[float, float, float, float]] = []
        for k in range(trials):
            undo = await driver.prepare(spec, f"bench-{k}/bench")
            start = loop.time() + LEAD
            await asyncio.sleep(start - loop.time())
            await driver.inject(spec, undo)
            injected = loop.time() - start
            if await node_state() != (True, True):
                raise RuntimeError("the node is not cordoned and tainted after inject")
            active = loop.time() - start
            end = loop.time() + LEAD
            await asyncio.sleep(end - loop.time())
            await driver.revert(undo)
            reverted_calls = loop.time() - end
            if await node_state() != (False, False):
                raise RuntimeError("the node is still cordoned or tainted after revert")
            rows.append((injected, active, reverted_calls, loop.time() - end))
        print(f"Kubernetes node.loss (crash: cordon + NoExecute taint) on KWOK node {name}, {trials} trials")
        print("  " + row("inject returned", [r[0] for r in rows]))
        print("  " + row("confirmed active (read back)", [r[1] for r in rows]))
        print("  " + row("revert returned", [r[2] for r in rows]))
        print("  " + row("confirmed reverted (read back)", [r[3] for r in rows]))
    finally:
        await asyncio.to_thread(api.delete_node, name)


async def main(trials: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = LocalToxiproxy(Path(tmp) / "toxiproxy.log", seed=None)
        url = await server.start()
        try:
            client = ToxiproxyClient(url)
            proxies = [f"bench{i}" for i in range(PROXIES)]
            for p in proxies:
                await client.create_proxy(p, "127.0.0.1:0", "127.0.0.1:1")
            print(f"toxiproxy {await client.version()} at {url}, {PROXIES} proxies, {trials} trials per size")
            for n in SIZES:
                results = [await trial(client, proxies, n, k) for k in range(trials)]
                print(f"{n:3d} concurrent toxics")
                print("  " + row("inject calls returned", [r[0] for r in results]))
                print("  " + row("confirmed active (read back)", [r[1] for r in results]))
                print("  " + row("revert calls returned", [r[2] for r in results]))
                print("  " + row("confirmed reverted (read back)", [r[3] for r in results]))
                print("  " + row("CPU, inject to confirmed", [r[4] for r in results]))
                print("  " + row("CPU, revert to confirmed", [r[5] for r in results]))
        finally:
            await server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--kube-trials", type=int, default=10)
    args = parser.parse_args()
    silence()
    started = time.monotonic()
    asyncio.run(main(args.trials))
    if args.kube_trials == 0:
        print("Kubernetes: --kube-trials 0: not measured")
    elif Path(KUBECONFIG).exists():
        asyncio.run(kube_trials(args.kube_trials))
    else:
        print(f"Kubernetes: no kubeconfig at {KUBECONFIG} (make k8s-up starts the test control plane): not measured")
    print(f"(bench took {time.monotonic() - started:.1f}s)")
