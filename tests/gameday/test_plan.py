"""Loading a GameDay: every problem, in the game day or in a drill it names, with file, line and field;
globs, order; and `drillctl gameday plan`, which touches nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from orchestrator.errors import SpecError
from orchestrator.gameday.plan import load_gameday
from tests.support import ROOT, drill, run, write

MARK = "# <-"


def good_drill(name: str) -> dict[str, object]:
    return drill(name, steady_state={"probes": [{"type": "tcp", "name": "db", "host": "127.0.0.1", "port": 5432}]})


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "drills").mkdir()
    for name in ("alpha", "beta", "gamma"):
        write(tmp_path / "drills", good_drill(name), f"{name}.yaml")
    return tmp_path


HEAD = """\
apiVersion: drillctl.dev/v1
kind: GameDay
metadata:
  name: weekly
spec:
"""


def issues(folder: Path, body: str) -> list[tuple[int | None, str, str]]:
    path = folder / "gameday.yaml"
    path.write_text(HEAD + body)
    with pytest.raises(SpecError) as e:
        load_gameday(path)
    return [(i.line, i.field, i.message) for i in e.value.issues]


def marked_line(folder: Path) -> int:
    lines = (folder / "gameday.yaml").read_text().splitlines()
    return next(n for n, text in enumerate(lines, 1) if MARK in text)


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ("  drills: [drills/alpha.yaml]\n  surprise: 1  # <-\n", "spec.surprise", "unknown field"),
        ("  drills: [drills/alpha.yaml]\n  schedule: '0 25 * * *'  # <-\n", "spec.schedule", "hour: 25"),
        ("  drills: [drills/alpha.yaml]\n  stop: sometimes  # <-\n", "spec.stop", "first_failure"),
        ("  drills: [drills/alpha.yaml]\n  cooldown: 5  # <-\n", "spec.cooldown", "expected a duration"),
        (
            "  drills: [drills/alpha.yaml]\n  window:\n    timezone: Europe/Atlantis  # <-\n"
            "    from: '09:00'\n    to: '17:00'\n",
            "spec.window.timezone",
            "unknown IANA time zone",
        ),
        ("  drills: [drills/alpha.yaml]\n  webhook: {url: ftp://x}  # <-\n", "spec.webhook.url", "pattern"),
        ("  drills: [drills/alpha.yaml]\n  lease: {duration: 1500ms}  # <-\n", "spec.lease.duration", "whole seconds"),
        ("  drills:\n    - drills/alpha.yaml\n    - drills/nope-*.yaml  # <-\n", "spec.drills[1]", "matches no drill"),
        (
            "  drills:\n    - drills/alpha.yaml\n    - drills/alpha.yaml  # <-\n",
            "spec.drills[1]",
            "already in the game day",
        ),
        ("  drills: [drills/alpha.yaml]\n  seed: 3  # <-\n", "spec.seed", "only matters with order: shuffled"),
    ],
)
def test_a_bad_game_day_gets_one_issue_with_line_and_field(folder: Path, body: str, field: str, message: str) -> None:
    (found,) = issues(folder, body)
    assert found[0] == marked_line(folder)
    assert found[1] == field
    assert message in found[2]


def test_problems_in_named_drills_are_reported_in_those_drill_files(folder: Path) -> None:
    write(folder / "drills", drill("broken", steady_state={"probes": []}), "broken.yaml")
    write(folder / "drills", good_drill("alpha"), "zeta.yaml")  # a second drill named alpha
    found = issues(folder, "  drills: ['drills/*.yaml']\n")
    broken = folder / "drills" / "broken.yaml"
    assert (6, "spec.drills", "two drill files have the name 'alpha'") in found
    with pytest.raises(SpecError) as e:
        load_gameday(folder / "gameday.yaml")
    (in_drill,) = [i for i in e.value.issues if i.file == str(broken)]
    assert in_drill.field == "spec.steady_state.probes" and in_drill.line is not None


def test_globs_expand_in_name_order_and_skip_game_days(folder: Path) -> None:
    (folder / "drills" / "other-gameday.yaml").write_text(HEAD + "  drills: [alpha.yaml]\n")
    path = folder / "gameday.yaml"
    path.write_text(HEAD + "  drills: [drills/gamma.yaml, 'drills/*.yaml']\n")
    with pytest.raises(SpecError, match=r"gamma\.yaml is already in the game day"):
        load_gameday(path)
    path.write_text(HEAD + "  drills: ['drills/*.yaml']\n")
    loaded = load_gameday(path)
    assert [d.spec.name for d in loaded.drills] == ["alpha", "beta", "gamma"]
    assert not loaded.lease_enabled  # no drill touches Kubernetes
    path.write_text(HEAD + "  drills: ['drills/*.yaml']\n  lease: {enabled: true}\n")
    assert load_gameday(path).lease_enabled


def test_a_seeded_shuffle_is_repeatable(folder: Path) -> None:
    path = folder / "gameday.yaml"
    orders = set()
    for seed in range(6):
        path.write_text(HEAD + f"  drills: ['drills/*.yaml']\n  order: shuffled\n  seed: {seed}\n")
        first = [d.spec.name for d in load_gameday(path).drills]
        assert first == [d.spec.name for d in load_gameday(path).drills]
        assert sorted(first) == ["alpha", "beta", "gamma"]
        orders.add(tuple(first))
    assert len(orders) > 1


def test_plan_prints_the_drills_and_touches_nothing(folder: Path) -> None:
    path = folder / "gameday.yaml"
    document = yaml.safe_load(HEAD + "  drills: ['drills/*.yaml']\n")
    document["spec"].update(
        cooldown="30s",
        schedule="0 10 * * 2",
        window={"timezone": "UTC", "from": "09:00", "to": "17:00"},
        lease={"enabled": True, "namespace": "chaos"},
    )
    path.write_text(yaml.safe_dump(document))
    result = run("gameday", "plan", str(path), "--output", "json", cwd=folder)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert [d["name"] for d in plan["drills"]] == ["alpha", "beta", "gamma"]
    assert plan["lease"] == {"name": "drillctl-gameday", "namespace": "chaos", "duration": 60.0}
    assert plan["schedule"] == "0 10 * * 2" and plan["cooldown"] == 30.0
    assert not (folder / "runs").exists()
    text = run("gameday", "plan", str(path), cwd=folder)
    assert "lease: chaos/drillctl-gameday" in text.stdout and "1. alpha" in text.stdout


def test_plan_of_an_invalid_game_day_exits_2_with_locations(folder: Path) -> None:
    path = folder / "gameday.yaml"
    path.write_text(HEAD + "  drills: [drills/alpha.yaml]\n  stop: maybe\n")
    result = run("gameday", "plan", str(path), cwd=folder)
    assert result.returncode == 2
    assert f"{path}:7: spec.stop:" in result.stderr


def test_the_shipped_game_day_plans_and_validate_skips_it() -> None:
    shipped = ROOT / "drills" / "gamedays" / "release-rehearsal.yaml"
    result = run("gameday", "plan", str(shipped))
    assert result.returncode == 0, result.stderr
    assert "1. quickstart" in result.stdout and "2. failover" in result.stdout
    validate = run("validate", str(ROOT / "drills"))
    assert validate.returncode == 0 and "release-rehearsal" not in validate.stdout
