"""Fixtures of the fault tests: a PostgreSQL cluster of their own (the tests stop, kill and restart it,
which the run's shared cluster must never see).

`own_pg`: one throwaway cluster per test module, on a loopback TCP port that stays the same across
restarts (`fast_restart`, `kill_restart`, `stop`, `start`); `own_db_url`: a fresh migrated database in
it per test. Everything is stopped and removed after the module.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from parsec_server.embedded_pg import EmbeddedPostgres, EmbeddedPostgresError, free_tcp_port


class OwnPg:
    """A cluster a test may stop, kill and restart."""

    def __init__(self, data_dir: Path) -> None:
        self.pg = EmbeddedPostgres(
            data_dir, tcp_port=free_tcp_port(), database="postgres", fast_unsafe=True
        )

    @property
    def url(self) -> str:
        return self.pg.url

    def url_for(self, database: str) -> str:
        return self.pg.url_for(database)

    def start(self, timeout: float = 30.0) -> None:
        """Start (again); after a kill the old backends may still hold the shared memory a moment.
        Call it from the thread that keeps running: the postmaster dies with the thread that started
        it (PR_SET_PDEATHSIG), so never from a short-lived worker thread (asyncio.to_thread)."""
        self.pg.stop()  # a postmaster that died on its own still holds the data directory's lock
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.pg.start()
                return
            except EmbeddedPostgresError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        """Fast shutdown (SIGINT: sessions aborted, checkpoint, exit)."""
        self.pg.stop()

    def kill(self) -> None:
        """SIGKILL of the postmaster; its backends die of it shortly after."""
        pid = self.pg.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        self.pg.stop()  # reaps it, releases the data directory's lock

    def fast_restart(self) -> None:
        self.stop()
        self.start()

    def kill_restart(self) -> None:
        self.kill()
        self.start()

    def execute(self, sql: str, database: str = "postgres") -> None:
        async def run() -> None:
            conn = await asyncpg.connect(self.url_for(database))
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(run())


@pytest.fixture(scope="module")
def own_pg() -> Iterator[OwnPg]:
    tmp = Path(tempfile.mkdtemp(prefix="parsec-fault-pg-", dir="/tmp"))
    os.chmod(tmp, 0o755)
    pg = OwnPg(tmp)
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def own_db_url(own_pg: OwnPg) -> Iterator[str]:
    """A fresh, fully migrated database in the module's own cluster (the cluster is started again if a
    test left it down)."""
    from parsec_server.storage.migrations import engine

    if not own_pg.pg.running:
        own_pg.start()
    name = f"f_{uuid.uuid4().hex[:12]}"
    own_pg.execute(f'CREATE DATABASE "{name}"')
    url = own_pg.url_for(name)
    asyncio.run(engine.apply_all(url))
    yield url
    if not own_pg.pg.running:
        own_pg.start()
    own_pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
