"""The history store under test, on each backend: an SQLite file, and a fresh database on the session's real
PostgreSQL server (started only when a PostgreSQL case runs)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where an empty history is, as `--history` takes it."""
    if request.param == "sqlite":
        return str(tmp_path / "history.sqlite")
    return str(request.getfixturevalue("postgres").database())
