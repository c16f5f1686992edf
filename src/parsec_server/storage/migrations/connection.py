"""The engine's database connections: every way connecting can fail becomes one CannotConnect."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from parsec_server import __version__
from parsec_server.storage.migrations.errors import CannotConnect


def redact_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<unparsable database URL>"


def connect_reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is PostgreSQL running and listening there?)"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror or exc})"
    if isinstance(exc, OSError):
        text = exc.strerror or str(exc)
        if "Connect call failed" in str(exc) or "Multiple exceptions" in str(exc):
            return "connection refused (is PostgreSQL running and listening there?)"
        return text
    return " ".join(str(exc).split()) or type(exc).__name__


def _application_name(purpose: str) -> str:
    """`parsec-server migrate 0.1.0 host:pid`: names the lock holder in pg_stat_activity."""
    return f"parsec-server {purpose} {__version__} {socket.gethostname()}:{os.getpid()}"[:63]


async def connect(
    url: str, *, purpose: str, read_only: bool = False, connect_timeout: float = 10.0
) -> asyncpg.Connection:
    """One connection for the engine; any failure becomes CannotConnect with a readable reason."""
    shown = redact_url(url)
    if not url.startswith(("postgresql://", "postgres://")):
        raise CannotConnect(
            f"invalid database URL {shown!r}: expected postgresql://user@host:port/database"
        )
    settings = {"application_name": _application_name(purpose)}
    if read_only:
        settings["default_transaction_read_only"] = "on"
    try:
        conn = await asyncpg.connect(url, timeout=connect_timeout, server_settings=settings)
    except (
        TimeoutError,
        OSError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        ValueError,
    ) as exc:
        raise CannotConnect(
            f"cannot connect to the database {shown}: {connect_reason(exc)}"
        ) from None
    if not read_only:
        await session_defaults(conn)
    return conn


async def session_defaults(conn: asyncpg.Connection) -> None:
    """Back to a clean session (a migration's own SETs must not leak into the next one)."""
    await conn.execute("RESET ALL")
    if conn.get_server_version().major >= 14:
        # Make the backend notice within a second that we died (kill -9) and roll back + release the
        # lock,
        # instead of running the current statement to its end.
        with contextlib.suppress(asyncpg.PostgresError):
            await conn.execute("SET client_connection_check_interval = '1s'")


async def close(conn: asyncpg.Connection | None) -> None:
    if conn is not None and not conn.is_closed():
        try:
            await asyncio.wait_for(conn.close(), 5)
        except (Exception, asyncio.CancelledError):
            conn.terminate()
