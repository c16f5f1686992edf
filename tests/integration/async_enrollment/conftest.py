"""Fixtures of the asynchronous enrollment tests: the in-process server of the command tests
(tests/integration/commands/core_helpers.py), with or without trusted X.509 roots."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "commands"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "events"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "email"))

from core_helpers import Org, Server, running_server
from pki_support import Pki
from sse_support import ServerSpawner, server_spawner


@pytest.fixture(scope="module")
def pki() -> Pki:
    """Two roots (one trusted, one not), an intermediate CA, leaves (RSA 2048), built once."""
    return Pki.build()


@pytest.fixture
async def server(db_url: str) -> AsyncIterator[Server]:
    """No trusted roots: X.509 chains are checked for structure only (the official behaviour)."""
    async with running_server(db_url) as s:
        yield s


@pytest.fixture
async def strict_server(db_url: str, pki: Pki, tmp_path: Path) -> AsyncIterator[Server]:
    """`--trusted-x509-root-dir` given: chains must end at the trusted root."""
    roots = pki.write_root_dir(tmp_path / "roots")
    async with running_server(db_url, trusted_x509_root_dirs=(roots,)) as s:
        yield s


@pytest.fixture
async def org(server: Server) -> Org:
    return await server.bootstrap_org()


@pytest.fixture
async def strict_org(strict_server: Server) -> Org:
    return await strict_server.bootstrap_org()


@pytest.fixture
def spawn_server(db_url: str, tmp_path: Path) -> Iterator[ServerSpawner]:
    """Real `parsec-server run` processes on loopback (tests/integration/events/sse_support.py)."""
    with server_spawner(db_url, tmp_path, ("--blockstore", "POSTGRESQL")) as spawn:
        yield spawn
