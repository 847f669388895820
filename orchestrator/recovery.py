"""Settling journals that a run could not settle itself: after kill -9, a host crash, or a revert
that failed. Used by `drillctl recover` and by the watchdog that outlives a killed run.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from orchestrator.errors import DrillError
from orchestrator.faults.base import DriverRegistry
from orchestrator.faults.registry import build_registry
from orchestrator.journal import Journal, JournalBusy, is_held, pending
from orchestrator.model.spec import LocalTargets
from orchestrator.targets.local import LocalFleet
from orchestrator.toxiproxy_client import ToxiproxyClient

JOURNAL = "journal.jsonl"
RECOVERY_DEADLINE = 60.0


@dataclass
class Settled:
    journal: Path
    reverted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    busy: bool = False


def unsettled(runs_dir: Path) -> list[Path]:
    """Journals under `runs_dir` that still hold undo records nobody reverted, and no live run holds."""
    if not runs_dir.is_dir():
        return []
    return sorted(p for p in runs_dir.glob(f"*/{JOURNAL}") if pending(p) and not is_held(p))


def standalone_registry() -> DriverRegistry:
    """Drivers that work from undo records alone: no drill, no live processes, URLs from the records."""
    return build_registry(ToxiproxyClient("http://127.0.0.1:8474"), LocalFleet(LocalTargets(), Path("."), Path(".")))


async def settle(path: Path, registry: DriverRegistry | None = None) -> Settled:
    """Revert every pending record of one journal, newest first, recording each outcome there."""
    result = Settled(journal=path)
    try:
        journal = Journal(path)
    except JournalBusy:
        result.busy = True
        return result
    registry = registry or standalone_registry()
    log = structlog.get_logger().bind(journal=str(path))
    try:
        for undo in reversed(pending(path)):
            try:
                driver = registry.for_undo(undo)
                await asyncio.wait_for(driver.revert(undo), RECOVERY_DEADLINE)
            except (DrillError, KeyError, OSError, TimeoutError) as e:
                journal.record("revert_failed", undo, error=str(e))
                result.failed.append(f"{undo.step_id}: {e}")
                log.error("recovery_revert_failed", step=undo.step_id, error=str(e))
                continue
            journal.record("reverted", undo)
            result.reverted.append(undo.step_id)
            log.info("recovery_reverted", step=undo.step_id, driver=undo.driver)
    finally:
        journal.close()
    return result
