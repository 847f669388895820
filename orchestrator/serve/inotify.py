"""Change events of a run directory on the event loop, through Linux inotify (ctypes: no library to install).

Why not re-reading files on a timer: a sample must show within a second of landing, and a timer short enough
for that would read every watched run many times a second whether it changed or not. An inotify descriptor
becomes readable when a file in the folder is written, created or renamed into it, so the server reads a run
only when the run wrote something.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import struct
from pathlib import Path

IN_MODIFY = 0x002
IN_CLOSE_WRITE = 0x008
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
EVENT = struct.Struct("iIII")
MASK = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF
READ_BYTES = 64 * 1024


class WatchError(OSError):
    """inotify is not available here, or the folder cannot be watched."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


class FolderWatch:
    """Sets `changed` whenever something in the folder changes; the names that changed since the last `take`.

    Events are coalesced into a set of names, so a burst of writes costs one wake-up, and the set is bounded
    by the folder's own files.
    """

    def __init__(self, folder: Path) -> None:
        libc = _libc()
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            raise WatchError(ctypes.get_errno(), f"inotify_init1: {os.strerror(ctypes.get_errno())}")
        if libc.inotify_add_watch(fd, os.fsencode(folder), MASK) < 0:
            errno = ctypes.get_errno()
            os.close(fd)
            raise WatchError(errno, f"inotify_add_watch {folder}: {os.strerror(errno)}")
        self.fd = fd
        self.changed = asyncio.Event()
        self._names: set[str] = set()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(fd, self._read)

    def _read(self) -> None:
        try:
            data = os.read(self.fd, READ_BYTES)
        except BlockingIOError:
            return
        offset = 0
        while offset + EVENT.size <= len(data):
            _, _, _, length = EVENT.unpack_from(data, offset)
            name = data[offset + EVENT.size : offset + EVENT.size + length].split(b"\0", 1)[0]
            self._names.add(os.fsdecode(name) if name else "")
            offset += EVENT.size + length
        self.changed.set()

    def take(self) -> set[str]:
        names, self._names = self._names, set()
        self.changed.clear()
        return names

    def close(self) -> None:
        self._loop.remove_reader(self.fd)
        os.close(self.fd)
