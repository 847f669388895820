"""Resolve `runbooks/<file>.md#<anchor>` links to the heading they point at.

Anchors are the GitHub slugs of Markdown headings, so a link that works here also works
when the runbook is read on a code host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)(?:\s+#+)?\s*$")  # a closing #-run needs a space before it
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
        match = None if in_fence else _HEADING.match(line)
        if match is None:
            continue
        text = match.group(2)
        anchor = base = slugify(text)
        n = 0
        while anchor in found:
            n += 1
            anchor = f"{base}-{n}"
        found[anchor] = text
    return found


@dataclass(frozen=True)
class RunbookLink:
    ref: str
    path: Path
    anchor: str
    heading: str


@dataclass
class RunbookIndex:
    """Runbook files found from one folder up; each read once."""

    roots: list[Path]
    _cache: dict[Path, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def for_drill(cls, drill_path: Path) -> RunbookIndex:
        folder = drill_path.resolve().parent
        return cls(roots=[folder, *folder.parents])

    def _file(self, rel: str) -> Path | None:
        for root in self.roots:
            candidate = root / rel
            if candidate.is_file():
                return candidate
        return None

    def _headings(self, path: Path) -> dict[str, str]:
        if path not in self._cache:
            self._cache[path] = headings(path.read_text(encoding="utf-8"))
        return self._cache[path]

    def problem(self, ref: str) -> str | None:
        """Why `ref` does not resolve, or None when it does."""
        rel, _, anchor = ref.partition("#")
        path = self._file(rel)
        if path is None:
            return f"runbook {rel!r} not found in the drill's folder or any folder above it"
        known = self._headings(path)
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
