"""Blocks: the metadata rows (`block`) of block_create / block_read (protocol.md §4.6).

The data live in the blockstore. With an object store the order is the official one: check, write
the data, then insert the metadata row (a failed write leaves no row; a failed insert leaves orphan
data that a later create of the same block overwrites). With the POSTGRESQL blockstore the data go
to `block_data` in the server's own database: checks, data and metadata are then one statement
(`create_with_data`, `read_with_data`), atomic and one round trip.

No topic lock: blocks have no timestamp and are not ordered against certificates (a block only
matters through the vlob that references it).
"""

from __future__ import annotations

import datetime
import uuid

import asyncpg

__all__ = ["check", "create_with_data", "insert", "read_with_data"]

INT4_MAX = 2**31 - 1

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
        b.id AS block,
        b.key_index AS block_key_index
    FROM organization o
    JOIN user_ u ON u.id = $2
    LEFT JOIN r0 ON TRUE
    LEFT JOIN block b ON b.realm = r0.id AND b.block_id = $4
    WHERE o.id = $1
)
"""

_Q_CHECK = _CTX + "SELECT * FROM ctx"

# $5 key index, $6 author device, $7 size, $8 created_on, $9 organization_id, $10 data
_Q_CREATE_WITH_DATA = (
    _CTX
    + """,
ok AS (
    SELECT ctx.*, (
        NOT ctx.is_expired AND NOT ctx.revoked
        AND ctx.status = 'AVAILABLE'
        AND ctx.key_index = $5
        AND ctx.role IN ('OWNER', 'MANAGER', 'CONTRIBUTOR')
        AND ctx.block IS NULL
    ) AS ok
    FROM ctx
),
data AS (
    INSERT INTO block_data (organization_id, block_id, data)
    SELECT $9, $4, $10 FROM ok WHERE ok.ok
    ON CONFLICT (organization_id, block_id) DO UPDATE SET data = EXCLUDED.data
),
meta AS (
    INSERT INTO block (realm, block_id, author, key_index, size, created_on)
    SELECT ok.realm, $4, $6, $5, $7, $8 FROM ok WHERE ok.ok
    RETURNING id
)
SELECT ok.*, EXISTS (SELECT 1 FROM meta) AS written FROM ok
"""
)

_Q_INSERT = """
INSERT INTO block (realm, block_id, author, key_index, size, created_on)
VALUES ($1, $2, $3, $4, $5, $6)
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
) -> asyncpg.Record | None:
    """The facts: is_expired, revoked, realm (None: not found), status, key_index, role, realm_ts,
    block (None: no such block in the realm), block_key_index. None if the organization or user is
    gone."""
    row: asyncpg.Record | None = await conn.fetchrow(
        _Q_CHECK, org_internal_id, user_internal_id, realm_id, block_id
    )
    return row


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
) -> asyncpg.Record | None:
    """POSTGRESQL blockstore: check, then store data and metadata if every check passes (`written`).
    Raises UniqueViolationError when a concurrent create of the same block won."""
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
    return row


async def insert(
    conn: asyncpg.Connection,
    realm_internal_id: int,
    block_id: uuid.UUID,
    device_internal_id: int,
    key_index: int,
    size: int,
    now: datetime.datetime,
) -> None:
    """The metadata row, once the data are stored. Raises UniqueViolationError if it exists."""
    await conn.execute(
        _Q_INSERT, realm_internal_id, block_id, device_internal_id, key_index, size, now
    )


async def read_with_data(
    conn: asyncpg.Connection,
    org_internal_id: int,
    organization_id: str,
    user_internal_id: int,
    realm_id: uuid.UUID,
    block_id: uuid.UUID,
) -> asyncpg.Record | None:
    """POSTGRESQL blockstore: the facts of `check` plus `data` (None when not readable or
    missing)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        _Q_READ_WITH_DATA, org_internal_id, user_internal_id, realm_id, block_id, organization_id
    )
    return row
