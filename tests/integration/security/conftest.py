"""Fixtures of the security regression tests (issue 11, point 6): real `parsec-server run`
processes on loopback, driven with raw sockets where HTTP clients would not misbehave enough."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "events"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "commands"))

from sse_support import ServerSpawner, server_spawner

# Small bounds so that the tests are quick (the defaults are in docs/configuration.md).
FAST = (
    "--request-head-timeout",
    "1",
    "--keep-alive-timeout",
    "1",
    "--log-format",
    "console",
)


@pytest.fixture
def spawn_server(db_url: str, tmp_path: Path) -> Iterator[ServerSpawner]:
    """Start `parsec-server run` processes on the test's database (`token_args` replaces the
    administration token options, `env` adds variables); all are killed after the test."""
    with server_spawner(db_url, tmp_path, FAST) as spawn:
        yield spawn
