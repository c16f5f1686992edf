"""docs/scaling.md, "Database connections": N processes open at most N x (--db-max-connections + 1)
connections (the pool + one LISTEN connection each), and N x (--db-min-connections + 1) at rest.
Two real `parsec-server run` processes on one database, under concurrent requests through both."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from pathlib import Path

import asyncpg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "commands"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "events"))

from core_helpers import Server
from sse_support import http_server, server_spawner

pytestmark = pytest.mark.timeout(120)

_COUNT = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
"""


async def test_connections_of_n_processes_are_bounded(db_url: str, tmp_path: Path) -> None:
    with server_spawner(
        db_url,
        tmp_path,
        ("--blockstore", "POSTGRESQL", "--db-min-connections", "1", "--db-max-connections", "3"),
    ) as spawn:
        one, two = spawn(), spawn()
        watcher = await asyncpg.connect(db_url)
        try:
            at_rest = await watcher.fetchval(_COUNT)
            # pool minimum + the LISTEN connection, per process (/health may have taken one more)
            assert 2 * (1 + 1) <= at_rest <= 2 * (3 + 1)
            async with http_server(one) as s1, http_server(two) as s2:
                org = await s1.bootstrap_org()
                alice = org.alice
                seen: list[int] = []
                stop = asyncio.Event()

                async def sample() -> None:
                    while not stop.is_set():
                        seen.append(await watcher.fetchval(_COUNT))
                        await asyncio.sleep(0.01)

                async def load(server: Server, n: int) -> None:
                    device = dataclasses.replace(alice, server=server)  # alice through `server`
                    for _ in range(n):
                        rep = await device.rpc(
                            "certificate_get",
                            common_after=None,
                            sequester_after=None,
                            shamir_recovery_after=None,
                            realm_after={},
                        )
                        assert rep["status"] == "ok", rep

                sampler = asyncio.create_task(sample())
                # 16 concurrent requests on each process: more than its pool may open
                await asyncio.gather(*(load(s, 10) for s in (s1, s2) for _ in range(16)))
                stop.set()
                await sampler
            assert max(seen) <= 2 * (3 + 1), seen
            assert max(seen) > at_rest  # the pools did grow under the load
        finally:
            await watcher.close()
