"""Settling journals that a run could not settle itself: after kill -9, a host crash, or a revert
that failed. Used by `drillctl recover` and by the watchdog that outlives a killed run.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from orchestrator.errors import BackendError, DrillError
from orchestrator.faults.base import DriverRegistry
from orchestrator.faults.registry import build_registry
from orchestrator.journal import JOURNAL, Journal, JournalBusy, is_held, pending
from orchestrator.model.spec import LocalTargets
from orchestrator.model.undo import Undo
from orchestrator.targets.local import LocalFleet
from orchestrator.toxiproxy_client import ToxiproxyClient

RECOVERY_DEADLINE = 60.0


@dataclass
class Settled:
    journal: Path
    reverted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    busy: bool = False
    unreadable: str | None = None
    """Why the journal could not be read (over a bound, not a journal): nothing in it was reverted."""


def unsettled(runs_dir: Path) -> list[Path]:
    """Journals under `runs_dir` that still hold undo records nobody reverted, and no live run holds.

    A journal that cannot be read is one of them: nobody can tell it is settled.
    """
    if not runs_dir.is_dir():
        return []
    return sorted(p for p in runs_dir.glob(f"*/{JOURNAL}") if maybe_pending(p) and not is_held(p))


def maybe_pending(path: Path) -> bool:
    try:
        return bool(pending(path))
    except DrillError:
        return True


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
    try:
        for undo in reversed(pending(path)):
            await _revert(undo, registry or standalone_registry(), journal, result, by=None)
    except DrillError as e:
        result.unreadable = str(e)
    finally:
        journal.close()
    return result


async def revert_expired(path: Path, step_id: str, registry: DriverRegistry | None = None) -> Settled:
    """Revert one step past its maximum lifetime while its (hung) run still holds the journal.

    Nothing to do if the run reverted it already; reverting twice is harmless anyway (idempotent).
    """
    result = Settled(journal=path)
    try:
        undo = next((u for u in pending(path) if u.step_id == step_id), None)
    except DrillError as e:
        result.unreadable = str(e)
        return result
    if undo is None:
        return result
    journal = Journal.beside_holder(path)
    try:
        await _revert(undo, registry or standalone_registry(), journal, result, by="watchdog: lifetime")
    finally:
        journal.close()
    return result


async def _revert(undo: Undo, registry: DriverRegistry, journal: Journal, result: Settled, by: str | None) -> None:
    """Retried with backoff on backend errors (a busy Toxiproxy, a restarting API server), under one deadline."""
    log = structlog.get_logger().bind(journal=str(journal.path))
    try:
        driver = registry.for_undo(undo)
        async with asyncio.timeout(RECOVERY_DEADLINE):
            async for attempt in AsyncRetrying(
                wait=wait_exponential(multiplier=0.1, max=2.0),
                retry=retry_if_exception_type((BackendError, OSError)),
                reraise=True,
            ):
                with attempt:
                    await driver.revert(undo)
    except (DrillError, KeyError, OSError, TimeoutError) as e:
        journal.record("revert_failed", undo, error=str(e) or type(e).__name__, by=by)
        result.failed.append(f"{undo.step_id}: {e}")
        log.error("recovery_revert_failed", step=undo.step_id, error=str(e))
        return
    journal.record("reverted", undo, by=by)
    result.reverted.append(undo.step_id)
    log.info("recovery_reverted", step=undo.step_id, driver=undo.driver, by=by)
