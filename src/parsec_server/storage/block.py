"""Blocks: the metadata rows (`block`) of block_create / block_read (protocol.md §4.6).

A block id is unique per ORGANIZATION (unique index `block (organization, block_id)`, migration
0003), not only per realm: every blockstore keys the data by (organization, block id), so an id
registered in a second realm would share, read or overwrite the first realm's data. block_create of
an id that any realm of the organization holds is refused (`block_already_exists`); block_read finds
a block only through the realm it was written in.

Writes take the metadata row first, then the data, so that a loser of a race never writes:
* POSTGRESQL blockstore (data in `block_data` of the server's own database): checks, metadata and
  data are one statement (`create_with_data`); the data insert reads the metadata insert's output,
  so it runs after it, and a concurrent create of the same id makes the whole statement fail on the
  unique index (nothing written).
* other blockstores: `insert` in a transaction that stays open while the data are written and
  commits after (commands/block.py): a concurrent create of the same id waits on the unique index
  and then fails; a failed data write (or a crash) rolls the row back.

No topic lock: blocks have no timestamp and are not ordered against certificates (a block only
matters through the vlob that references it).
"""

from __future__ import annotations

import datetime
import uuid
from typing import NamedTuple

import asyncpg

from parsec_server.storage.write_rules import WriteFacts, write_ok_sql

__all__ = [
    "CREATED",
    "BlockCreate",
    "BlockData",
    "BlockFacts",
    "BlockRead",
    "check",
    "create_with_data",
    "insert",
    "read_with_data",
]

INT4_MAX = 2**31 - 1

# The refusal rules in SQL (storage/write_rules.py decides the same in Python): no timestamp, and
# the id must not be taken.
_WRITE_OK = write_ok_sql(
    "ctx", key_index="$5", version="1", update="FALSE", timestamp=None, in_ballpark=None
)


class BlockFacts(NamedTuple):
    """What a block statement found: the author's state now, the realm (internal id, None: not
    found) and its write facts, the block in this realm (None: no such block here) and its key
    index."""

    is_expired: bool
    revoked: bool
    realm: int | None
    write: WriteFacts
    block: int | None
    block_key_index: int | None


class BlockCreate(NamedTuple):
    facts: BlockFacts
    written: bool


class BlockRead(NamedTuple):
    facts: BlockFacts
    data: bytes | None  # None: not readable, or no data


class BlockData(NamedTuple):
    """A block read that passed every check (the common case, without the facts: ~3 % of a read's
    CPU saved, bench/inproc.py --callgrind)."""

    data: bytes
    key_index: int
    realm_ts: datetime.datetime


# What a create that wrote returns (its facts are never read).
_WRITTEN_FACTS = BlockFacts(
    False, False, None, WriteFacts(True, None, None, None, None, None, 1), None, None
)
CREATED = BlockCreate(_WRITTEN_FACTS, True)


def _facts(row: asyncpg.Record) -> BlockFacts:
    # positional: this runs on every block request (keywords cost about twice as much)
    realm = row["realm"]
    return BlockFacts(
        row["is_expired"],
        row["revoked"],
        realm,
        WriteFacts(
            realm is not None,  # realm_found
            row["status"],
            row["role"],
            row["key_index"],
            None,  # common_ts
            row["realm_ts"],
            row["current_version"],
        ),
        row["block"],
        row["block_key_index"],
    )


# $1 org, $2 user, $3 realm_id, $4 block_id
_CTX = """
WITH r0 AS (
    SELECT id, status, key_index FROM realm WHERE organization = $1 AND realm_id = $3
),
ctx AS MATERIALIZED (
    SELECT
        o.is_expired,
        u.revoked_on IS NOT NULL AS revoked,
        r0.id AS realm,
        r0.status,
        r0.key_index,
        (SELECT m.role FROM realm_member m WHERE m.realm = r0.id AND m.user_ = $2) AS role,
        (SELECT t.last_timestamp FROM topic_realm t WHERE t.realm = r0.id) AS realm_ts,
        CASE WHEN b.realm = r0.id THEN b.id END AS block,
        CASE WHEN b.realm = r0.id THEN b.key_index END AS block_key_index,
        b.id IS NOT NULL AS block_id_taken,
        -- the columns storage/write_rules.py reads: an existing id is "version 1", never stale
        CASE WHEN b.id IS NOT NULL THEN 1 END AS current_version,
        FALSE AS stale
    FROM organization o
    JOIN user_ u ON u.id = $2
    LEFT JOIN r0 ON TRUE
    LEFT JOIN block b ON b.organization = $1 AND b.block_id = $4
    WHERE o.id = $1
)
"""

_Q_CHECK = _CTX + "SELECT * FROM ctx"

# The realm's block total (migration 0008) that a write adds to: one row per realm and slot, the
# slot chosen by the writing backend, so that concurrent writes of one realm rarely wait for one
# another's row lock (organization_info sums the slots).
_USAGE_SLOT = "(pg_backend_pid() % 16)::smallint"


def _add_to_usage(size: str) -> str:
    """The upsert adding `size` to the total of the realm of the row `meta` inserted (if any)."""
    return f"""INSERT INTO realm_block_usage AS u (realm, slot, bytes)
SELECT meta.realm, {_USAGE_SLOT}, {size} FROM meta
ON CONFLICT (realm, slot) DO UPDATE SET bytes = u.bytes + EXCLUDED.bytes"""


# $5 key index, $6 author device, $7 size, $8 created_on, $9 organization_id, $10 data
_Q_CREATE_WITH_DATA = (
    _CTX
    + f""",
ok AS (
    SELECT ctx.*, ({_WRITE_OK}) AS ok
    FROM ctx
),
meta AS (
    INSERT INTO block (organization, realm, block_id, author, key_index, size, created_on)
    SELECT $1, ok.realm, $4, $6, $5, $7, $8 FROM ok WHERE ok.ok
    RETURNING id, realm
),
usage AS (
{_add_to_usage("$7")}
),
data AS (
    -- After `meta` (it reads its output). A conflict can only be orphan data: no block row of the
    -- organization holds this id (the unique index guarantees it once `meta` inserted).
    INSERT INTO block_data (organization_id, block_id, data)
    SELECT $9, $4, $10 FROM meta
    ON CONFLICT (organization_id, block_id) DO UPDATE SET data = EXCLUDED.data
)
SELECT ok.*, EXISTS (SELECT 1 FROM meta) AS written FROM ok
"""
)

_Q_INSERT = f"""
WITH meta AS (
    INSERT INTO block (organization, realm, block_id, author, key_index, size, created_on)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    RETURNING realm
)
{_add_to_usage("$6")}
"""

# $5 organization_id
_Q_READ_WITH_DATA = (
    _CTX
    + """
SELECT ctx.*, (
    SELECT d.data FROM block_data d
    WHERE ctx.block IS NOT NULL AND ctx.role IS NOT NULL AND ctx.status <> 'DELETED'
        AND d.organization_id = $5 AND d.block_id = $4
) AS data
FROM ctx
"""
)


async def check(
    conn: asyncpg.Connection,
    org_internal_id: int,
    user_internal_id: int,
    realm_id: uuid.UUID,
    block_id: uuid.UUID,
) -> BlockFacts | None:
    """The facts (`current_version` 1: some realm of the organization holds this block id). None if
    the organization or user is gone."""
    row: asyncpg.Record | None = await conn.fetchrow(
        _Q_CHECK, org_internal_id, user_internal_id, realm_id, block_id
    )
    return None if row is None else _facts(row)


async def create_with_data(
    conn: asyncpg.Connection,
    *,
    org_internal_id: int,
    organization_id: str,
    user_internal_id: int,
    device_internal_id: int,
    realm_id: uuid.UUID,
    block_id: uuid.UUID,
    key_index: int,
    data: bytes,
    now: datetime.datetime,
) -> BlockCreate | None:
    """POSTGRESQL blockstore: check, then store metadata and data if every check passes (`written`).
    Raises UniqueViolationError when a concurrent create of the same block id (in any realm of the
    organization) won; nothing is written then."""
    row: asyncpg.Record | None = await conn.fetchrow(
        _Q_CREATE_WITH_DATA,
        org_internal_id,
        user_internal_id,
        realm_id,
        block_id,
        key_index if key_index <= INT4_MAX else -1,
        device_internal_id,
        len(data),
        now,
        organization_id,
        data,
    )
    if row is None:
        return None
    return CREATED if row["written"] else BlockCreate(_facts(row), False)


async def insert(
    conn: asyncpg.Connection,
    org_internal_id: int,
    realm_internal_id: int,
    block_id: uuid.UUID,
    device_internal_id: int,
    key_index: int,
    size: int,
    now: datetime.datetime,
) -> None:
    """The metadata row, before the data are written (in a transaction committed after them).
    Raises UniqueViolationError if a realm of the organization holds the id (waits for a concurrent
    uncommitted insert of the same id to end first)."""
    await conn.execute(
        _Q_INSERT,
        org_internal_id,
        realm_internal_id,
        block_id,
        device_internal_id,
        key_index,
        size,
        now,
    )


async def read_with_data(
    conn: asyncpg.Connection,
    org_internal_id: int,
    organization_id: str,
    user_internal_id: int,
    realm_id: uuid.UUID,
    block_id: uuid.UUID,
) -> BlockData | BlockRead | None:
    """POSTGRESQL blockstore: `BlockData` when the read passes every check, else the facts of
    `check` plus `data` (None when not readable or missing). None if the organization or user is
    gone."""
    row: asyncpg.Record | None = await conn.fetchrow(
        _Q_READ_WITH_DATA, org_internal_id, user_internal_id, realm_id, block_id, organization_id
    )
    if row is None:
        return None
    data = row["data"]
    if (
        data is not None
        and row["block"] is not None
        and row["role"] is not None
        and row["status"] != "DELETED"
        and not row["is_expired"]
        and not row["revoked"]
    ):  # `block` is only found in an existing realm of the author's organization
        return BlockData(data, row["block_key_index"], row["realm_ts"])
    return BlockRead(_facts(row), data)
