"""GameDay file -> the ordered drills it runs, and what `drillctl gameday plan` shows of them.

Every problem, in the game day or in any drill, is found before any run.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator.bounded_io import glob, has_magic
from orchestrator.errors import SpecError, SpecIssue
from orchestrator.limits import GAMEDAY_DRILLS, GAMEDAY_GLOB_ENTRIES, LimitExceeded
from orchestrator.loading import LoadedDrill, is_gameday, issue_at, load_drill, read_yaml, validate_model
from orchestrator.model.durations import format_duration
from orchestrator.model.gameday import GameDaySpec
from orchestrator.model.spec import DrillSpec

KUBERNETES_PROBES = frozenset({"kubernetes"})


@dataclass(frozen=True)
class LoadedGameDay:
    spec: GameDaySpec
    path: Path
    drills: list[LoadedDrill]
    """In the order they run."""

    @property
    def uses_kubernetes(self) -> bool:
        return any(uses_kubernetes(d.spec) for d in self.drills)

    @property
    def lease_enabled(self) -> bool:
        """One game day per cluster: on by default as soon as one drill touches Kubernetes."""
        wanted = self.spec.spec.lease.enabled
        return self.uses_kubernetes if wanted is None else wanted


def uses_kubernetes(drill: DrillSpec) -> bool:
    """A drill that acts on or watches a cluster: a fault with the Kubernetes backend or a Kubernetes probe."""
    body = drill.spec
    return (
        body.targets.kubernetes is not None
        or any(f.backend == "kubernetes" for f in body.faults)
        or any(p.type in KUBERNETES_PROBES for p in body.steady_state.probes)
    )


def load_gameday(path: Path) -> LoadedGameDay:
    """Load the game day and every drill it names; raise SpecError with every problem found in any of them."""
    file = str(path)
    data, lines = read_yaml(path)
    spec = validate_model(GameDaySpec, data, lines, file)
    body = spec.spec
    issues: list[SpecIssue] = []
    if body.order == "listed" and body.seed is not None:
        issues.append(issue_at(file, lines, ("spec", "seed"), "a seed only matters with order: shuffled"))
    files: list[Path] = []
    named: set[Path] = set()
    for i, pattern in enumerate(body.drills):
        try:
            matched = expand(path.parent, pattern)
        except LimitExceeded as e:
            issues.append(issue_at(file, lines, ("spec", "drills", i), f"{pattern!r}: {e.reason}"))
            continue
        if not matched:
            issues.append(issue_at(file, lines, ("spec", "drills", i), f"{pattern!r} matches no drill file"))
        for p in matched:
            if p.resolve() == path.resolve():
                continue
            if p in named:
                issues.append(issue_at(file, lines, ("spec", "drills", i), f"{p.name} is already in the game day"))
                continue
            files.append(p)
            named.add(p)
        if len(files) > GAMEDAY_DRILLS.value:
            too_many = LimitExceeded(GAMEDAY_DRILLS, file, len(files)).reason
            raise SpecError([*issues, issue_at(file, lines, ("spec", "drills", i), too_many)])
    drills: list[LoadedDrill] = []
    for p in files:
        try:
            drills.append(load_drill(p))
        except SpecError as e:
            issues += e.issues
    seen: set[str] = set()
    for d in drills:
        if d.spec.name in seen:
            issues.append(issue_at(file, lines, ("spec", "drills"), f"two drill files have the name {d.spec.name!r}"))
        seen.add(d.spec.name)
    if issues:
        raise SpecError(issues)
    return LoadedGameDay(spec=spec, path=path, drills=ordered(drills, body.order, body.seed))


def expand(folder: Path, pattern: str) -> list[Path]:
    """A path or glob relative to the game day's folder; a glob's drill files in name order (game days skipped)."""
    if not has_magic(pattern):
        candidate = Path(os.path.normpath(folder / pattern))
        return [candidate] if candidate.is_file() else []
    matches = glob(folder, pattern, GAMEDAY_GLOB_ENTRIES, str(folder))
    found = [
        Path(os.path.normpath(folder / m))
        for m in sorted(matches)
        if m.endswith((".yaml", ".yml")) and (folder / m).is_file()
    ]
    return [p for p in found if not is_gameday(p)]


def ordered(drills: list[LoadedDrill], order: str, seed: int | None) -> list[LoadedDrill]:
    """Listed order, or a shuffle that a seed makes repeatable (without one, each run differs)."""
    if order == "listed":
        return list(drills)
    shuffled = list(drills)
    random.Random(seed).shuffle(shuffled)
    return shuffled


def longest_drill(drill: LoadedDrill) -> float:
    """Upper bound of a drill's phases (setup and readiness not counted), for the plan."""
    spec = drill.spec
    return spec.spec.phases.baseline + spec.fault_phase_length() + spec.spec.phases.recovery


def outside_window(gameday: LoadedGameDay, now: datetime) -> str | None:
    """Why the game day may not start at `now`, or None when its window allows it (or it has none)."""
    window = gameday.spec.spec.window
    if window is None or window.allows(now):
        return None
    return f"outside the allowed window ({window.describe()})"


def plan_document(gameday: LoadedGameDay, now: datetime) -> dict[str, Any]:
    """`drillctl gameday plan --output json`; `plan_lines` reads the same document."""
    body = gameday.spec.spec
    lease = body.lease
    return {
        "gameday": gameday.spec.name,
        "file": str(gameday.path),
        "order": body.order,
        "seed": body.seed,
        "stop": body.stop,
        "cooldown": body.cooldown,
        "schedule": body.schedule,
        "window": None if body.window is None else body.window.describe(),
        "outside_window_now": outside_window(gameday, now),
        "webhook": None if body.webhook is None else body.webhook.url,
        "lease": (
            {"name": lease.name, "namespace": lease.namespace, "duration": lease.duration}
            if gameday.lease_enabled
            else None
        ),
        "drills": [
            {
                "name": d.spec.name,
                "file": str(d.path),
                "kubernetes": uses_kubernetes(d.spec),
                "faults": [f.name for f in d.spec.spec.faults],
                "slas": [s.name for s in d.spec.spec.slas],
                "longest": longest_drill(d),
            }
            for d in gameday.drills
        ],
        "longest": sum(longest_drill(d) for d in gameday.drills) + body.cooldown * max(0, len(gameday.drills) - 1),
    }


def plan_lines(doc: dict[str, Any]) -> list[str]:
    """`drillctl gameday plan` as text, from `plan_document`."""
    lines = [
        f"Game day {doc['gameday']} ({doc['file']})",
        f"  order {doc['order']}, cool-down {format_duration(doc['cooldown'])}, stop policy {doc['stop']}",
        f"  schedule: {doc['schedule'] or 'none (run by hand)'}",
        f"  window: {doc['window'] or 'any time'}" + (" (closed now)" if doc["outside_window_now"] else ""),
    ]
    lease = doc["lease"]
    if lease:
        lines.append(f"  lease: {lease['namespace']}/{lease['name']}, {lease['duration']:g}s, renewed every third")
    else:
        lines.append("  lease: none (no drill uses Kubernetes; set lease.enabled: true to take one anyway)")
    lines.append(f"  webhook: {doc['webhook'] or 'none'}")
    lines.append(f"Drills (phases at most {format_duration(doc['longest'])} in all, setup not counted):")
    for i, d in enumerate(doc["drills"], 1):
        kube = " [kubernetes]" if d["kubernetes"] else ""
        lines.append(
            f"  {i}. {d['name']} ({d['file']}){kube}: faults {', '.join(d['faults']) or 'none'}; "
            f"SLAs {', '.join(d['slas']) or 'none'}; at most {format_duration(d['longest'])}"
        )
    return lines
