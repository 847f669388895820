"""Cgroups for local targets: a memory limit, memory in use, freezing, all detected at run time.

drillctl creates each target's cgroup under its *own* cgroup, so it works wherever that subtree
is delegated to it (a container, a sandbox, a `systemd-run --scope -p Delegate=yes` unit).
cgroup v2 is used when its memory controller is available to drillctl's cgroup; otherwise the
v1 memory hierarchy, with a cgroup of the same name in the v1 freezer hierarchy for freezing.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from orchestrator.errors import BackendError

SETTLE_TIMEOUT = 5.0
"""Longest wait for a freeze, a thaw or the last process to leave a cgroup being removed."""
SUPERVISOR_LEAF = "drillctl-supervisor"
"""cgroup v2 leaf drillctl moves itself into when it must enable memory for its own cgroup's children."""


class CgroupError(BackendError):
    """A cgroup is missing, not ours to change, or did not reach the state asked for."""


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as e:
        raise CgroupError(f"cannot read {path}: {e.strerror or e}") from e


def _write(path: Path, text: str) -> None:
    """One write(2) of the whole value: cgroup files take a value per write call."""
    try:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise CgroupError(f"cannot write {text!r} to {path}: {e.strerror or e}") from e


def _pids(procs: Path) -> list[int]:
    if not procs.exists():
        return []
    return [int(line) for line in _read(procs).split()]


@dataclass(frozen=True)
class _Mount:
    root: Path
    point: Path
    fstype: str
    options: frozenset[str]


def _mounts() -> list[_Mount]:
    """Cgroup mounts from /proc/self/mountinfo (not assumed at /sys/fs/cgroup)."""
    found = []
    for line in _read(Path("/proc/self/mountinfo")).splitlines():
        fields = line.split()
        dash = fields.index("-")
        fstype = fields[dash + 1]
        if fstype in ("cgroup", "cgroup2"):
            options = frozenset(fields[dash + 3].split(","))
            found.append(_Mount(Path(fields[3]), Path(fields[4]), fstype, options))
    return found


def _own_paths(pid: int | None = None) -> dict[str, str]:
    """Controller (or "" for cgroup v2) -> the cgroup path of drillctl (or of `pid`), from /proc/<pid>/cgroup."""
    paths: dict[str, str] = {}
    for line in _read(Path(f"/proc/{pid or 'self'}/cgroup")).splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _inside(mount: _Mount, path: str) -> Path:
    """Where cgroup `path` is under `mount`, which may expose only a subtree (mount root != /)."""
    relative = os.path.relpath(path, mount.root)
    if relative.startswith(".."):
        raise CgroupError(f"drillctl's cgroup {path} is outside the mounted subtree {mount.root} at {mount.point}")
    return (mount.point / relative).resolve()


@dataclass(frozen=True)
class Layout:
    """drillctl's own cgroups: the parents of every cgroup it creates for a target."""

    version: Literal[1, 2]
    memory: Path
    """Its cgroup in the memory hierarchy (v2: the unified one)."""
    freezer: Path | None
    """v1: its cgroup in the freezer hierarchy, None without one; v2: same as `memory`."""

    def memory_headroom(self) -> int | None:
        """Bytes drillctl's own cgroup may still charge before its limit; None without a limit."""
        limit = memory_limit(self.memory, self.version)
        return None if limit is None else max(0, limit - memory_usage(self.memory, self.version))

    def check_delegation(self) -> None:
        """Raise unless `delegate_memory` can work; touches nothing."""
        if self.version == 1:
            if not os.access(self.memory, os.W_OK):
                raise CgroupError(f"cannot create cgroups in {self.memory}: not writable by this user")
            return
        if "memory" in _read(self.memory / "cgroup.subtree_control").split():
            return
        if not os.access(self.memory / "cgroup.subtree_control", os.W_OK):
            raise CgroupError(
                f"{self.memory} does not enable the memory controller for its children and this user cannot: "
                "run drillctl in a delegated cgroup, e.g. `systemd-run --user --scope -p Delegate=yes drillctl run ...`"
            )
        strangers = [p for p in _pids(self.memory / "cgroup.procs") if not _descends_from(p, os.getpid())]
        if strangers and not self._is_root():
            raise CgroupError(
                f"{self.memory} holds processes other than drillctl ({', '.join(map(str, strangers[:5]))}), so "
                "cgroup v2 forbids enabling memory for its children: run drillctl in a cgroup of its own, e.g. "
                "`systemd-run --user --scope -p Delegate=yes drillctl run ...`"
            )

    def delegate_memory(self) -> None:
        """Make the memory controller available to children of drillctl's cgroup (v2 only).

        cgroup v2 refuses controllers in a non-root cgroup that holds processes, so drillctl and
        its children move into a leaf of their own first, as systemd's delegation rules advise.
        """
        if self.version == 1:
            return
        control = self.memory / "cgroup.subtree_control"
        if "memory" in _read(control).split():
            return
        self.check_delegation()
        if not self._is_root():
            leaf = self.memory / SUPERVISOR_LEAF
            _mkdir(leaf)
            for pid in _pids(self.memory / "cgroup.procs"):
                _write(leaf / "cgroup.procs", str(pid))
        _write(control, "+memory")

    def _is_root(self) -> bool:
        return not (self.memory / "cgroup.type").exists()


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat[stat.rindex(")") + 2 :].split()[1])
    return False


def detect() -> Layout:
    """cgroup v2 when its memory controller is available to drillctl's cgroup, else v1 memory [+ freezer]."""
    mounts = _mounts()
    own = _own_paths()
    unified = next((m for m in mounts if m.fstype == "cgroup2"), None)
    if unified is not None and "" in own:
        path = _inside(unified, own[""])
        if path.name == SUPERVISOR_LEAF:  # drillctl moved itself there: its cgroup is the parent
            path = path.parent
        if "memory" in _read(path / "cgroup.controllers").split():
            return Layout(2, path, path)
    v1 = {c: m for m in mounts if m.fstype == "cgroup" for c in m.options if c in ("memory", "freezer")}
    if "memory" not in v1 or "memory" not in own:
        where = f"; the cgroup v2 hierarchy at {unified.point} does not offer it" if unified else ""
        raise CgroupError(f"no memory controller available to drillctl's cgroup (neither cgroup v2 nor v1){where}")
    freezer = _inside(v1["freezer"], own["freezer"]) if "freezer" in v1 and "freezer" in own else None
    return Layout(1, _inside(v1["memory"], own["memory"]), freezer)


def memory_limit(directory: Path, version: int) -> int | None:
    """The memory limit of a cgroup (v2 memory.max, v1 memory.limit_in_bytes); None without one (or at the root)."""
    limit_file = directory / ("memory.max" if version == 2 else "memory.limit_in_bytes")
    if not limit_file.exists():
        return None
    limit = _read(limit_file).strip()
    return None if limit == "max" or int(limit) >= 2**62 else int(limit)


def memory_usage(directory: Path, version: int) -> int:
    """Bytes charged to a cgroup now (v2 memory.current, v1 memory.usage_in_bytes)."""
    return int(_read(directory / ("memory.current" if version == 2 else "memory.usage_in_bytes")))


@dataclass(frozen=True)
class MemoryCgroup:
    """The cgroup a process is charged to in the memory hierarchy (the unified one on v2)."""

    path: str
    """As /proc/<pid>/cgroup names it; "/" is the root, which charges nothing to any process alone."""
    directory: Path
    version: Literal[1, 2]

    def limit(self) -> int | None:
        return memory_limit(self.directory, self.version)


def memory_cgroup_of(pid: int | None = None) -> MemoryCgroup:
    """The memory cgroup of `pid` (None: drillctl's own): cgroup v2 when the memory controller is available
    there, else the v1 memory hierarchy; CgroupError when neither is (or it lies outside what is mounted here)."""
    mounts = _mounts()
    paths = _own_paths(pid)
    unified = next((m for m in mounts if m.fstype == "cgroup2"), None)
    if unified is not None and "" in paths:
        directory = _inside(unified, paths[""])
        if "memory" in _read(directory / "cgroup.controllers").split():
            return MemoryCgroup(paths[""], directory, 2)
    memory = next((m for m in mounts if m.fstype == "cgroup" and "memory" in m.options), None)
    if memory is None or "memory" not in paths:
        whose = f"pid {pid}" if pid else "drillctl"
        raise CgroupError(f"no memory controller (cgroup v2 or v1) is mounted here for {whose}")
    return MemoryCgroup(paths["memory"], _inside(memory, paths["memory"]), 1)


def joiner(procs_files: list[str]) -> Callable[[], None]:
    """A preexec_fn: the forked child writes "0" (itself) into each cgroup.procs file before exec.

    The paths are resolved by the caller, in the parent, so the child only opens and writes.
    """

    def join() -> None:
        for path in procs_files:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)

    return join


def _mkdir(path: Path) -> None:
    try:
        path.mkdir(exist_ok=True)
    except OSError as e:
        raise CgroupError(f"cannot create cgroup {path}: {e.strerror or e}") from e


def thaw_directory(directory: Path, version: int) -> None:
    """Thaw a freezer cgroup known only by path (an undo record); nothing to do if it is gone."""
    control = directory / ("cgroup.freeze" if version == 2 else "freezer.state")
    if control.exists():
        _write(control, "0" if version == 2 else "THAWED")


class Cgroup:
    """The cgroup of one local target, with a memory limit; nothing is touched until `create`."""

    def __init__(self, name: str, memory_limit: int, layout: Layout | None = None) -> None:
        self.name = name
        self.memory_limit = memory_limit
        self._layout = layout
        self._created = False

    @property
    def layout(self) -> Layout:
        if self._layout is None:
            self._layout = detect()
        return self._layout

    @property
    def memory_dir(self) -> Path:
        return self.layout.memory / self.name

    @property
    def freezer_dir(self) -> Path | None:
        return None if self.layout.freezer is None else self.layout.freezer / self.name

    def dirs(self) -> list[Path]:
        """Every directory of this cgroup: one on v2, memory and freezer on v1."""
        return list(dict.fromkeys(d for d in (self.memory_dir, self.freezer_dir) if d is not None))

    def create(self) -> None:
        """Create it with its limit (and no swap beyond it), once per object."""
        if self._created:
            return
        layout = self.layout
        layout.delegate_memory()
        for directory in self.dirs():
            _mkdir(directory)
        if layout.version == 2:
            _write(self.memory_dir / "memory.max", str(self.memory_limit))
            if (self.memory_dir / "memory.swap.max").exists():
                _write(self.memory_dir / "memory.swap.max", "0")
        else:
            _write(self.memory_dir / "memory.limit_in_bytes", str(self.memory_limit))
            if (self.memory_dir / "memory.memsw.limit_in_bytes").exists():
                _write(self.memory_dir / "memory.memsw.limit_in_bytes", str(self.memory_limit))
        self._created = True

    def procs_files(self) -> list[str]:
        """Where a process joins it: a cgroup.procs in each of its directories."""
        return [str(d / "cgroup.procs") for d in self.dirs()]

    def join_in_child(self) -> Callable[[], None]:
        return joiner(self.procs_files())

    def pids(self) -> list[int]:
        return sorted({pid for d in self.dirs() for pid in _pids(d / "cgroup.procs")})

    def memory_current(self) -> int:
        """Bytes charged to it now."""
        return memory_usage(self.memory_dir, self.layout.version)

    def _freezer(self) -> Path:
        directory = self.freezer_dir
        if directory is None:
            raise CgroupError(f"cgroup {self.name}: no freezer (cgroup v1 without a freezer hierarchy)")
        return directory

    def frozen(self) -> bool:
        directory = self._freezer()
        if self.layout.version == 2:
            return "frozen 1" in _read(directory / "cgroup.events").splitlines()
        return _read(directory / "freezer.state").strip() == "FROZEN"

    async def freeze(self) -> None:
        """Freeze every process in it and wait (SETTLE_TIMEOUT) until the kernel reports it frozen; idempotent."""
        await self._set_frozen(True)

    async def thaw(self) -> None:
        """Let its processes run again and wait until the kernel reports it thawed; idempotent."""
        await self._set_frozen(False)

    async def _set_frozen(self, frozen: bool) -> None:
        directory = self._freezer()
        if self.layout.version == 2:
            _write(directory / "cgroup.freeze", "1" if frozen else "0")
        else:
            _write(directory / "freezer.state", "FROZEN" if frozen else "THAWED")
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while self.frozen() != frozen:
            if time.monotonic() > deadline:
                state = "frozen" if frozen else "thawed"
                raise CgroupError(f"cgroup {directory} not {state} within {SETTLE_TIMEOUT:g}s")
            await asyncio.sleep(0.005)

    async def remove(self) -> None:
        """SIGKILL whatever is left in it (thawed first: v1 frozen tasks cannot die), then rmdir; idempotent."""
        existing = [d for d in self.dirs() if d.exists()]
        if not existing:
            return
        if self.freezer_dir is not None and self.freezer_dir.exists():
            await self.thaw()
        deadline = time.monotonic() + SETTLE_TIMEOUT
        for directory in existing:
            while True:
                for pid in self.pids():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY or time.monotonic() > deadline:
                        left = ", ".join(map(str, self.pids())) or "none listed"
                        raise CgroupError(
                            f"cannot remove cgroup {directory}: {e.strerror or e} (processes left: {left})"
                        ) from e
                await asyncio.sleep(0.02)
        self._created = False
