"""Every wait on the database is bounded (docs/faults.md): a free pooled connection (ACQUIRE_TIMEOUT,
TimeoutError) and, for the server's pool, each statement (COMMAND_TIMEOUT, enforced by PostgreSQL:
QueryCanceledError); both are answered 503 and leave the pool usable. The server's pool keeps TCP
keepalive on its connections, so that a database that vanished without closing is noticed."""

from __future__ import annotations

import asyncio
import socket

import asyncpg
import pytest

from parsec_server.storage import db as dbmod
from parsec_server.storage.db import UNAVAILABLE_ERRORS, Database

pytestmark = pytest.mark.timeout(60)


async def test_waiting_for_a_pooled_connection_is_bounded(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dbmod, "ACQUIRE_TIMEOUT", 0.3)
    db = await Database.open(db_url, 1, 1)
    try:
        async with db.connection():
            started = asyncio.get_running_loop().time()
            with pytest.raises(TimeoutError) as exc:
                async with db.connection():
                    pass
            assert asyncio.get_running_loop().time() - started < 5
            assert isinstance(exc.value, UNAVAILABLE_ERRORS)
        assert await db.fetchval("SELECT 1") == 1
    finally:
        await db.close()


async def test_a_statement_of_the_server_pool_is_bounded(db_url: str) -> None:
    db = await Database.open(db_url, 1, 1, command_timeout=0.3)
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(asyncpg.QueryCanceledError) as exc:
            await db.fetchval("SELECT pg_sleep(10)")
        assert asyncio.get_running_loop().time() - started < 5
        assert isinstance(exc.value, UNAVAILABLE_ERRORS)  # answered 503 + Retry-After
        assert await db.fetchval("SELECT 1") == 1  # and the pool goes on
        assert await db.fetchval("SHOW statement_timeout") == "300ms"
    finally:
        await db.close()


async def test_operator_pools_have_no_statement_bound(db_url: str) -> None:
    db = await Database.open(db_url, 1, 1)
    try:
        assert await db.fetchval("SHOW statement_timeout") == "0"
    finally:
        await db.close()


async def test_the_server_pool_keeps_tcp_keepalive(db_url: str) -> None:
    assert "@127.0.0.1:" in db_url or "@localhost:" in db_url, db_url  # the test cluster is on TCP
    db = await Database.open(db_url, 1, 1, command_timeout=60)
    try:
        async with db.connection() as conn:
            sock = conn._transport.get_extra_info("socket")
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == dbmod.KEEPALIVE_IDLE
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == dbmod.KEEPALIVE_COUNT
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 60_000
    finally:
        await db.close()


async def test_each_wait_keeps_its_own_deadline(db_url: str) -> None:
    """One watchdog enforces every wait: a shorter wait that starts later still ends first, a wait
    that gets a connection in time is not failed later, and nothing is left pending."""
    db = await Database.open(db_url, 1, 1)
    pool = db.pool
    loop = asyncio.get_running_loop()
    try:
        async with db.connection():
            started = loop.time()
            long_wait = asyncio.ensure_future(pool.get(timeout=3.0))
            await asyncio.sleep(0)
            with pytest.raises(TimeoutError):
                await pool.get(timeout=0.2)
            assert 0.15 < loop.time() - started < 2.0  # not made to wait for the 3 s deadline
            assert not long_wait.done()
        conn = await asyncio.wait_for(long_wait, 1)  # served when the connection came back
        await asyncio.sleep(3.2)  # past its deadline: the watchdog must not touch it any more
        assert await conn.fetchval("SELECT 1") == 1
        pool.put(conn)
        assert pool._deadlines == {}
        assert await db.fetchval("SELECT 2") == 2
    finally:
        await db.close()
