"""Watching a running migration from a second connection: what it waits for, who blocks it.

While a migration runs, a `Watch` samples `pg_stat_activity` for the migration's backend a few times
a second (cheap), remembers who blocked it last (`pg_blocking_pids`), and emits a heartbeat every
`heartbeat` seconds. The blockers seen just before a lock timeout are what the retry message names:
once the statement has been cancelled, PostgreSQL no longer reports them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import asyncpg

# The migration lock: a session-level advisory lock, two-int form ('pars', 'migr'); per database.
LOCK_KEY = (0x70617273, 0x6D696772)

Emit = Callable[[dict[str, Any]], None]

_BLOCKERS = """
SELECT b.pid, b.state, b.application_name, b.usename,
       host(b.client_addr) AS client_addr,
       EXTRACT(EPOCH FROM clock_timestamp() - b.xact_start)::float8 AS xact_age_s,
       EXTRACT(EPOCH FROM clock_timestamp() - b.state_change)::float8 AS state_age_s,
       left(regexp_replace(b.query, '\\s+', ' ', 'g'), 120) AS query
FROM pg_stat_activity b
WHERE b.pid = ANY(pg_blocking_pids($1))
ORDER BY b.pid
"""

_ACTIVITY = """
SELECT a.state, a.wait_event_type, a.wait_event,
       EXTRACT(EPOCH FROM clock_timestamp() - a.query_start)::float8 AS query_age_s,
       left(regexp_replace(a.query, '\\s+', ' ', 'g'), 120) AS query,
       (SELECT p.phase || CASE WHEN p.blocks_total > 0
                 THEN format(' %s%%', round(100.0 * p.blocks_done / p.blocks_total)) ELSE '' END
          FROM pg_stat_progress_create_index p WHERE p.pid = a.pid) AS index_progress
FROM pg_stat_activity a
WHERE a.pid = $1
"""

_LOCK_HOLDER = """
SELECT a.pid, a.application_name, a.usename, host(a.client_addr) AS client_addr, a.state,
       EXTRACT(EPOCH FROM clock_timestamp() - a.backend_start)::float8 AS connected_s,
       a.backend_start
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted
  AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid AND l.objsubid = 2
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def jsonable(d: dict[str, Any] | None) -> dict[str, Any] | None:
    """Row dict -> JSON-friendly dict (datetimes as ISO strings)."""
    if d is None:
        return None
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in d.items()}


def describe_blocker(b: dict[str, Any]) -> str:
    """`pid 4242 (idle in transaction for 3m12s, app "psql", query: SELECT ...)`"""
    parts = []
    state = b.get("state") or "?"
    age = b.get("state_age_s") if state.startswith("idle") else b.get("xact_age_s")
    parts.append(f"{state} for {human_duration(age)}" if age is not None else state)
    if b.get("application_name"):
        parts.append(f'app "{b["application_name"]}"')
    if b.get("usename"):
        parts.append(f"user {b['usename']}")
    if b.get("query"):
        parts.append(f"last query: {b['query']}")
    return f"pid {b['pid']} ({', '.join(parts)})"


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(seconds), 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


async def lock_holder(conn: asyncpg.Connection) -> dict[str, Any] | None:
    row = await conn.fetchrow(_LOCK_HOLDER, *LOCK_KEY)
    return dict(row) if row else None


async def blockers(conn: asyncpg.Connection, pid: int) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(_BLOCKERS, pid)]


class Watch:
    """Background sampler for one migration backend (see module docstring)."""

    def __init__(self, conn: asyncpg.Connection, pid: int, emit: Emit, heartbeat: float) -> None:
        self.conn = conn
        self.pid = pid
        self.emit = emit
        self.heartbeat = heartbeat
        self.last_blockers: list[dict[str, Any]] = []
        self._label: str | None = None
        self._started = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self, label: str) -> None:
        self._label = label
        self._started = time.monotonic()
        self.last_blockers = []
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    def pause(self) -> None:
        self._label = None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _run(self) -> None:
        next_beat = time.monotonic() + self.heartbeat
        while True:
            await asyncio.sleep(min(0.2, self.heartbeat))
            if self._label is None:
                next_beat = time.monotonic() + self.heartbeat
                continue
            try:
                row = await self.conn.fetchrow(_ACTIVITY, self.pid)
                blocked = await blockers(self.conn, self.pid)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                return  # monitoring is best effort; the migration itself reports real errors
            if blocked:
                self.last_blockers = blocked
            now = time.monotonic()
            if now < next_beat or row is None or self._label is None:
                continue
            next_beat = now + self.heartbeat
            waiting = row["wait_event_type"] == "Lock"
            self.emit(
                {
                    "event": "heartbeat",
                    "name": self._label,
                    "elapsed_s": round(now - self._started, 1),
                    "state": row["state"],
                    "wait_event": (
                        f"{row['wait_event_type']}/{row['wait_event']}"
                        if row["wait_event_type"]
                        else None
                    ),
                    "waiting_for_lock": waiting,
                    "query": row["query"],
                    "index_progress": row["index_progress"],
                    "blocked_by": blocked,
                }
            )
