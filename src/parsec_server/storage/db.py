"""The PostgreSQL connection pool and transaction helpers.

asyncpg prepares and caches every statement per connection (statement_cache_size), so a handler's queries
are prepared once per pooled connection. Foreign errors are translated here: connection problems become
`DatabaseUnavailable`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

Connection = asyncpg.Connection
Record = asyncpg.Record


class DatabaseUnavailable(Exception):
    """The database cannot be reached (message is for the operator)."""


def describe_connect_error(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"cannot connect to the database: {text}"


async def connect(url: str, timeout: float = 10.0) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(url, timeout=timeout)
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        raise DatabaseUnavailable(describe_connect_error(exc)) from exc


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.execute("SET TIME ZONE 'UTC'")


class Database:
    """A pool of connections to one database."""

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self.pool = pool
        self.url = url

    @classmethod
    async def open(cls, url: str, min_size: int = 2, max_size: int = 10) -> Database:
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=min_size,
                max_size=max_size,
                statement_cache_size=1024,
                max_inactive_connection_lifetime=300,
                init=_init_connection,
                timeout=10,
            )
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
            raise DatabaseUnavailable(describe_connect_error(exc)) from exc
        assert pool is not None
        return cls(pool, url)

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.pool.close(), 10)
        except asyncio.TimeoutError:
            self.pool.terminate()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.pool.acquire() as conn:
            yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self.pool.acquire() as conn:
            return await conn.fetchval(query, *args)

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(2):
                return bool(await self.fetchval("SELECT 1") == 1)
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
