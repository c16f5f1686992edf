"""Helpers for the migration tests (fixtures: conftest.py): test-only migration folders, the CLI,
schema snapshots.

The CLI runs either in-process (click's CliRunner: fast) or as a real subprocess
(`python -m parsec_server.cli.migrate`, same code as `parsec-server migrate`) when a test needs
concurrency, signals or the exact stderr of a process.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
from click.testing import CliRunner, Result

from parsec_server.cli.migrate import migrate_cmd
from parsec_server.storage.migrations import engine

MIGRATE = [sys.executable, "-m", "parsec_server.cli.migrate"]

# A small migration set exercising both execution modes; loosely the shape of a real release
# history.
BASIC = {
    "0001_items.sql": (
        "-- compat: breaking\nCREATE TABLE item (id INT PRIMARY KEY, label TEXT NOT NULL);\n"
    ),
    "0001_items.down.sql": "-- data-loss: yes\nDROP TABLE item;\n",
    "0002_item_note.sql": "-- compat: expand\nALTER TABLE item ADD COLUMN note TEXT;\n",
    "0002_item_note.down.sql": "-- data-loss: yes\nALTER TABLE item DROP COLUMN note;\n",
    "0003_item_label_index.sql": (
        "-- compat: expand\n-- transaction: off\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS item_label ON item (label);\n"
    ),
    "0003_item_label_index.down.sql": (
        "-- data-loss: no\n-- transaction: off\nDROP INDEX CONCURRENTLY IF EXISTS item_label;\n"
    ),
}


def write_migrations(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.sql"):
        old.unlink()
    for name, content in files.items():
        (directory / name).write_text(content)
    return directory


def cli(*args: str) -> Result:
    """The CLI in-process."""
    return CliRunner().invoke(migrate_cmd, list(args), prog_name="parsec-server migrate")


def env() -> dict[str, str]:
    # PARSEC_BACKUP_DIR stays: the test run's own (tests/conftest.py), not /var/lib/parsec-server
    e = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PARSEC_") or k == "PARSEC_BACKUP_DIR"
    }
    e["PYTHONUNBUFFERED"] = "1"
    return e


def run_migrate(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The CLI as a subprocess."""
    return subprocess.run(
        [*MIGRATE, *args], capture_output=True, text=True, timeout=timeout, env=env()
    )


def spawn_migrate(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*MIGRATE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env()
    )


def query(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
            return rows
        finally:
            await conn.close()

    return asyncio.run(go())


def execute(url: str, sql: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


def value(url: str, sql: str, *args: Any) -> Any:
    rows = query(url, sql, *args)
    return rows[0][0] if rows else None


def history(url: str) -> list[str]:
    if not value(url, "SELECT to_regclass('schema_migration') IS NOT NULL"):
        return []
    return [r["name"] for r in query(url, "SELECT name FROM schema_migration ORDER BY number")]


def events(url: str, kind: str | None = None) -> list[asyncpg.Record]:
    rows = query(url, "SELECT kind, name, detail FROM schema_migration_event ORDER BY id")
    return [r for r in rows if kind is None or r["kind"] == kind]


def dump(url: str) -> str:
    return asyncio.run(engine.dump_schema(url))


CATALOG = """
SELECT n.nspname, c.relname, c.relkind, c.relfilenode, c.relpersistence
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
ORDER BY 1, 2
"""


def snapshot(url: str) -> tuple[str, list[tuple[Any, ...]]]:
    """Schema dump plus every user relation with its file node (a rewrite or a new object shows)."""
    return dump(url), [tuple(r) for r in query(url, CATALOG)]


class Blocker:
    """A session holding a lock from the test (an open transaction, or the migration lock)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.conn: asyncpg.Connection = self.loop.run_until_complete(asyncpg.connect(url))
        self.pid: int = self.conn.get_server_pid()

    def execute(self, sql: str) -> None:
        self.loop.run_until_complete(self.conn.execute(sql))

    def close(self) -> None:
        self.loop.run_until_complete(self.conn.close())
        self.loop.close()


BlockerFactory = Callable[..., Blocker]
