"""The hand-back: a parsec-server database converted into the official Parsec server's 3.9.x schema
(`parsec-server migrate --to official-3.9`, docs/switching-from-official.md, "Rollback").

One transaction, so that an interrupted run (kill -9, lost connection) changes nothing and a rerun
starts over:

1. parsec-server's tables (and every other object of the `public` schema that no extension owns)
   move, as they are, into a new schema `parsec_server_handed_back[_N]`: kept, never dropped; the
   old official copy a past adoption kept in `parsec_official` is renamed
   `parsec_official_superseded[_N]` (it holds the data as it was at the adoption, not today's);
2. the empty official 3.9.x schema is created in `public` (handback_schema.py), its foreign keys
   set aside (added back, same names, after the copy: one validating join each instead of a
   check per inserted row);
3. one set-based `INSERT ... SELECT` per official table copies the rows from the moved tables
   (memory does not grow with the database: the rows never leave PostgreSQL), with progress
   events (vlob_atom and block in slices of BATCH ids, a heartbeat for the others);
   certificates go back into the column of the row they certify;
4. the official sequences are set past the copied ids, and the official history table `migration`
   gets its 24 rows (0001_initial ... 0024_rename_minimum_archiving_period).

What the official schema cannot hold (tables of features the official 3.9 schema has no place
for, columns added to our tables that this conversion does not know, certificates with no row to
carry them) is listed by `unrepresentable()` before anything changes; `handback()` refuses when
the list is not empty unless `allow_data_loss`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from parsec_server.storage.adoption import OFFICIAL_SCHEMA
from parsec_server.storage.adoption.handback_map import (
    BATCH,
    CERTIFICATE_CARRIERS,
    COPIES,
    ENGINE_TABLES,
    EPHEMERAL_TABLES,
    KNOWN_COLUMNS,
    PLACED_CERTIFICATES,
    Copy,
)
from parsec_server.storage.adoption.handback_schema import (
    OFFICIAL_MIGRATION_NAMES_3_9,
    official_ddl,
)
from parsec_server.storage.migrations.errors import DataLossRefused, MigrationFailed

OFFICIAL_TARGET = "official-3.9"  # the value of `migrate --to` that hands back
HANDED_BACK_SCHEMA = "parsec_server_handed_back"  # where our tables go (suffix _2, _3... if taken)
SUPERSEDED_SCHEMA = "parsec_official_superseded"  # where an adoption's old official copy goes

Emit = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class Unrepresentable:
    """Something of ours the official 3.9.x schema has no place for (lost by a hand-back)."""

    what: str  # `table foo`, `column user_.bar`, `certificates`
    rows: int
    why: str

    @property
    def text(self) -> str:
        return f"{self.what} ({self.rows} rows): {self.why}"


@dataclass(frozen=True, slots=True)
class TableCount:
    table: str  # official table
    rows: int  # rows of our source table


@dataclass(frozen=True, slots=True)
class HandbackPlan:
    copies: tuple[TableCount, ...]
    unrepresentable: tuple[Unrepresentable, ...]
    old_official_copy: bool  # an adoption's `parsec_official` schema is present


@dataclass(frozen=True, slots=True)
class HandbackResult:
    plan: HandbackPlan
    moved_to: str  # the schema our tables were moved to
    superseded: str | None  # where `parsec_official` went, if there was one
    rows: dict[str, int]


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _our_tables(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT c.relname::text AS name FROM pg_class AS c"
        " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')"
        " AND NOT EXISTS (SELECT 1 FROM pg_depend AS d WHERE d.objid = c.oid AND d.deptype = 'e')"
        " ORDER BY 1"
    )
    return [r["name"] for r in rows]


async def _count(conn: asyncpg.Connection, table: str, where: str = "TRUE") -> int:
    return int(await conn.fetchval(f"SELECT count(*) FROM public.{_ident(table)} WHERE {where}"))


async def unrepresentable(conn: asyncpg.Connection) -> list[Unrepresentable]:
    """What a hand-back of this database (ours, in `public`) would lose. Reads only."""
    found: list[Unrepresentable] = []
    tables = await _our_tables(conn)
    for table in tables:
        if table in KNOWN_COLUMNS or table in ENGINE_TABLES or table in EPHEMERAL_TABLES:
            continue
        rows = await _count(conn, table)
        if rows:
            found.append(
                Unrepresentable(
                    f"table {table}",
                    rows,
                    "data of a parsec-server feature the official 3.9.x schema has no place for",
                )
            )
    columns = await conn.fetch(
        "SELECT table_name::text AS t, column_name::text AS c, column_default::text AS d"
        " FROM information_schema.columns WHERE table_schema = 'public'"
        " AND table_name = ANY($1::text[]) ORDER BY table_name, ordinal_position",
        [t for t in tables if t in KNOWN_COLUMNS],
    )
    for col in columns:
        if col["c"] in KNOWN_COLUMNS[col["t"]]:
            continue
        where = f"{_ident(col['c'])} IS NOT NULL"
        if col["d"] is not None and "nextval(" not in col["d"]:
            where += f" AND {_ident(col['c'])} IS DISTINCT FROM ({col['d']})"
        rows = await _count(conn, col["t"], where)
        if rows:
            found.append(
                Unrepresentable(
                    f"column {col['t']}.{col['c']}",
                    rows,
                    "added to parsec-server's schema after this conversion was written; the "
                    "official 3.9.x schema has no place for it",
                )
            )
    if "user_totp" in tables:
        rows = await _count(conn, "user_totp", "reset_token_sha256 IS NOT NULL")
        if rows:
            found.append(
                Unrepresentable(
                    "pending TOTP resets",
                    rows,
                    "parsec-server keeps only a hash of each reset token, the official server "
                    "needs the token itself: those users need a new reset from the official "
                    "server",
                )
            )
    if "certificate" in tables:
        stored = await _count(conn, "certificate")
        carried = int(await conn.fetchval(CERTIFICATE_CARRIERS))
        if stored > carried:
            found.append(
                Unrepresentable(
                    "certificates",
                    stored - carried,
                    "no row of the official schema would carry them",
                )
            )
    return found


async def plan(conn: asyncpg.Connection) -> HandbackPlan:
    """What `handback` would do on this database. Reads only."""
    counted: dict[str, int] = {}
    tables = set(await _our_tables(conn))
    copies = []
    for copy in COPIES:
        if copy.source not in tables:
            raise MigrationFailed(
                f"the table {copy.source} of parsec-server's schema is missing: this is not a "
                "complete parsec-server database; nothing was changed"
            )
        if copy.source not in counted:
            counted[copy.source] = await _count(conn, copy.source)
        copies.append(TableCount(copy.table, counted[copy.source]))
    old = bool(await conn.fetchval("SELECT to_regnamespace($1) IS NOT NULL", OFFICIAL_SCHEMA))
    return HandbackPlan(tuple(copies), tuple(await unrepresentable(conn)), old)


async def _free_schema(conn: asyncpg.Connection, base: str) -> str:
    name, n = base, 1
    while await conn.fetchval("SELECT to_regnamespace($1) IS NOT NULL", name):
        n += 1
        name = f"{base}_{n}"
    return name


async def _move_ours(conn: asyncpg.Connection, target: str) -> None:
    """Every object of `public` no extension owns moves to `target` (indexes, owned sequences,
    constraints and row types follow their table)."""
    await conn.execute(f"CREATE SCHEMA {_ident(target)}")
    not_ext = "NOT EXISTS (SELECT 1 FROM pg_depend AS d WHERE d.objid = {oid} AND d.deptype = 'e')"
    relations = await conn.fetch(
        "SELECT c.relname::text AS name, c.relkind::text AS kind FROM pg_class AS c"
        " WHERE c.relnamespace = 'public'::regnamespace"
        " AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')"
        " AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend AS d"
        "   WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')))"
        " AND " + not_ext.format(oid="c.oid") + " ORDER BY c.relkind <> 'S', c.relname"
    )
    verb = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "f": "FOREIGN TABLE"}
    for r in relations:
        kind = "SEQUENCE" if r["kind"] == "S" else verb[r["kind"]]
        await conn.execute(f"ALTER {kind} public.{_ident(r['name'])} SET SCHEMA {_ident(target)}")
    functions = await conn.fetch(
        "SELECT p.oid::regprocedure::text AS sig, p.prokind::text AS kind FROM pg_proc AS p"
        " WHERE p.pronamespace = 'public'::regnamespace AND " + not_ext.format(oid="p.oid")
    )
    for f in functions:
        kind = "PROCEDURE" if f["kind"] == "p" else "FUNCTION"
        await conn.execute(f"ALTER {kind} {f['sig']} SET SCHEMA {_ident(target)}")
    types = await conn.fetch(
        "SELECT t.typname::text AS name, t.typtype::text AS kind FROM pg_type AS t"
        " WHERE t.typnamespace = 'public'::regnamespace AND t.typtype IN ('e', 'd', 'c', 'r')"
        " AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')"
        " AND t.typelem = 0 AND " + not_ext.format(oid="t.oid")
    )
    for t in types:
        kind = "DOMAIN" if t["kind"] == "d" else "TYPE"
        await conn.execute(f"ALTER {kind} public.{_ident(t['name'])} SET SCHEMA {_ident(target)}")


async def handback(
    conn: asyncpg.Connection,
    *,
    allow_data_loss: bool,
    emit: Emit,
    lock_timeout_s: float = 2.0,
    heartbeat_s: float = 5.0,
) -> HandbackResult:
    """Convert the database behind `conn` (ours, fully migrated) into the official 3.9.x schema,
    in one transaction. Raise DataLossRefused when something would be lost and not
    `allow_data_loss`, MigrationFailed when PostgreSQL refuses a step (nothing changed)."""
    try:
        return await _handback(conn, allow_data_loss, emit, lock_timeout_s, heartbeat_s)
    except asyncpg.LockNotAvailableError:
        raise MigrationFailed(
            f"could not lock parsec-server's tables within {lock_timeout_s:g} s (--lock-timeout): "
            "stop every parsec-server process using this database first; nothing was changed"
        ) from None
    except asyncpg.PostgresError as exc:
        text = " ".join(str(exc).split())
        raise MigrationFailed(
            f"the hand-back failed and was rolled back, nothing was changed: "
            f"{type(exc).__name__}: {text}",
            sqlstate=getattr(exc, "sqlstate", None),
        ) from None


async def _handback(
    conn: asyncpg.Connection,
    allow_data_loss: bool,
    emit: Emit,
    lock_timeout_s: float,
    heartbeat_s: float,
) -> HandbackResult:
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = '{int(lock_timeout_s * 1000)}ms'")
        # Our tables are locked against writers first: the plan below is what gets copied.
        tables = await _our_tables(conn)
        await conn.execute(
            "LOCK TABLE " + ", ".join(f"public.{_ident(t)}" for t in tables) + " IN EXCLUSIVE MODE"
        )
        the_plan = await plan(conn)
        if the_plan.unrepresentable and not allow_data_loss:
            raise DataLossRefused(
                refusal(the_plan.unrepresentable),
                names=[u.what for u in the_plan.unrepresentable],
            )
        for item in the_plan.unrepresentable:
            emit(
                {
                    "event": "warning",
                    "message": f"not handed back (--allow-data-loss): {item.text}",
                }
            )
        superseded = None
        if the_plan.old_official_copy:
            superseded = await _free_schema(conn, SUPERSEDED_SCHEMA)
            await conn.execute(
                f"ALTER SCHEMA {_ident(OFFICIAL_SCHEMA)} RENAME TO {_ident(superseded)}"
            )
        moved_to = await _free_schema(conn, HANDED_BACK_SCHEMA)
        await _move_ours(conn, moved_to)
        for statement in official_ddl():
            await conn.execute(statement)
        foreign_keys = await _set_foreign_keys_aside(conn)
        rows: dict[str, int] = {}
        estimates = {c.table: c.rows for c in the_plan.copies}
        for copy in COPIES:
            emit({"event": "handback_table", "table": copy.table, "state": "copying",
                  "estimate": estimates[copy.table]})  # fmt: skip
            started = time.monotonic()
            n = await _copy(conn, copy, moved_to, estimates[copy.table], emit, heartbeat_s)
            rows[copy.table] = n
            emit(
                {
                    "event": "handback_table",
                    "table": copy.table,
                    "state": "copied",
                    "rows": n,
                    "duration_ms": round((time.monotonic() - started) * 1000, 1),
                }
            )
        started = time.monotonic()
        for table, name, definition in foreign_keys:
            await conn.execute(f"ALTER TABLE {table} ADD CONSTRAINT {_ident(name)} {definition}")
        emit(
            {
                "event": "handback_table",
                "table": "foreign keys",
                "state": "copied",
                "rows": len(foreign_keys),
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
            }
        )
        await _finish(conn, moved_to, allow_data_loss)
        return HandbackResult(the_plan, moved_to, superseded, rows)


async def _set_foreign_keys_aside(conn: asyncpg.Connection) -> list[tuple[str, str, str]]:
    """Drop the official schema's foreign keys for the copy (a row-by-row check of each of the
    millions of inserted rows costs more than the copy); they are added back, under the same
    names and in the same order, once the tables are filled: one validating join each."""
    rows = await conn.fetch(
        "SELECT conrelid::regclass::text AS t, conname::text AS n,"
        " pg_get_constraintdef(oid) AS d FROM pg_constraint"
        " WHERE contype = 'f' AND connamespace = 'public'::regnamespace ORDER BY oid"
    )
    for r in rows:
        await conn.execute(f"ALTER TABLE {r['t']} DROP CONSTRAINT {_ident(r['n'])}")
    return [(r["t"], r["n"], r["d"]) for r in rows]


async def _copy(
    conn: asyncpg.Connection,
    copy: Copy,
    src: str,
    estimate: int,
    emit: Emit,
    heartbeat_s: float,
) -> int:
    """Run one copy; progress: per slice when batched, else a heartbeat while it runs."""
    sql = copy.sql.format(src=_ident(src))
    started = time.monotonic()

    def progress(done: int | None) -> None:
        ev: dict[str, Any] = {
            "event": "handback_table",
            "table": copy.table,
            "state": "progress",
            "estimate": estimate,
            "elapsed_s": round(time.monotonic() - started, 1),
        }
        if done is not None:
            ev["rows"] = done
        emit(ev)

    if copy.batch_by is None:
        return _rows(await _with_heartbeat(conn.execute(sql), heartbeat_s, progress))
    low, high = await conn.fetchrow(
        f"SELECT min({copy.batch_by}), max({copy.batch_by}) FROM {_ident(src)}.{copy.source}"
    )
    done = 0
    if low is None:
        return 0
    start = int(low) - 1
    while start < int(high):
        end = start + BATCH
        done += _rows(await conn.execute(sql, start, end))
        start = end
        progress(done)
    return done


def _rows(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


async def _with_heartbeat(
    work: Awaitable[str], every_s: float, tick: Callable[[int | None], None]
) -> str:
    task = asyncio.ensure_future(work)
    while True:
        done, _ = await asyncio.wait({task}, timeout=every_s)
        if done:
            return task.result()
        tick(None)


async def _finish(conn: asyncpg.Connection, moved_to: str, allow_data_loss: bool) -> None:
    serial = await conn.fetch(
        "SELECT table_name::text AS t FROM information_schema.columns"
        " WHERE table_schema = 'public' AND column_name = '_id'"
        " AND column_default LIKE 'nextval(%'"
    )
    for r in serial:
        t = _ident(r["t"])
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence('public.{r['t']}', '_id'),"
            f" COALESCE((SELECT max(_id) FROM public.{t}), 1),"
            f" (SELECT max(_id) FROM public.{t}) IS NOT NULL)"
        )
    await conn.execute(
        "INSERT INTO migration (_id, name, applied)"
        " SELECT n, name, clock_timestamp() + n * interval '1 microsecond'"
        " FROM unnest($1::text[]) WITH ORDINALITY AS t(name, n)",
        list(OFFICIAL_MIGRATION_NAMES_3_9),
    )
    placed = int(await conn.fetchval(PLACED_CERTIFICATES))
    stored = int(await conn.fetchval(f"SELECT count(*) FROM {_ident(moved_to)}.certificate"))
    if placed != stored and not allow_data_loss:
        raise DataLossRefused(
            f"{stored} certificates are stored but {placed} found a row of the official schema "
            "to carry them: rolled back, nothing was changed (--allow-data-loss to proceed)",
            names=["certificates"],
        )


def refusal(items: tuple[Unrepresentable, ...] | list[Unrepresentable]) -> str:
    listed = "; ".join(i.text for i in items)
    return (
        f"the official 3.9.x schema cannot represent: {listed}. A hand-back would lose it: "
        "nothing was changed (pass --allow-data-loss to hand back without it; the verified "
        "backup taken first keeps it)"
    )
