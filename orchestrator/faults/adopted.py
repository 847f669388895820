"""What local drivers record and report of adopted processes (`targets/adopted.py`), from undo records alone."""

from __future__ import annotations

from typing import Any

from orchestrator.faults.base import Touched
from orchestrator.model.undo import Undo
from orchestrator.targets import adopted
from orchestrator.targets.adopted import Identity


def adopted_pids(state: Any) -> list[Identity]:
    """Every adopted process an undo record names (records written before adoption existed have none)."""
    return [Identity.from_json(pair) for member in state.get("adopted", []) for pair in member["pids"]]


def adopted_touched(undo: Undo) -> Touched:
    """The adopted processes a fault found (pid), or did not find, when it was prepared."""
    return Touched(
        tuple(
            f"process/{m['name']} (pid {m['pids'][0][0]})" if m["pids"] else f"process/{m['name']} (not running)"
            for m in undo.state.get("adopted", [])
        )
    )


def vanished(state: Any) -> list[str]:
    """Notes for adopted processes that were gone when the fault began, or went during it."""
    notes = []
    for member in state.get("adopted", []):
        pids = [Identity.from_json(pair) for pair in member["pids"]]
        if not pids:
            notes.append(f"adopted process {member['name']} was not running when the fault began")
        elif not adopted.living(pids[:1]):
            notes.append(f"adopted process {member['name']} (pid {pids[0].pid}) exited during the fault")
    return notes
