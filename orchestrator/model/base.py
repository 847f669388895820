"""What every spec model shares: the strict base model and names. Apart from spec.py so that spec parts in
modules of their own (workload.py) can use them, and spec.py can use those parts."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"

Name = Annotated[str, Field(pattern=NAME_PATTERN, description="lowercase letters, digits and dashes")]


class Strict(BaseModel):
    # defer_build: a model's validator is built when it first validates, as part of the drill's (or
    # game day's) own, not once more for each of the fifty models at import (bench/cli_startup.py)
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True, defer_build=True)
