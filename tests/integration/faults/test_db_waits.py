"""Every wait on the database is bounded (docs/faults.md): a free pooled connection (ACQUIRE_TIMEOUT)
and, for the server's pool, each statement (COMMAND_TIMEOUT); both end in TimeoutError (503 for a
request) and leave the pool usable."""

from __future__ import annotations

import asyncio

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
        with pytest.raises(TimeoutError):
            await db.fetchval("SELECT pg_sleep(10)")
        assert await db.fetchval("SELECT 1") == 1  # the interrupted connection was replaced
    finally:
        await db.close()
