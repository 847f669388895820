"""What a fault touched and what its revert found reach the report: `drillctl run` against a real Toxiproxy
server, a real demo upstream and the real Kubernetes control plane (kube-apiserver, controllers, KWOK).

One drill holds two faults: a local latency toxic (its driver says nothing: no targets, no notes) and a
node loss on a private KWOK node that the test deletes while the fault holds. The revert finds the node
gone; that note and the chosen node with its seed must be in report.json (valid against the schema, read
back by `from_json`), report.md and report.html, not only in drill.log.jsonl.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
from kubernetes.client.exceptions import ApiException

from orchestrator.kube.marks import TAINT_KEY
from orchestrator.reporting.json_report import read_report
from orchestrator.reporting.report_schema import REPORT_SCHEMA
from tests.fixtures.toxiproxy import ToxiproxyServer, free_port
from tests.kube.support import Pool, kube_api, pool
from tests.reporting.test_html import parse
from tests.support import DRILLCTL, drill, report_of, run, run_dirs, upstream_process, wait_while_running, write

__all__ = ["kube_api", "pool"]

SEED = 7


def _drill(pool: Pool, victim_selector: str) -> dict[str, Any]:
    upstream, proxy = free_port(), free_port()
    return drill(
        "touched-and-notes",
        seed=SEED,
        targets={
            "local": {"processes": [upstream_process("upstream", upstream)]},
            "kubernetes": {"namespace": pool.namespace, "max_nodes": 1},
        },
        proxies=[{"name": "up", "listen": f"127.0.0.1:{proxy}", "upstream": f"127.0.0.1:{upstream}"}],
        steady_state={
            "interval": "100ms",
            "probes": [{"type": "http", "name": "stock", "url": f"http://127.0.0.1:{proxy}/stock", "timeout": "1s"}],
        },
        phases={"baseline": "1s", "fault": "8s", "recovery": "2s"},
        faults=[
            {"name": "slow", "type": "network.latency", "proxy": "up", "latency": "50ms", "duration": "1s"},
            {
                "name": "lose-node",
                "type": "node.loss",
                "mode": "crash",
                "nodes": {"label_selector": victim_selector},
                "duration": "8s",
            },
        ],
    )


def _tainted(pool: Pool, node: str) -> bool:
    try:
        return any(t["key"] == TAINT_KEY for t in pool.node(node)["spec"].get("taints") or [])
    except ApiException as e:
        if e.status == 404:
            return False
        raise


def test_a_vanished_node_and_what_each_fault_touched_reach_every_report(
    pool: Pool, toxiproxy: ToxiproxyServer, tmp_path: Path
) -> None:
    victim = pool.add_node({"ka-role": "victim"})
    pool.add_node()  # a second node of the pool, which the selector must not choose
    path = write(tmp_path, _drill(pool, f"ka-pool={pool.tag},ka-role=victim"))
    runs = tmp_path / "runs"
    args = [DRILLCTL, "run", str(path), "--runs-dir", str(runs), "--toxiproxy-url", toxiproxy.url]
    args += ["--kubeconfig", str(pool.kubeconfig), "--quiet"]
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        wait_while_running(proc, lambda: _tainted(pool, victim), 60, f"drillctl's taint on node {victim}")
        pool.core.delete_node(victim)  # the node dies for good while the fault holds
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, (out, err)

    report = report_of(runs)
    validator = jsonschema.Draft202012Validator(REPORT_SCHEMA)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(report)]
    assert errors == [], errors
    faults = {f["name"]: f for f in report["faults"]}
    vanished = f"node {victim} vanished meanwhile: nothing to restore"
    assert faults["lose-node"]["touched"] == [f"node/{victim}"]
    assert faults["lose-node"]["seed"] == SEED
    assert faults["lose-node"]["revert_notes"] == [vanished]
    assert faults["slow"]["touched"] == [] and faults["slow"]["seed"] is None
    assert faults["slow"]["revert_notes"] == [], "a local driver returns no notes"
    assert faults["lose-node"]["reverted_at"] is not None, "a vanished node is a note, not a failed revert"

    (run_dir,) = run_dirs(runs)
    log = [json.loads(line) for line in (run_dir / "drill.log.jsonl").read_text().splitlines()]
    assert [e["note"] for e in log if e["event"] == "kube_node_reverted"] == [vanished], "the log still has it"

    markdown = (run_dir / "report.md").read_text()
    assert f"- `lose-node` touched `node/{victim}` (seed {SEED})\n  - revert: {vanished}\n" in markdown
    assert "`slow` touched" not in markdown

    page = parse((run_dir / "report.html").read_text())
    (table,) = [t for t in page.tables if t[0][:2] == ["Fault", "Type"]]
    head = table[0]
    assert head == ["Fault", "Type", "Parameters", "Injected at", "Reverted at", "Touched", "Revert notes", "Runbook"]
    rows = {row[0]: dict(zip(head, row, strict=True)) for row in table[1:]}
    assert rows["lose-node"]["Touched"] == f"node/{victim}seed {SEED}"
    assert rows["lose-node"]["Revert notes"] == vanished
    assert rows["slow"]["Touched"] == "" and rows["slow"]["Revert notes"] == ""

    # Read back from report.json alone, the report renders the same again.
    mark = read_report(run_dir).timeline.fault("lose-node")
    assert mark is not None and mark.touched == (f"node/{victim}",) and mark.revert_notes == (vanished,)
    again = run("report", str(run_dir), "--format", "md")
    assert again.returncode == 0, again.stderr
    assert (run_dir / "report.md").read_text() == markdown
