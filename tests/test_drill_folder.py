"""Every command a drill names runs in the drill file's folder: a real run started from another folder.

The drill's command probe, readiness probe, command workload client and command resolver all name their
programs by paths relative to the drill (`../tools/...`), and drillctl is started elsewhere with the drill given
by a relative path; a command run in drillctl's own working directory would not find its program.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import drill, report_of, run, samples, write

KV = """\
mkdir -p ../store
file="../store/$(printf %s "$2" | tr / _)"
if [ "$1" = set ]; then printf '%s\\n' "$3" >> "$file"; elif [ -e "$file" ]; then cat "$file"; else exit 3; fi
"""


def _tree(root: Path) -> Path:
    tools = root / "tools"
    tools.mkdir(parents=True)
    (tools / "ok.sh").write_text("echo ok\n")
    (tools / "who.sh").write_text("echo sleeper\n")
    (tools / "kv.sh").write_text(KV)
    ready = {"type": "command", "name": "sleeper-ready", "argv": ["sh", "../tools/ok.sh"], "output_match": "ok"}
    document = drill(
        "from-its-folder",
        targets={"local": {"processes": [{"name": "sleeper", "argv": ["sleep", "600"], "ready": {"probe": ready}}]}},
        steady_state={
            "interval": "100ms",
            "probes": [{"type": "command", "name": "tool", "argv": ["sh", "../tools/ok.sh"], "output_match": "ok"}],
        },
        workload={
            "rate": 10,
            "keys": 20,
            "reads": 0.3,
            "timeout": "2s",
            "client": {
                "type": "command",
                "write": ["sh", "../tools/kv.sh", "set", "{key}", "{value}"],
                "read": ["sh", "../tools/kv.sh", "get", "{key}"],
            },
        },
        phases={"baseline": "1s", "fault": "2s", "recovery": "2s"},
        faults=[
            {
                "name": "pause",
                "type": "gc.pause",
                "target": {"command": ["sh", "../tools/who.sh"], "timeout": "10s"},
                "pause": "200ms",
                "every": "1s",
                "duration": "2s",
            }
        ],
        slas=[{"name": "nothing-lost", "type": "data_loss", "max": 0}],
    )
    (root / "drills").mkdir()
    return write(root / "drills", document)


@pytest.mark.timeout(120)
def test_a_drill_runs_from_another_folder_with_its_commands_in_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tree(tmp_path / "repo")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    relative = Path("..") / "repo" / "drills" / "drill.yaml"

    planned = run("plan", str(relative), "--resolve", "-o", "json", cwd=Path.cwd())
    assert planned.returncode == 0, planned.stderr
    (resolver,) = json.loads(planned.stdout)["touches"]["resolvers"]
    assert resolver["picked"]["target"] == "sleeper"

    done = run("run", str(relative), "--runs-dir", "runs", "--quiet", cwd=Path.cwd())
    assert done.returncode == 0, done.stdout + done.stderr
    report = report_of(elsewhere / "runs")
    tool = samples(report, "tool")
    assert len(tool) > 30 and all(s["ok"] for s in tool), [s for s in tool if not s["ok"]][:3]
    workload = report["workload"]
    assert workload["verified"] and workload["lost"] == 0 and workload["acknowledged"] > 20, workload
    (fault,) = report["faults"]
    assert fault["touched"][0].startswith("resolved sleeper by command"), fault
    assert any((tmp_path / "repo" / "store").iterdir()), "the workload wrote beside the drill"
    assert not (elsewhere / "store").exists() and not (tmp_path / "store").exists()
