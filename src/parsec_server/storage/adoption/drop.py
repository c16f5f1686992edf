"""`parsec-server migrate drop-official`: the explicit step that removes the official tables an
adoption kept in schema OFFICIAL_SCHEMA (docs/switching-from-official.md). Reads first (what would
go and how big it is); drops only when asked, in one transaction, with an audit event."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from parsec_server.storage.adoption.official_schema import OFFICIAL_SCHEMA
from parsec_server.storage.migrations import history


@dataclass(frozen=True, slots=True)
class OfficialCopy:
    tables: int
    bytes: int  # tables, indexes and TOAST


async def kept_official(
    conn: asyncpg.Connection, schema: str = OFFICIAL_SCHEMA
) -> OfficialCopy | None:
    """What the adoption kept, or None when there is no such schema."""
    row = await conn.fetchrow(
        "SELECT count(c.oid) AS tables,"
        " COALESCE(sum(pg_total_relation_size(c.oid)), 0)::bigint AS bytes"
        " FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind = 'r'"
        " WHERE n.nspname = $1 GROUP BY n.oid",
        schema,
    )
    if row is None:
        return None
    return OfficialCopy(tables=int(row["tables"]), bytes=int(row["bytes"]))


async def drop_official(
    conn: asyncpg.Connection, schema: str = OFFICIAL_SCHEMA
) -> OfficialCopy | None:
    """Drop the kept official schema (caller: migration lock held). None: nothing to drop."""
    async with conn.transaction():
        kept = await kept_official(conn, schema)
        if kept is None:
            return None
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await history.event(
            conn, "drop_official", None, schema=schema, tables=kept.tables, bytes=kept.bytes
        )
    return kept


__all__ = ["OfficialCopy", "drop_official", "kept_official"]
