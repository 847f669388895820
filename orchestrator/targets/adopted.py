"""Processes drillctl did not start: found by pidfile, listening port or command line, and signalled safely.

An adopted process is its root process and every descendant at the moment it is found, each
identified by pid and start time (field 22 of /proc/PID/stat), so a signal sent from an undo record
long after (by the watchdog, by `drillctl recover`) never reaches a process that got a recycled pid:
the pid is opened as a pidfd, its start time checked, and the signal sent through the pidfd.

drillctl cannot restart what it did not start, so an adopted process declares how it comes back: a
`restart` argv, run detached (`targets/detach.py`: a session of its own, not drillctl's child, without
the run's DRILLCTL_RUN marker, so the watchdog's cleanup leaves it running), or nothing.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import FaultError
from orchestrator.model.spec import AdoptedProcess
from orchestrator.targets.procfs import proc_files

LISTEN = "0A"
"""The TCP state LISTEN in /proc/net/tcp{,6}."""
DETACH_TIMEOUT = 10.0
"""Longest the detaching helper may take to start a restart and hand back its pid."""
PIDFILE_BYTES = 64


class AdoptError(FaultError):
    """An adopted process cannot be told apart: several processes match its finder."""


@dataclass(frozen=True)
class Identity:
    """One process, as it was when found: a later process with the same pid is another one."""

    pid: int
    start: int

    def to_json(self) -> list[int]:
        return [self.pid, self.start]

    @classmethod
    def from_json(cls, pair: Iterable[int]) -> Identity:
        pid, start = pair
        return cls(int(pid), int(start))


@dataclass(frozen=True)
class AdoptedTarget:
    """An adopted process of the drill: how it is found and brought back; what is running is asked anew."""

    spec: AdoptedProcess
    finder: Mapping[str, Any]
    cwd: Path
    log_path: Path

    @classmethod
    def of(cls, spec: AdoptedProcess, folder: Path, run_dir: Path) -> AdoptedTarget:
        cwd = (folder / spec.cwd).resolve() if spec.cwd else folder.resolve()
        return cls(spec, finder(spec, folder), cwd, run_dir / "logs" / f"{spec.name}.restart.log")

    def find(self) -> list[Identity]:
        return find(self.finder)

    def describe(self) -> str:
        return describe_finder(self.finder)

    def record(self) -> dict[str, Any]:
        """Everything a revert needs, from the record alone: the processes found now, the finder, the restart."""
        return {
            "name": self.spec.name,
            "find": dict(self.finder),
            "pids": [who.to_json() for who in self.find()],
            "restart": self.spec.restart,
            "cwd": str(self.cwd),
            "log": str(self.log_path),
        }


def _stat_fields(raw: bytes) -> list[str]:
    """Fields of /proc/PID/stat from the state on (field 3), past the command name, which may hold spaces."""
    stat = raw.decode(errors="replace")
    return stat[stat.rindex(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """When the process started (clock ticks since boot); None when gone or a zombie."""
    try:
        fields = _stat_fields(Path(f"/proc/{pid}/stat").read_bytes())
    except (OSError, ValueError):
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


def finder(spec: AdoptedProcess, folder: Path) -> dict[str, Any]:
    """How the process is found, as data for the undo record (a pidfile resolved from the drill's folder)."""
    if spec.pidfile is not None:
        return {"pidfile": str((folder / spec.pidfile).resolve())}
    if spec.port is not None:
        return {"port": spec.port}
    return {"cmdline": spec.cmdline}


def describe_finder(find: Mapping[str, Any]) -> str:
    if "pidfile" in find:
        return f"pidfile {find['pidfile']}"
    if "port" in find:
        return f"the listener on port {find['port']}"
    return f"command line matching {find['cmdline']!r}"


def find(find: Mapping[str, Any]) -> list[Identity]:
    """The process and its descendants, root first; [] when none is running. AdoptError when several match."""
    parents = _parents()
    if "pidfile" in find:
        matched = _from_pidfile(Path(find["pidfile"]))
    elif "port" in find:
        matched = listeners(int(find["port"]))
    else:
        pattern = re.compile(find["cmdline"])
        matched = _matching_cmdline(pattern)
    matched = {pid for pid in matched if pid in parents}
    roots = sorted(pid for pid in matched if not _has_ancestor_in(pid, matched, parents))
    if len(roots) > 1:
        raise AdoptError(f"{describe_finder(find)}: several processes match (pids {', '.join(map(str, roots))})")
    if not roots:
        return []
    tree = [roots[0], *descendants(roots[0], parents)]
    found = [Identity(pid, start) for pid in tree if (start := start_time(pid)) is not None]
    return found if found and found[0].pid == roots[0] else []


def _parents() -> dict[int, int]:
    """pid -> parent pid of every live process (zombies left out): one scan of /proc."""
    parents = {}
    for pid, raw in proc_files("stat"):
        try:
            fields = _stat_fields(raw)
        except ValueError:
            continue
        if fields[0] not in ("Z", "X"):
            parents[pid] = int(fields[1])
    return parents


def _has_ancestor_in(pid: int, group: set[int], parents: Mapping[int, int]) -> bool:
    seen = {pid}
    while (pid := parents.get(pid, 0)) > 1 and pid not in seen:
        if pid in group:
            return True
        seen.add(pid)
    return False


def descendants(root: int, parents: Mapping[int, int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    out, todo = [], sorted(children.get(root, []))
    while todo:
        pid = todo.pop(0)
        out.append(pid)
        todo += sorted(children.get(pid, []))
    return out


def _from_pidfile(path: Path) -> set[int]:
    try:
        with path.open("rb") as f:
            text = f.read(PIDFILE_BYTES).decode(errors="replace").strip()
    except OSError:
        return set()
    first = text.split()[0] if text else ""
    return {int(first)} if first.isdigit() else set()


def listeners(port: int) -> set[int]:
    """Processes holding a TCP socket that listens on `port` (IPv4 or IPv6): socket inodes from /proc/net/tcp{,6},
    matched against every process's open files."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return set()
    holders = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = os.listdir(entry / "fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(entry / "fd" / fd) in inodes:
                    holders.add(int(entry.name))
                    break
            except OSError:
                continue
    return holders


def _matching_cmdline(pattern: re.Pattern[str]) -> set[int]:
    """Processes whose space-joined argv matches; drillctl itself (and its detaching helper) left out."""
    me = os.getpid()
    out = set()
    for pid, raw in proc_files("cmdline"):
        argv = raw.rstrip(b"\0").split(b"\0")
        if pid == me or not raw or b"orchestrator.targets.detach" in argv:
            continue
        if pattern.search(" ".join(a.decode(errors="replace") for a in argv)):
            out.add(pid)
    return out


def send(identities: Iterable[Identity], sig: signal.Signals) -> list[Identity]:
    """Signal each process that is still the one recorded; returns those signalled (the others are gone)."""
    reached = []
    for who in identities:
        try:
            fd = os.pidfd_open(who.pid)
        except (ProcessLookupError, OSError):
            continue
        try:
            if start_time(who.pid) != who.start:
                continue  # exited, and its pid went to someone else
            signal.pidfd_send_signal(fd, sig)
            reached.append(who)
        except ProcessLookupError:
            continue
        finally:
            os.close(fd)
    return reached


def living(identities: Iterable[Identity]) -> list[Identity]:
    return [who for who in identities if start_time(who.pid) == who.start]


async def restart_detached(argv: list[str], cwd: str, log: str) -> int:
    """Start `argv` detached (its own session, not our child, without the run's marker); its pid."""
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    helper = [sys.executable, "-P", "-m", "orchestrator.targets.detach", log, cwd, "--", *argv]
    proc = await asyncio.create_subprocess_exec(
        *helper,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=without_run_marker(),
    )
    try:
        async with asyncio.timeout(DETACH_TIMEOUT):
            out, err = await proc.communicate()
    except TimeoutError as e:
        proc.kill()
        await proc.wait()
        raise FaultError(f"restart {argv[0]}: not started within {DETACH_TIMEOUT:g}s") from e
    text = out.decode(errors="replace").strip()
    if proc.returncode != 0 or not text.isdigit():
        raise FaultError(f"restart {argv[0]} failed: {err.decode(errors='replace').strip()[:500] or proc.returncode}")
    return int(text)


def without_run_marker() -> dict[str, str]:
    from orchestrator.watchdog import RUN_MARKER  # the watchdog imports targets; at call time only

    return {k: v for k, v in os.environ.items() if k != RUN_MARKER}
