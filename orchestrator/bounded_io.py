"""Reading within a `Limit`: files, lines of a stream, answers of HTTP backends, and globs.

Each reader stops at the bound plus one byte, so an input over it costs the bound, never the
input's own size (an endless body, a writer that never sends a newline, /dev/zero).
"""

from __future__ import annotations

import fnmatch
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from orchestrator.limits import Limit, check_answer

if TYPE_CHECKING:
    import asyncio

    import aiohttp

CHUNK = 1 << 16
FILE_PIECE = 1 << 20


def read_file(path: Path, limit: Limit) -> bytes:
    """The whole file, refused (LimitExceeded naming the file) once it is over `limit` bytes: before reading
    when its size says so, else once reading passes the bound (a device, a file still growing)."""
    data = bytearray()
    with path.open("rb") as f:
        limit.check(os.fstat(f.fileno()).st_size, str(path))
        # In pieces: `read(n)` would reserve n bytes at once, however short the file.
        while len(data) <= limit.value and (piece := f.read(min(FILE_PIECE, limit.value + 1 - len(data)))):
            data += piece
    limit.check(len(data), str(path))
    return bytes(data)


async def read_line(reader: asyncio.StreamReader) -> bytes | None:
    """The next line with its newline (the last one may have none; b"" at the end of the stream), or None
    for a line longer than the reader's own `limit`: read to its end and dropped, never held whole."""
    import asyncio  # here: `drillctl report` refuses a huge report.json before importing asyncio

    dropping = False
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as e:
            return None if dropping and e.partial else e.partial
        except asyncio.LimitOverrunError as e:
            await reader.readexactly(e.consumed)
            dropping = True
            continue
        return None if dropping else line


class Readable(Protocol):
    def read(self, amt: int, /) -> bytes: ...


def read_stream(
    stream: Readable, limit: Limit, where: str, declared: int | None = None, deadline: float | None = None
) -> bytes:
    """A blocking HTTP answer (urllib3, http.client), refused as AnswerTooLarge once over `limit`;
    `declared` is its Content-Length, refused before anything is read. Past `deadline` (time.monotonic)
    it is a TimeoutError: a socket timeout bounds each read, not a body that trickles in."""
    if declared is not None:
        check_answer(limit, declared, where)
    data = bytearray()
    while chunk := stream.read(CHUNK):
        data += chunk
        check_answer(limit, len(data), where)
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"{where}: the answer took longer than the timeout to read")
    return bytes(data)


async def read_answer(response: aiohttp.ClientResponse, limit: Limit, where: str) -> bytes:
    """An aiohttp answer's body, refused as AnswerTooLarge once over `limit` (or its Content-Length is)."""
    if response.content_length is not None:
        check_answer(limit, response.content_length, where)
    data = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK):
        data += chunk
        check_answer(limit, len(data), where)
    return bytes(data)


def content_length(value: str | None) -> int | None:
    """A Content-Length header as a number, or None when absent or not one."""
    return int(value) if value is not None and value.isdigit() else None


def glob(folder: Path, pattern: str, limit: Limit, where: str) -> list[str]:
    """The paths under `folder` that `pattern` matches (`*`, `?`, `[...]` in a part; `**` for any depth), as
    glob.glob(..., recursive=True) finds them, refused once more than `limit` directory entries were looked at.

    glob.glob walks as far as the pattern reaches (`/**/*.yaml` is the whole filesystem, a symlink loop
    goes round until the path is too long) and only then answers. This walk goes part by part, without
    recursion, and counts every entry it looks at, so neither a tree nor a pattern can make it run long.
    """
    seen = 0

    def entries(path: str) -> list[tuple[str, bool]]:
        """(name, is a folder) of what `path` holds, hidden names left out, each entry counted."""
        nonlocal seen
        found = []
        try:
            with os.scandir(os.path.join(folder, path)) as it:
                for entry in it:
                    seen += 1
                    limit.check(seen, where)
                    found.append((entry.name, _is_dir(entry)))
        except OSError:  # not a folder, gone, unreadable, a symlink loop
            pass
        return found

    def below(path: str, folders_only: bool) -> list[str]:
        """Everything visible below `path` (or its folders only), at any depth."""
        found, todo = [], [path]
        while todo:
            here = todo.pop()
            for name, is_dir in entries(here):
                if name.startswith("."):
                    continue
                if is_dir:
                    todo.append(os.path.join(here, name))
                if is_dir or not folders_only:
                    found.append(os.path.join(here, name))
        return found

    parts = [p for p in pattern.split(os.sep) if p]
    paths = [os.sep if os.path.isabs(pattern) else ""]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        matched: dict[str, None] = {}  # in order, once each: `**/**` would otherwise multiply the paths
        for path in paths:
            if part == "**" and last:  # glob names the folder itself with a trailing slash
                matched |= dict.fromkeys(([os.path.join(path, "")] if path else []) + below(path, False))
            elif part == "**":
                matched |= dict.fromkeys([path, *below(path, True)])
            elif not has_magic(part):
                joined = os.path.join(path, part)
                if not last or os.path.lexists(os.path.join(folder, joined)):
                    matched[joined] = None
            else:
                for name, is_dir in entries(path):
                    hidden = name.startswith(".") and not part.startswith(".")
                    if not hidden and fnmatch.fnmatchcase(name, part) and (last or is_dir):
                        matched[os.path.join(path, name)] = None
        paths = list(matched)
    return paths


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def has_magic(pattern: str) -> bool:
    """Whether a pattern (or one part of it) holds a glob wildcard."""
    return any(c in pattern for c in "*?[")
