"""Memory sizes as people write them (`256MiB`, `1GiB`, or `50%` of a limit), in bytes."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

SIZE_PATTERN = r"^\d+(\.\d+)?(KiB|MiB|GiB|%)$"
_UNITS = {"KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}

MemorySize = Annotated[
    str, Field(pattern=SIZE_PATTERN, description="bytes as 256MiB / 1GiB, or a share of the target's limit as 50%")
]


BYTES_PATTERN = r"^\d+(\.\d+)?(KiB|MiB|GiB)$"
ByteSize = Annotated[str, Field(pattern=BYTES_PATTERN, description="bytes as 256MiB or 1GiB")]


def size_bytes(text: str, limit: int | None) -> int | None:
    """Bytes for `text`; a percentage needs the limit it is a share of (None when there is none)."""
    match = re.match(SIZE_PATTERN, text)
    if match is None:
        raise ValueError(f"not a memory size: {text!r}")
    number = float(text[: match.start(2)])
    if match.group(2) == "%":
        return None if limit is None else int(limit * number / 100)
    return int(number * _UNITS[match.group(2)])
