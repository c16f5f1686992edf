"""storage/db.py: our connection pool (asyncpg's pool resets each connection with a round trip on
every release; ours reuses connections as they are, and must then never hand out one in a bad
state)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from parsec_server.storage.db import Database


@pytest.fixture
async def db(empty_db_url: str) -> AsyncIterator[Database]:
    database = await Database.open(empty_db_url, min_size=1, max_size=2)
    yield database
    await database.close()


async def test_session_settings(db: Database) -> None:
    async with db.connection() as conn:
        assert await conn.fetchval("SHOW timezone") == "UTC"
        assert await conn.fetchval("SHOW plan_cache_mode") == "force_generic_plan"


async def test_connections_are_reused(db: Database) -> None:
    async with db.connection() as conn:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
    for _ in range(3):
        async with db.connection() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == pid


async def test_waiters_get_released_connections(db: Database) -> None:
    """max_size=2: a third user waits for a connection, then gets one back (no new connection)."""
    entered = asyncio.Event()
    release = asyncio.Event()
    pids: set[int] = set()

    async def hold() -> None:
        async with db.connection() as conn:
            pids.add(await conn.fetchval("SELECT pg_backend_pid()"))
            if len(pids) == 2:
                entered.set()
            await release.wait()

    holders = [asyncio.create_task(hold()) for _ in range(2)]
    await asyncio.wait_for(entered.wait(), 10)
    waiter = asyncio.create_task(db.fetchval("SELECT pg_backend_pid()"))
    await asyncio.sleep(0.1)
    assert not waiter.done()
    release.set()
    assert await asyncio.wait_for(waiter, 10) in pids
    await asyncio.gather(*holders)


async def test_acquire_timeout(db: Database) -> None:
    async with db.pool.acquire(), db.pool.acquire():
        with pytest.raises(TimeoutError):
            async with db.pool.acquire(timeout=0.1):
                pass
    # the timed-out waiter left nothing behind
    assert await db.fetchval("SELECT 1") == 1


async def test_open_transaction_is_not_reused(db: Database) -> None:
    async with db.connection() as conn:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        await conn.execute("BEGIN")
        await conn.execute("CREATE TEMPORARY TABLE leftover (x int)")
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT pg_backend_pid()") != pid
        assert not conn.is_in_transaction()


async def test_transaction_commits_or_rolls_back(db: Database) -> None:
    await db.pool.execute("CREATE TABLE t (x int)")
    async with db.transaction() as conn:
        await conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(ZeroDivisionError):
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO t VALUES (2)")
            raise ZeroDivisionError
    with pytest.raises(asyncpg.UniqueViolationError):
        async with db.transaction() as conn:
            await conn.execute("CREATE UNIQUE INDEX ON t (x)")
            await conn.execute("INSERT INTO t VALUES (1)")
    assert [r["x"] for r in await db.pool.fetch("SELECT x FROM t")] == [1]
    async with db.connection() as conn:  # the connections came back clean
        assert not conn.is_in_transaction()


async def test_cancelled_query_discards_the_connection(db: Database) -> None:
    async def slow() -> None:
        async with db.connection() as conn:
            await conn.execute("SELECT pg_sleep(10)")

    task = asyncio.create_task(slow())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(3):  # every connection handed out works
        assert await asyncio.wait_for(db.fetchval("SELECT 1"), 10) == 1


async def test_killed_connection_is_replaced(db: Database, empty_db_url: str) -> None:
    async with db.connection() as conn:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
    admin = await asyncpg.connect(empty_db_url)
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    for _ in range(100):  # until the pooled connection has seen it is closed
        if all(c.is_closed() for c in db.pool._idle):
            break
        await asyncio.sleep(0.05)
    assert await db.fetchval("SELECT 1") == 1


async def test_closed_pool_refuses(db: Database) -> None:
    await db.close()
    with pytest.raises(asyncpg.InterfaceError):
        await db.fetchval("SELECT 1")
