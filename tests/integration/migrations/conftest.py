"""Fixtures for the migration tests (helpers: migration_helpers.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from migration_helpers import BASIC, Blocker, write_migrations


@pytest.fixture
def mdir(tmp_path: Path) -> Path:
    """A migrations folder holding BASIC (tests rewrite it as they need)."""
    return write_migrations(tmp_path / "migrations", BASIC)


@pytest.fixture
def blocker_factory(empty_db_url: str) -> Iterator[Callable[..., Blocker]]:
    """Sessions holding locks on behalf of a test (closed at the end)."""
    made: list[Blocker] = []

    def make(url: str | None = None) -> Blocker:
        b = Blocker(url or empty_db_url)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()
