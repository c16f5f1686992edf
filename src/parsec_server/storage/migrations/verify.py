"""Verifying what a migration would skip: an index is "done" only if it is the index the file specifies.

`CREATE INDEX ... IF NOT EXISTS name` skips when *any* relation called `name` exists in the table's
schema, and the resume logic of non-transactional files skips a `CREATE INDEX CONCURRENTLY` whose index
already exists. Both would record the migration as applied over a squatter (a table of that name, an
index on another table, or with other columns, uniqueness, method, INCLUDE list or predicate). Before
skipping, the engine compares the existing object with the definition the statement produces:

* it builds the statement's index on an empty shadow of the table (`CREATE TEMP TABLE ... (LIKE t)`,
  in a savepoint or a transaction that is rolled back: nothing stays, the real table is not scanned),
* and compares `pg_get_indexdef` of both, without their names: `[UNIQUE] ... USING method (keys)
  [INCLUDE (...)] [NULLS NOT DISTINCT] [WHERE predicate]`, and the table the index is on.

The answer is `absent` (run the statement), `valid` (the specified index exists: skip), `invalid` (the
specified index, left INVALID by an interrupted CREATE INDEX CONCURRENTLY: drop and rebuild), or
`SchemaConflict`, naming the object and what differs. Only statements with a name are verified;
`migrate lint` refuses the `IF NOT EXISTS` forms this module cannot verify.

`pending_conflict` runs the same check for `migrate --dry-run`; `verify_schema` (`migrate verify`)
compares a fully migrated database with the reference schema.sql, for what was skipped before this
check existed.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from parsec_server.storage.migrations import history, sqltext
from parsec_server.storage.migrations.connection import close, connect, redact_url
from parsec_server.storage.migrations.errors import DatabaseAhead, SchemaConflict, SchemaNotReady
from parsec_server.storage.migrations.plan import Plan, make_plan
from parsec_server.storage.migrations.reference import dump_schema, normalise_dump, reference_schema
from parsec_server.storage.migrations.source import MigrationsSource, discover

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)'
_INDEX = re.compile(
    r"^\s*CREATE\s+(?P<unique>UNIQUE\s+)?INDEX\s+(?P<concurrently>CONCURRENTLY\s+)?"
    rf"(?P<if_not_exists>IF\s+NOT\s+EXISTS\s+)?(?P<name>{_IDENT})\s+ON\s+(?P<only>ONLY\s+)?"
    rf"(?P<table>{_IDENT}(?:\s*\.\s*{_IDENT})?)",
    re.IGNORECASE,
)
# pg_get_indexdef: CREATE [UNIQUE] INDEX name ON [ONLY] schema.table USING method (...) ...
_INDEXDEF = re.compile(
    rf"^CREATE (?P<unique>UNIQUE )?INDEX {_IDENT} ON (?:ONLY )?{_IDENT}\.{_IDENT} USING (?P<tail>.*)$",
    re.DOTALL,
)
_SHADOW_TABLE = "_parsec_migrate_verify"
_SHADOW_INDEX = "_parsec_migrate_verify_index"
_RELKINDS = {
    "r": "a table",
    "p": "a partitioned table",
    "v": "a view",
    "m": "a materialized view",
    "S": "a sequence",
    "f": "a foreign table",
    "c": "a composite type",
    "t": "a TOAST table",
}

IndexState = Literal["absent", "valid", "invalid"]


@dataclass(frozen=True, slots=True)
class IndexStatement:
    """A named CREATE INDEX statement, as written."""

    statement: sqltext.Statement
    name: str  # as written (quoted or not): usable in SQL
    relname: str  # as stored in pg_class
    table: str  # as written
    unique: bool
    if_not_exists: bool
    concurrently: bool
    rest: str  # everything after the table name: USING ... (keys) INCLUDE ... WHERE ...


def _unquote(ident: str) -> str:
    if ident.startswith('"'):
        return ident[1:-1].replace('""', '"')
    return ident.lower()


def parse_index(st: sqltext.Statement) -> IndexStatement | None:
    m = _INDEX.match(st.code)
    if m is None or m.group("name").upper() == "CONCURRENTLY":  # CREATE INDEX CONCURRENTLY ON t
        return None
    text = st.text
    return IndexStatement(
        statement=st,
        name=text[m.start("name") : m.end("name")],
        relname=_unquote(text[m.start("name") : m.end("name")]),
        table=text[m.start("table") : m.end("table")],
        unique=bool(m.group("unique")),
        if_not_exists=bool(m.group("if_not_exists")),
        concurrently=bool(m.group("concurrently")),
        rest=text[m.end("table") :],
    )


def _shape(indexdef: str) -> tuple[bool, str]:
    m = _INDEXDEF.match(indexdef)
    if m is None:  # not expected from pg_get_indexdef; compare whole definitions then
        return False, indexdef
    return bool(m.group("unique")), m.group("tail")


def _describe(unique: bool, tail: str) -> str:
    return f"{'UNIQUE ' if unique else ''}USING {tail}"


class _Rollback(Exception):
    pass


async def _specified_indexdef(conn: asyncpg.Connection, ix: IndexStatement) -> str:
    """pg_get_indexdef of the index the statement builds, built on an empty shadow of its table."""
    result = ""
    try:
        async with conn.transaction():  # a savepoint when the step runs in a transaction
            await conn.execute(
                f"CREATE TEMP TABLE {_SHADOW_TABLE} (LIKE {ix.table}) ON COMMIT DROP"
            )
            await conn.execute(
                f"CREATE {'UNIQUE ' if ix.unique else ''}INDEX {_SHADOW_INDEX} "
                f"ON pg_temp.{_SHADOW_TABLE}{ix.rest}"
            )
            result = await conn.fetchval(
                "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = $1::regclass",
                f"pg_temp.{_SHADOW_TABLE}",
            )
            raise _Rollback
    except _Rollback:
        pass
    return result


async def index_state(
    conn: asyncpg.Connection, ix: IndexStatement, filename: str
) -> tuple[IndexState, str]:
    """What already stands where the statement would create its index, and its qualified name;
    raise SchemaConflict when it is not the index the statement specifies."""
    table_oid = await conn.fetchval("SELECT to_regclass($1)::oid", ix.table)
    if table_oid is None:
        return "absent", ix.name  # the statement fails on its own, with PostgreSQL's message
    row = await conn.fetchrow(
        """
        SELECT c.oid, c.relkind::text AS relkind, n.nspname, i.indrelid, i.indrelid::regclass::text AS on_table,
               i.indisvalid, pg_get_indexdef(c.oid) AS def,
               format('%I.%I', n.nspname, c.relname) AS qualified
        FROM pg_class t
        JOIN pg_class c ON c.relnamespace = t.relnamespace AND c.relname = $2
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_index i ON i.indexrelid = c.oid
        WHERE t.oid = $1
        """,
        table_oid,
        ix.relname,
    )
    if row is None:
        return "absent", ix.name
    where = f"the statement at line {ix.statement.line}"
    if row["relkind"] not in ("i", "I"):
        kind = _RELKINDS.get(row["relkind"], f"a relation of kind {row['relkind']!r}")
        raise SchemaConflict(
            f"{where} creates index {ix.relname} on {ix.table}, but {row['nspname']}.{ix.relname} "
            f"already exists and is {kind}, not an index: rename or drop it, then rerun migrate",
            migration=filename,
            obj=ix.relname,
        )
    if row["indrelid"] != table_oid:
        raise SchemaConflict(
            f"{where} creates index {ix.relname} on {ix.table}, but an index of that name already "
            f"exists on {row['on_table']} ({row['def']}): rename or drop it, then rerun migrate",
            migration=filename,
            obj=ix.relname,
        )
    expected = _shape(await _specified_indexdef(conn, ix))
    found = _shape(row["def"])
    if found != expected:
        differs = []
        if found[0] != expected[0]:
            differs.append("uniqueness")
        if found[1] != expected[1]:
            differs.append("definition")
        state = "" if row["indisvalid"] else "INVALID "
        raise SchemaConflict(
            f"{where} creates index {ix.relname}, but an {state}index of that name already exists "
            f"with another {' and '.join(differs)}: it is `{_describe(*found)}`, the migration "
            f"specifies `{_describe(*expected)}`; drop it (DROP INDEX CONCURRENTLY "
            f"{row['qualified']}) or rename it, then rerun migrate",
            migration=filename,
            obj=ix.relname,
        )
    return ("valid" if row["indisvalid"] else "invalid"), str(row["qualified"])


async def pending_conflict(conn: asyncpg.Connection, plan: Plan) -> SchemaConflict | None:
    """What the real run would find where the pending steps create indexes (verify.py). The
    shadow table it builds is temporary, in a transaction rolled back at once: nothing changes.
    A check that cannot run here (a read-only server) is left to the real run."""
    for step in plan.steps:
        if step.direction != "up" or step.script is None:
            continue
        for st in step.script.statements():
            ix = parse_index(st)
            if ix is None or not (ix.if_not_exists or not step.script.transactional):
                continue
            try:
                async with conn.transaction():
                    await conn.execute("SET TRANSACTION READ WRITE")
                    await index_state(conn, ix, step.filename)
                    raise _RollBack
            except _RollBack:
                pass
            except SchemaConflict as exc:
                return exc
            except asyncpg.PostgresError:
                continue
    return None


class _RollBack(Exception):
    pass


async def verify_schema(url: str, *, source: MigrationsSource = None) -> dict[str, Any]:
    """`migrate verify`: the database's schema (pg_dump --schema-only, normalised) against this
    release's reference schema.sql. Finds what no step verified at the time: an object changed by
    hand, or a squatter an older parsec-server took for a migration's index. Refuses a database with
    pending or unknown migrations (its schema is not this release's by design)."""
    migrations = discover(source)
    conn = await connect(url, purpose="migrate-verify", read_only=True)
    try:
        rows = await history.read(conn)
    finally:
        await close(conn)
    plan = make_plan(migrations, rows, None)
    if plan.unknown or plan.conflicts:
        names = [r.filename for r in plan.unknown] + [r.filename for _, r in plan.conflicts]
        raise DatabaseAhead(
            f"the database holds migrations this release does not know ({', '.join(names)}): "
            "there is no reference schema to compare it with",
            names=names,
        )
    if plan.pending:
        names = [m.filename for m in plan.pending]
        raise SchemaNotReady(
            f"the database needs {len(names)} migration(s) ({', '.join(names)}): migrate first, "
            "then verify",
            pending=names,
        )
    actual = await dump_schema(url)
    expected = normalise_dump(reference_schema(source))
    diff = list(
        difflib.unified_diff(
            expected.splitlines(),
            actual.splitlines(),
            "reference schema.sql",
            "database",
            n=1,
            lineterm="",
        )
    )
    return {
        "event": "verify",
        "database": redact_url(url),
        "migrations": len(rows),
        "identical": not diff,
        "diff": diff,
    }
