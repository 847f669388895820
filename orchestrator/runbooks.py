"""Resolve `runbooks/<file>.md#<anchor>` links to the heading they point at.

Anchors are the GitHub slugs of Markdown headings, so a link that works here also works
when the runbook is read on a code host.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.bounded_io import read_file
from orchestrator.limits import RUNBOOK_FILE_BYTES, LimitExceeded

_OPENING = re.compile(r"#{1,6}\s")
_FENCE = re.compile(r"^\s*(```|~~~)")


def slugify(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def headings(markdown: str) -> dict[str, str]:
    """Anchor -> heading text; repeated headings get -1, -2 suffixes as on GitHub."""
    found: dict[str, str] = {}
    in_fence = False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        text = None if in_fence else _heading_text(line)
        if text is None:
            continue
        anchor = base = slugify(text)
        n = 0
        while anchor in found:
            n += 1
            anchor = f"{base}-{n}"
        found[anchor] = text
    return found


def _heading_text(line: str) -> str | None:
    """The text of a `#` heading line without its closing #-run (which needs a space before it), else None.

    By hand: the one regular expression it replaces backtracked quadratically over a long run of spaces.
    """
    if _OPENING.match(line) is None:
        return None
    text = line.lstrip("#").strip()
    unclosed = text.rstrip("#")
    if unclosed and unclosed[-1].isspace():
        return unclosed.rstrip()
    return text or None


@dataclass(frozen=True)
class RunbookLink:
    ref: str
    path: Path
    anchor: str
    heading: str


@functools.lru_cache(maxsize=256)
def _headings_of(path: Path, mtime_ns: int, size: int) -> dict[str, str]:
    """A runbook's sections, read once per version of the file: `validate drills/` checks a hundred drills
    against the same few runbooks (mtime and size are part of the key so that an edited file is read again)."""
    return headings(read_file(path, RUNBOOK_FILE_BYTES).decode("utf-8"))


@dataclass
class RunbookIndex:
    """Runbook files found from one folder up; each read once."""

    roots: list[Path]
    _cache: dict[Path, dict[str, str]] = field(default_factory=dict)
    _found: dict[str, Path | None] = field(default_factory=dict)

    @classmethod
    def for_drill(cls, drill_path: Path) -> RunbookIndex:
        folder = drill_path.resolve().parent
        return cls(roots=[folder, *folder.parents])

    def _file(self, rel: str) -> Path | None:
        """The first `rel` found from the drill's folder up, looked for once per index (a drill links the same
        runbook from several SLAs and faults)."""
        if rel not in self._found:
            self._found[rel] = next((c for root in self.roots if (c := root / rel).is_file()), None)
        return self._found[rel]

    def _headings(self, path: Path) -> dict[str, str]:
        if path not in self._cache:
            st = path.stat()
            self._cache[path] = _headings_of(path, st.st_mtime_ns, st.st_size)
        return self._cache[path]

    def problem(self, ref: str) -> str | None:
        """Why `ref` does not resolve, or None when it does."""
        rel, _, anchor = ref.partition("#")
        path = self._file(rel)
        if path is None:
            return f"runbook {rel!r} not found in the drill's folder or any folder above it"
        try:
            known = self._headings(path)
        except LimitExceeded as e:
            return f"runbook {rel!r} cannot be checked: {e.reason}"
        except (OSError, UnicodeDecodeError) as e:
            return f"runbook {rel!r} cannot be read: {e}"
        if anchor not in known:
            sample = ", ".join(sorted(known)[:8]) or "none"
            return f"runbook {rel!r} has no section #{anchor} (sections: {sample})"
        return None

    def resolve(self, ref: str) -> RunbookLink:
        rel, _, anchor = ref.partition("#")
        path = self._file(rel)
        if path is None or anchor not in self._headings(path):
            raise KeyError(ref)
        return RunbookLink(ref=ref, path=path, anchor=anchor, heading=self._headings(path)[anchor])
