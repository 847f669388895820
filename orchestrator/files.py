"""Files replaced whole: written beside their place and renamed over it, so that a reader (the server, a person
watching, libfaketime) finds the old file or the new one, never half of one, and a writer killed meanwhile
leaves the old file as it was."""

from __future__ import annotations

import os
from pathlib import Path


def replace_file(path: Path, text: str, mode: int = 0o666) -> None:
    """`path` holds `text` from now on; `mode` (less the umask) if the file is new."""
    part = path.with_name(path.name + ".part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(part, path)
