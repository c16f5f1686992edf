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
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import asyncpg

from parsec_server.storage.migrations import sqltext
from parsec_server.storage.migrations.errors import SchemaConflict

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
    if m is None:
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
