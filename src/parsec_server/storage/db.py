"""The PostgreSQL connection pool and transaction helpers.

asyncpg prepares and caches every statement per connection (statement_cache_size), so a handler's
queries are prepared once per pooled connection. Foreign errors are translated here: connection
problems become `DatabaseUnavailable`.

The pool is our own (`Pool`), not asyncpg's: every request takes a connection, and asyncpg's pool
spends a database round trip per release on resetting the session (`RESET ALL; UNLISTEN *; CLOSE
ALL; pg_advisory_unlock_all()`), plus a task (`asyncio.shield`) and two timers. Our connections
carry no session state to reset (no session-level SET, LISTEN, cursor or advisory lock: the event
listener has its own connection, transaction-level locks end with their transaction), so a
connection goes back to the pool as is; one left inside a transaction, or interrupted mid-query
(cancellation, timeout, broken connection), is closed instead of reused.

Session settings travel in the startup packet (no extra round trip): UTC, and `plan_cache_mode =
force_generic_plan` (docs/dev/performance.md: every hot statement is a few index lookups whose
generic plan is the best one, and the default `auto` mode plans some of them again at every
execution, e.g. vlob_read_batch at 3x the cost).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import socket
from typing import Any, NamedTuple

import asyncpg

Connection = asyncpg.Connection
Record = asyncpg.Record

SERVER_SETTINGS = {"timezone": "UTC", "plan_cache_mode": "force_generic_plan"}
STATEMENT_CACHE_SIZE = 1024
# Bounded waits (docs/faults.md): opening a connection; waiting for a free pooled connection when all
# `max_size` are busy (both end in TimeoutError); one statement of the server's pool (the app's pool
# only: operator commands and backups open theirs without it), bounded by PostgreSQL itself
# (`statement_timeout`: QueryCanceledError, 57014) at no cost per statement here, where asyncpg's
# client-side `command_timeout` arms and cancels a timer at every statement. A peer that vanished
# without closing (network black hole) is noticed by TCP keepalive on the pool's TCP connections.
# Requests answer each with 503.
CONNECT_TIMEOUT = 10.0
ACQUIRE_TIMEOUT = 30.0
COMMAND_TIMEOUT = 60.0
# TCP keepalive of pooled connections: first probe after this many idle seconds, then every
# KEEPALIVE_INTERVAL; dropped after KEEPALIVE_COUNT unanswered probes (here ~60 s in all), and
# TCP_USER_TIMEOUT drops a connection whose sent data stay unacknowledged as long.
KEEPALIVE_IDLE = 30
KEEPALIVE_INTERVAL = 10
KEEPALIVE_COUNT = 3


class DatabaseUnavailable(Exception):
    """The database cannot be reached (message is for the operator)."""


# Errors that mean "the database cannot serve this now" (not a bug of the request): the connection is
# refused/lost/timed out, the server is starting or shutting down (57P0x), it is read-only (25006: hot
# standby, default_transaction_read_only), or out of resources (class 53: 53100 disk_full, 53200
# out_of_memory, 53300 too_many_connections). The RPC layer answers them 503 + Retry-After.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    DatabaseUnavailable,
    TimeoutError,
    OSError,
    asyncpg.InterfaceError,
    # a pooled connection the server closed while idle (e.g. fast shutdown: FATAL 57P01) may fail its
    # next statement with "cannot switch to state ...; another operation is in progress"
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
    asyncpg.ReadOnlySQLTransactionError,
)
UNREACHABLE = "unreachable"
READ_ONLY = "read_only"
OUT_OF_RESOURCES = "out_of_resources"


def unavailable_kind(exc: BaseException) -> str:
    """What an UNAVAILABLE_ERRORS exception says of the database: UNREACHABLE, READ_ONLY (it answers
    but refuses writes) or OUT_OF_RESOURCES (disk full, out of memory, too many connections)."""
    if isinstance(exc, asyncpg.ReadOnlySQLTransactionError):
        return READ_ONLY
    if isinstance(exc, asyncpg.InsufficientResourcesError):
        return OUT_OF_RESOURCES
    return UNREACHABLE


def describe_connect_error(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"cannot connect to the database: {text}"


_CONNECT_ERRORS = (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError)


async def connect(url: str, timeout: float = 10.0) -> asyncpg.Connection:  # noqa: ASYNC109
    try:
        return await asyncpg.connect(url, timeout=timeout)
    except _CONNECT_ERRORS as exc:
        raise DatabaseUnavailable(describe_connect_error(exc)) from exc


# Exceptions after which a connection may be mid-query or broken: it is closed, not reused.
_BROKEN = (
    asyncio.CancelledError,
    TimeoutError,
    OSError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


def _keepalive(conn: asyncpg.Connection) -> None:
    """TCP keepalive + TCP_USER_TIMEOUT on a pooled connection's socket (a Unix socket has none)."""
    transport = getattr(conn, "_transport", None)  # asyncpg has no public accessor for it
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
        ("TCP_USER_TIMEOUT", 1000 * (KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_COUNT)),
    ):
        option = getattr(socket, name, None)
        if option is not None:  # Linux has them all
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


class PoolStats(NamedTuple):
    """A pool's connections at one moment (read by the metrics at scrape time)."""

    open: int  # in use + idle
    idle: int
    waiting: int  # requests waiting for a connection
    max_size: int


class Pool:
    """A LIFO pool of plain asyncpg connections, `min_size` opened at start, up to `max_size`.

    `acquire()` is an async context manager (like asyncpg's); `fetch`, `fetchrow`, `fetchval` and
    `execute` run one statement on a pooled connection."""

    def __init__(
        self,
        url: str,
        min_size: int,
        max_size: int,
        connect_timeout: float = CONNECT_TIMEOUT,
        command_timeout: float | None = None,
    ) -> None:
        self.url = url
        self.min_size = min_size
        self.max_size = max_size
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._server_settings = dict(SERVER_SETTINGS)
        if command_timeout is not None:
            self._server_settings["statement_timeout"] = (
                f"{max(1, round(command_timeout * 1000))}ms"
            )
        self._idle: list[asyncpg.Connection] = []
        self._all: set[asyncpg.Connection] = set()
        self._opening = 0
        self._waiters: collections.deque[asyncio.Future[asyncpg.Connection]] = collections.deque()
        # the deadline of each pending wait, and the one timer that enforces them (see `get`)
        self._deadlines: dict[asyncio.Future[asyncpg.Connection], float] = {}
        self._watchdog: asyncio.TimerHandle | None = None
        self._closing = False

    async def start(self) -> None:
        conns = await asyncio.gather(
            *(self._connect() for _ in range(self.min_size)), return_exceptions=True
        )
        for conn in conns:
            if isinstance(conn, BaseException):
                self.terminate()
                raise conn
            self._idle.append(conn)

    async def _connect(self) -> asyncpg.Connection:
        self._opening += 1
        try:
            conn = await asyncpg.connect(
                self.url,
                timeout=self._connect_timeout,
                statement_cache_size=STATEMENT_CACHE_SIZE,
                server_settings=self._server_settings,
            )
        finally:
            self._opening -= 1
        if self._command_timeout is not None:
            _keepalive(conn)
        self._all.add(conn)
        return conn

    # --- taking and giving back -------------------------------------------------------------
    async def get(self, timeout: float | None = None) -> asyncpg.Connection:  # noqa: ASYNC109
        """A connection; waits at most `timeout` (None: ACQUIRE_TIMEOUT) seconds for one to be free."""
        if self._closing:
            raise asyncpg.InterfaceError("pool is closing")
        idle = self._idle
        while idle:
            conn = idle.pop()
            if not conn.is_closed():
                return conn
            self._discard(conn)
        if len(self._all) + self._opening < self.max_size:
            return await self._connect()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[asyncpg.Connection] = loop.create_future()
        self._waiters.append(fut)
        # No timer per wait (arming and cancelling one costs ~5k instructions, 3 % of a small
        # request, bench/inproc.py --callgrind): one watchdog for all the waits, armed at the
        # earliest deadline (under load it fires about once per ACQUIRE_TIMEOUT).
        deadline = loop.time() + (ACQUIRE_TIMEOUT if timeout is None else timeout)
        self._deadlines[fut] = deadline
        if self._watchdog is None or deadline < self._watchdog.when():
            self._arm_watchdog(loop, deadline)
        try:
            return await fut
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self.put(fut.result())  # handed over while we gave up: pass it on
            else:
                fut.cancel()
            raise
        finally:
            del self._deadlines[fut]

    def _arm_watchdog(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._watchdog = loop.call_at(at, self._expire_waits, loop)

    def _expire_waits(self, loop: asyncio.AbstractEventLoop) -> None:
        """Fail the waits past their deadline; arm again for the earliest of the others."""
        self._watchdog = None
        now = loop.time()
        earliest: float | None = None
        for fut, deadline in list(self._deadlines.items()):
            if fut.done():
                continue
            if deadline <= now:
                fut.set_exception(TimeoutError("no free database connection in time"))
            elif earliest is None or deadline < earliest:
                earliest = deadline
        if earliest is not None:
            self._arm_watchdog(loop, earliest)

    def put(self, conn: asyncpg.Connection, exc: BaseException | None = None) -> None:
        """Give a connection back; `exc`: what interrupted its user, if anything."""
        if (
            (exc is not None and isinstance(exc, _BROKEN))
            or conn.is_closed()
            or conn.is_in_transaction()
        ):
            conn.terminate()
            self._discard(conn)
            return
        if self._closing:
            self._discard(conn)
            asyncio.get_running_loop().create_task(_close_quietly(conn))
            return
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(conn)
                return
        self._idle.append(conn)

    def _discard(self, conn: asyncpg.Connection) -> None:
        self._all.discard(conn)
        # a waiter can now open a connection of its own
        waiters = self._waiters
        while waiters and not self._closing:
            fut = waiters.popleft()
            if not fut.done():
                task = asyncio.get_running_loop().create_task(self._connect())
                task.add_done_callback(functools.partial(_hand_over, self, fut))
                return

    def acquire(self, timeout: float | None = None) -> _Acquire:
        return _Acquire(self, timeout)

    def stats(self) -> PoolStats:
        return PoolStats(len(self._all), len(self._idle), len(self._waiters), self.max_size)

    # --- one statement ----------------------------------------------------------------------
    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with _Acquire(self, None) as conn:
            return await conn.fetch(query, *args)  # type: ignore[no-any-return]

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        async with _Acquire(self, None) as conn:
            return await conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with _Acquire(self, None) as conn:
            return await conn.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        async with _Acquire(self, None) as conn:
            return await conn.execute(query, *args)  # type: ignore[no-any-return]

    # --- shutdown ---------------------------------------------------------------------------
    async def close(self) -> None:
        """Close the idle connections now, the others when given back."""
        self._closing = True
        for fut in self._waiters:
            if not fut.done():
                fut.set_exception(asyncpg.InterfaceError("pool is closing"))
        self._waiters.clear()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        idle, self._idle = self._idle, []
        for conn in idle:
            self._all.discard(conn)
        await asyncio.gather(*(_close_quietly(conn) for conn in idle))

    def terminate(self) -> None:
        self._closing = True
        for conn in list(self._all) + self._idle:
            conn.terminate()
        self._all.clear()
        self._idle.clear()


def _hand_over(
    pool: Pool, fut: asyncio.Future[asyncpg.Connection], task: asyncio.Task[asyncpg.Connection]
) -> None:
    if task.cancelled():
        if not fut.done():
            fut.cancel()
        return
    exc = task.exception()
    if exc is not None:
        if not fut.done():
            fut.set_exception(exc)
        return
    conn = task.result()
    if fut.done():
        pool.put(conn)
    else:
        fut.set_result(conn)


async def _close_quietly(conn: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(conn.close(), 5)
    except (Exception, asyncio.CancelledError):
        conn.terminate()


class _Acquire:
    """`async with pool.acquire() as conn:` (a class, not a generator: it runs on every request)."""

    __slots__ = ("_conn", "_pool", "_timeout")

    def __init__(self, pool: Pool, timeout: float | None) -> None:
        self._pool = pool
        self._timeout = timeout
        self._conn: asyncpg.Connection | None = None

    async def __aenter__(self) -> asyncpg.Connection:
        self._conn = conn = await self._pool.get(self._timeout)
        return conn

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.put(conn, exc)


class _Transaction:
    """`async with db.transaction() as conn:` a pooled connection inside a transaction, committed
    on success."""

    __slots__ = ("_conn", "_pool", "_tx")

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._conn: asyncpg.Connection | None = None
        self._tx: Any = None

    async def __aenter__(self) -> asyncpg.Connection:
        conn = await self._pool.get()
        tx = conn.transaction()
        try:
            await tx.__aenter__()
        except BaseException as exc:
            self._pool.put(conn, exc)
            raise
        self._conn, self._tx = conn, tx
        return conn

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        conn, tx = self._conn, self._tx
        self._conn = self._tx = None
        assert conn is not None
        try:
            await tx.__aexit__(exc_type, exc, tb)
        except BaseException as end_exc:
            self._pool.put(conn, end_exc)
            raise
        self._pool.put(conn, exc)


class Database:
    """A pool of connections to one database."""

    def __init__(self, pool: Pool, url: str) -> None:
        self.pool = pool
        self.url = url

    @classmethod
    async def open(
        cls, url: str, min_size: int = 2, max_size: int = 10, command_timeout: float | None = None
    ) -> Database:
        """`command_timeout`: seconds one statement may take, enforced by PostgreSQL (`statement_timeout`;
        None: unbounded, for operator commands); such a pool also sets TCP keepalive."""
        pool = Pool(url, min_size, max_size, command_timeout=command_timeout)
        try:
            await pool.start()
        except _CONNECT_ERRORS as exc:
            raise DatabaseUnavailable(describe_connect_error(exc)) from exc
        return cls(pool, url)

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.pool.close(), 10)
        except TimeoutError:
            self.pool.terminate()

    def connection(self) -> _Acquire:
        """`async with db.connection() as conn:` a pooled connection (no transaction)."""
        return _Acquire(self.pool, None)

    def transaction(self) -> _Transaction:
        return _Transaction(self.pool)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self.pool.fetchval(query, *args)

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(2):
                return bool(await self.fetchval("SELECT 1") == 1)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False

    async def probe(self, timeout: float = 2.0) -> str | None:  # noqa: ASYNC109
        """None when the database answers and accepts writes, else UNREACHABLE or READ_ONLY (a hot
        standby, or `default_transaction_read_only` on). Bounded by `timeout` seconds."""
        try:
            async with asyncio.timeout(timeout):
                row = await self.pool.fetchrow(_Q_PROBE)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return UNREACHABLE
        if row is None:
            return UNREACHABLE
        return READ_ONLY if row[0] or row[1] == "on" else None


_Q_PROBE = "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')"


__all__ = [
    "OUT_OF_RESOURCES",
    "READ_ONLY",
    "UNAVAILABLE_ERRORS",
    "UNREACHABLE",
    "Connection",
    "Database",
    "DatabaseUnavailable",
    "Pool",
    "Record",
    "connect",
    "unavailable_kind",
]
