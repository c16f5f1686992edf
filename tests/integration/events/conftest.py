"""Fixtures of the event stream tests: real `parsec-server run` processes on loopback (several may
share one database). Helpers: sse_support.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sse_support import ServerSpawner, server_spawner


@pytest.fixture
def spawn_server(db_url: str, tmp_path: Path) -> Iterator[ServerSpawner]:
    """Start `parsec-server run` processes on the test's database (PostgreSQL blockstore); all are
    stopped after the test."""
    with server_spawner(db_url, tmp_path, ("--blockstore", "POSTGRESQL")) as spawn:
        yield spawn
