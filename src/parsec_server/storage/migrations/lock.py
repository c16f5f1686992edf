"""The migration lock: a session-level advisory lock, polled, so that one run migrates at a time.

Polled with `pg_try_advisory_lock` outside any transaction rather than waited for with
`pg_advisory_lock`: a waiting run then holds no snapshot, so a CREATE INDEX CONCURRENTLY in the
winning run never waits for the losers (the deadlock Flyway#1654 describes). Session-level:
PostgreSQL releases it when the holder's connection dies, so a killed run never leaves a stale lock
behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import asyncpg

from parsec_server.storage.migrations import monitor
from parsec_server.storage.migrations.errors import MigrationLockTimeout
from parsec_server.storage.migrations.monitor import Emit, jsonable


async def acquire(conn: asyncpg.Connection, wait: float, heartbeat: float, emit: Emit) -> float:
    """Take the session advisory lock, polling; return seconds waited. Raise
    MigrationLockTimeout."""
    started = time.monotonic()
    next_report = started
    holder: dict[str, Any] | None = None
    first = True
    while True:
        if await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", *monitor.LOCK_KEY):
            if first:
                return 0.0
            waited = max(time.monotonic() - started, 0.001)
            emit({"event": "lock_acquired", "waited_s": round(waited, 2)})
            return waited
        first = False
        now = time.monotonic()
        holder = await monitor.lock_holder(conn) or holder
        if now - started >= wait:
            who = describe_holder(holder)
            raise MigrationLockTimeout(
                f"another migration run holds the migration lock ({who}); gave up after {wait:g}s "
                "(--lock-wait). Retry when it has finished."
            )
        if now >= next_report:
            emit(
                {
                    "event": "lock_wait",
                    "waited_s": round(now - started, 1),
                    "lock_wait_s": wait,
                    "holder": jsonable(holder),
                    "message": f"waiting for the migration lock held by {describe_holder(holder)}",
                }
            )
            next_report = now + heartbeat
        await asyncio.sleep(min(0.25, max(wait - (now - started), 0.01)))


def describe_holder(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "a session that has just released it"
    since = holder.get("backend_start")
    since_s = f", connected since {since:%Y-%m-%d %H:%M:%S%z}" if since else ""
    return f'pid {holder["pid"]}, "{holder.get("application_name") or "?"}"{since_s}'


async def release(conn: asyncpg.Connection) -> None:
    with contextlib.suppress(Exception):
        await conn.execute("SELECT pg_advisory_unlock($1, $2)", *monitor.LOCK_KEY)
