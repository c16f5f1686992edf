"""Blocks in the `block_data` table of the server's own database (`--blockstore POSTGRESQL`).

Each operation is one statement on a pooled connection, outside the caller's transaction (the
blockstore is written before the metadata row, protocol.md §4.6).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from parsec_server.blockstore.base import BlockNotFound, Blockstore, BlockstoreUnavailable
from parsec_server.storage.db import Database

# Waiting for a pooled connection longer than this means the database is overloaded or gone.
ACQUIRE_TIMEOUT = 10.0
LIST_PAGE_SIZE = 1000

_Q_CREATE = """
INSERT INTO block_data (organization_id, block_id, data)
VALUES ($1, $2, $3)
ON CONFLICT (organization_id, block_id) DO UPDATE SET data = EXCLUDED.data
"""

_Q_READ = "SELECT data FROM block_data WHERE organization_id = $1 AND block_id = $2"

_Q_DELETE = "DELETE FROM block_data WHERE organization_id = $1 AND block_id = $2"

# Distinct organizations with the primary key index (a loose index scan), not a full table scan.
_Q_LIST_ORGANIZATIONS = """
WITH RECURSIVE org AS (
    (SELECT organization_id AS id FROM block_data ORDER BY organization_id LIMIT 1)
    UNION ALL
    SELECT (
        SELECT organization_id FROM block_data
        WHERE organization_id > org.id ORDER BY organization_id LIMIT 1
    )
    FROM org WHERE org.id IS NOT NULL
)
SELECT id FROM org WHERE id IS NOT NULL
"""

_Q_LIST_FIRST_PAGE = """
SELECT block_id FROM block_data WHERE organization_id = $1
ORDER BY block_id LIMIT $2
"""

_Q_LIST_NEXT_PAGE = """
SELECT block_id FROM block_data WHERE organization_id = $1 AND block_id > $2
ORDER BY block_id LIMIT $3
"""

# What asyncpg and the network raise when the database fails or cannot be reached
# (InternalClientError: a connection left mid-operation by a server that went away).
_DB_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)


def _unavailable(exc: BaseException) -> BlockstoreUnavailable:
    text = str(exc).strip()
    return BlockstoreUnavailable(
        f"PostgreSQL blockstore: {type(exc).__name__}" + (f": {text}" if text else "")
    )


class PostgreSQLBlockstore(Blockstore):
    in_server_database = True

    def __init__(self, db: Database) -> None:
        self.db = db

    def describe(self) -> str:
        return "POSTGRESQL"

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; database failures (here or in the body): `BlockstoreUnavailable`."""
        try:
            async with self.db.pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
                yield conn
        except _DB_ERRORS as exc:
            raise _unavailable(exc) from exc

    async def create(self, organization_id: str, block_id: uuid.UUID, data: bytes) -> None:
        async with self._connection() as conn:
            await conn.execute(_Q_CREATE, organization_id, block_id, data)

    async def read(self, organization_id: str, block_id: uuid.UUID) -> bytes:
        async with self._connection() as conn:
            data: bytes | None = await conn.fetchval(_Q_READ, organization_id, block_id)
        if data is None:
            raise BlockNotFound(f"PostgreSQL blockstore: no block {organization_id}/{block_id}")
        return data

    async def delete(self, organization_id: str, block_id: uuid.UUID) -> None:
        async with self._connection() as conn:
            await conn.execute(_Q_DELETE, organization_id, block_id)

    async def iter_blocks(
        self, organization_id: str | None = None
    ) -> AsyncIterator[tuple[str, uuid.UUID]]:
        if organization_id is None:
            async with self._connection() as conn:
                rows = await conn.fetch(_Q_LIST_ORGANIZATIONS)
            # The database's collation may differ from code point order: sort here.
            organizations = sorted(row["id"] for row in rows)
        else:
            organizations = [organization_id]
        for org in organizations:
            last: uuid.UUID | None = None
            while True:
                # A connection per page: none is held while the consumer works on the blocks.
                async with self._connection() as conn:
                    if last is None:
                        page = await conn.fetch(_Q_LIST_FIRST_PAGE, org, LIST_PAGE_SIZE)
                    else:
                        page = await conn.fetch(_Q_LIST_NEXT_PAGE, org, last, LIST_PAGE_SIZE)
                for row in page:
                    last = row["block_id"]
                    yield org, row["block_id"]
                if len(page) < LIST_PAGE_SIZE:
                    break
