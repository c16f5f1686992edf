"""The `block_data` table of a real PostgreSQL database as a blockstore."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from parsec_server.blockstore import BlockNotFound, BlockstoreUnavailable, build_blockstore
from parsec_server.blockstore import postgresql as pg_blockstore
from parsec_server.blockstore.postgresql import PostgreSQLBlockstore
from parsec_server.config import BlockstoreConfig
from parsec_server.storage.db import Database

ORG = "CoolOrg"


@pytest.fixture
async def store(db: Database) -> AsyncIterator[PostgreSQLBlockstore]:
    bs = build_blockstore(BlockstoreConfig("POSTGRESQL"), db)
    assert isinstance(bs, PostgreSQLBlockstore)
    await bs.start()
    yield bs
    await bs.stop()


@pytest.mark.parametrize("size", [0, 1, 4096, 1024 * 1024])
async def test_roundtrip(store: PostgreSQLBlockstore, db: Database, size: int) -> None:
    data = os.urandom(size)
    block_id = uuid.uuid4()
    await store.create(ORG, block_id, data)
    assert await store.read(ORG, block_id) == data
    # Stored as the spec'd row, nothing else.
    row = await db.pool.fetchrow(
        "SELECT organization_id, block_id, data FROM block_data WHERE block_id = $1", block_id
    )
    assert tuple(row) == (ORG, block_id, data)


async def test_missing_block(store: PostgreSQLBlockstore) -> None:
    block_id = uuid.uuid4()
    with pytest.raises(BlockNotFound):
        await store.read(ORG, block_id)
    await store.create(ORG, block_id, b"x")
    # Same block id in another organization: a different block.
    with pytest.raises(BlockNotFound):
        await store.read("OtherOrg", block_id)


async def test_create_existing_overwrites(store: PostgreSQLBlockstore) -> None:
    block_id = uuid.uuid4()
    await store.create(ORG, block_id, b"first")
    await store.create(ORG, block_id, b"second")
    assert await store.read(ORG, block_id) == b"second"


async def test_delete(store: PostgreSQLBlockstore) -> None:
    block_id = uuid.uuid4()
    await store.create(ORG, block_id, b"data")
    await store.delete(ORG, block_id)
    with pytest.raises(BlockNotFound):
        await store.read(ORG, block_id)
    await store.delete(ORG, block_id)  # already gone: fine


async def test_iter_blocks_sorted_and_paged(
    store: PostgreSQLBlockstore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_blockstore, "LIST_PAGE_SIZE", 3)
    # "a-b" < "a_b" < "b" < "Z"? No: code point order puts "Z" (0x5a) before "a" (0x61).
    orgs = ["b", "a_b", "Z", "a-b", "a"]
    expected = []
    for org in orgs:
        for _ in range(7):
            block_id = uuid.uuid4()
            await store.create(org, block_id, b"")
            expected.append((org, block_id))
    listed = [item async for item in store.iter_blocks()]
    assert listed == sorted(expected)
    only_a = [item async for item in store.iter_blocks("a")]
    assert only_a == sorted(item for item in expected if item[0] == "a")
    assert [item async for item in store.iter_blocks("nobody")] == []


async def test_missing_table_is_unavailable(empty_db_url: str) -> None:
    database = await Database.open(empty_db_url, min_size=1, max_size=2)
    try:
        store = PostgreSQLBlockstore(database)
        with pytest.raises(BlockstoreUnavailable) as exc_info:
            await store.create(ORG, uuid.uuid4(), b"data")
        assert not isinstance(exc_info.value, BlockNotFound)
        assert "block_data" in str(exc_info.value)
        with pytest.raises(BlockstoreUnavailable) as exc_info:
            await store.read(ORG, uuid.uuid4())
        assert not isinstance(exc_info.value, BlockNotFound)
    finally:
        await database.close()


async def test_database_gone_is_unavailable(blockstore_db_url: str, db: Database) -> None:
    """The database refuses connections and kills the pool's: a failure, not a missing block."""
    store = PostgreSQLBlockstore(db)
    block_id = uuid.uuid4()
    await store.create(ORG, block_id, b"data")
    admin = await asyncpg.connect(blockstore_db_url.rsplit("/", 1)[0] + "/postgres")
    name = blockstore_db_url.rsplit("/", 1)[1]
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        for _ in range(200):  # until the server has ended them (asynchronously)
            q = "SELECT count(*) FROM pg_stat_activity WHERE datname = $1"
            if not await admin.fetchval(q, name):
                break
            await asyncio.sleep(0.05)
        for _ in range(2):  # dead pooled connection, then refused new one
            with pytest.raises(BlockstoreUnavailable) as exc_info:
                await store.read(ORG, block_id)
            assert not isinstance(exc_info.value, BlockNotFound)
        with pytest.raises(BlockstoreUnavailable):
            await store.create(ORG, uuid.uuid4(), b"data")
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        # The pool replaces dead connections: the store works again.
        assert await store.read(ORG, block_id) == b"data"
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()


async def test_closed_pool_is_unavailable(db: Database) -> None:
    store = PostgreSQLBlockstore(db)
    await db.close()
    with pytest.raises(BlockstoreUnavailable):
        await store.read(ORG, uuid.uuid4())
