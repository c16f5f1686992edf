"""Shamir recovery setups, their shares and certificates (protocol.md §4.8, §4.9).

A user has at most one active (not deleted) setup. The signed certificates live in `certificate`
(topic `shamir_recovery`): the brief and the deletion certificate are readable by the setup's owner
and its recipients, each share certificate only by its recipient (certificate_get reads them:
storage/certificate.py).

Writers take, in this order: topic_common FOR SHARE, then the organization's shamir write lock (a
transaction advisory lock: the topic_shamir_recovery row only exists once a first certificate does).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

_LOCK_NAMESPACE_SHAMIR_WRITE = 0x5A31


@dataclass(frozen=True, slots=True)
class Topics:
    last_common: datetime
    last_shamir: datetime | None  # None: no shamir certificate in this organization yet

    @property
    def last(self) -> datetime:
        return (
            self.last_common
            if self.last_shamir is None
            else max(self.last_common, self.last_shamir)
        )


_Q_COMMON_FOR_SHARE = "SELECT last_timestamp FROM topic_common WHERE organization = $1 FOR SHARE"
_Q_SHAMIR_LOCK = "SELECT pg_advisory_xact_lock($1, $2::INTEGER)"
_Q_SHAMIR_TOPIC = "SELECT last_timestamp FROM topic_shamir_recovery WHERE organization = $1"
_Q_BUMP_TOPIC = """
INSERT INTO topic_shamir_recovery (organization, last_timestamp) VALUES ($1, $2)
ON CONFLICT (organization) DO UPDATE
    SET last_timestamp = GREATEST(topic_shamir_recovery.last_timestamp, excluded.last_timestamp)
"""


async def lock_for_write(conn: asyncpg.Connection, org_internal_id: int) -> Topics:
    last_common = await conn.fetchval(_Q_COMMON_FOR_SHARE, org_internal_id)
    await conn.execute(_Q_SHAMIR_LOCK, _LOCK_NAMESPACE_SHAMIR_WRITE, org_internal_id % 2**31)
    last_shamir = await conn.fetchval(_Q_SHAMIR_TOPIC, org_internal_id)
    assert last_common is not None, "bootstrapped organizations have a common topic"
    return Topics(last_common, last_shamir)


# --- setups ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Setup:
    internal_id: int
    user_internal_id: int
    created_on: datetime
    threshold: int
    deleted_on: datetime | None


_SETUP_COLUMNS = "id, user_, created_on, threshold, deleted_on"
_Q_ACTIVE_SETUP = (
    f"SELECT {_SETUP_COLUMNS} FROM shamir_recovery_setup WHERE user_ = $1 AND deleted_on IS NULL"
)
_Q_SETUP_AT = (
    f"SELECT {_SETUP_COLUMNS} FROM shamir_recovery_setup WHERE user_ = $1 AND created_on = $2"
)


def _setup(row: asyncpg.Record | None) -> Setup | None:
    if row is None:
        return None
    return Setup(row["id"], row["user_"], row["created_on"], row["threshold"], row["deleted_on"])


async def active_setup(conn: asyncpg.Connection, user_internal_id: int) -> Setup | None:
    return _setup(await conn.fetchrow(_Q_ACTIVE_SETUP, user_internal_id))


async def setup_created_on(
    conn: asyncpg.Connection, user_internal_id: int, created_on: datetime
) -> Setup | None:
    """The user's setup identified by its brief certificate's timestamp."""
    return _setup(await conn.fetchrow(_Q_SETUP_AT, user_internal_id, created_on))


_Q_RECIPIENT_IDS = """
SELECT u.user_id FROM shamir_recovery_share sh JOIN user_ u ON u.id = sh.recipient
WHERE sh.setup = $1
"""


async def recipient_ids(conn: asyncpg.Connection, setup_internal_id: int) -> set[uuid.UUID]:
    return {r["user_id"] for r in await conn.fetch(_Q_RECIPIENT_IDS, setup_internal_id)}


@dataclass(frozen=True, slots=True)
class Recipient:
    internal_id: int
    user_id: uuid.UUID
    revoked: bool


_Q_USERS = """
SELECT id, user_id, revoked_on IS NOT NULL AS revoked FROM user_
WHERE organization = $1 AND user_id = ANY($2::UUID[])
"""


async def find_users(
    conn: asyncpg.Connection, org_internal_id: int, user_ids: list[uuid.UUID]
) -> dict[uuid.UUID, Recipient]:
    rows = await conn.fetch(_Q_USERS, org_internal_id, user_ids)
    return {r["user_id"]: Recipient(r["id"], r["user_id"], r["revoked"]) for r in rows}


_Q_INSERT_SETUP = """
INSERT INTO shamir_recovery_setup (organization, user_, created_on, created_by, threshold,
                                   total_shares, ciphered_data, reveal_token)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING id
"""
_Q_INSERT_SHARE = "INSERT INTO shamir_recovery_share (setup, recipient, shares) VALUES ($1, $2, $3)"
_Q_INSERT_CERTIFICATE = """
INSERT INTO certificate (organization, topic, certified_on, priority, kind, certificate,
                         shamir_recovery_setup, shamir_recipient)
VALUES ($1, 'shamir_recovery', $2, $3, $4, $5, $6, $7)
"""


# What insert_setup did: stored, or nothing (another setup of the organization has that reveal
# token).
SetupInsert = Literal["ok", "reveal_token_already_used"]


async def insert_setup(
    conn: asyncpg.Connection,
    *,
    org_internal_id: int,
    user_internal_id: int,
    author_device_internal_id: int,
    created_on: datetime,
    threshold: int,
    ciphered_data: bytes,
    reveal_token: bytes,
    brief_certificate: bytes,
    shares: list[tuple[Recipient, int, bytes]],  # (recipient, number of shares, share certificate)
) -> SetupInsert:
    """Store a new setup, its shares and certificates, and move the shamir topic to `created_on`
    (nothing is written when the reveal token is taken)."""
    try:
        async with (
            conn.transaction()
        ):  # savepoint: a reveal token collision must not abort the caller
            setup_id: int = await conn.fetchval(
                _Q_INSERT_SETUP,
                org_internal_id,
                user_internal_id,
                created_on,
                author_device_internal_id,
                threshold,
                sum(n for _, n, _ in shares),
                ciphered_data,
                reveal_token,
            )
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name and "reveal_token" in exc.constraint_name:
            return "reveal_token_already_used"
        raise
    await conn.executemany(_Q_INSERT_SHARE, [(setup_id, r.internal_id, n) for r, n, _ in shares])
    await conn.execute(
        _Q_INSERT_CERTIFICATE,
        org_internal_id,
        created_on,
        0,
        "shamir_recovery_brief_certificate",
        brief_certificate,
        setup_id,
        None,
    )
    await conn.executemany(
        _Q_INSERT_CERTIFICATE,
        [
            (
                org_internal_id,
                created_on,
                1,
                "shamir_recovery_share_certificate",
                cert,
                setup_id,
                r.internal_id,
            )
            for r, _, cert in shares
        ],
    )
    await conn.execute(_Q_BUMP_TOPIC, org_internal_id, created_on)
    return "ok"


# The ciphered data is wiped: once deleted, a setup must not let anybody recover the device keys.
_Q_DELETE_SETUP = """
UPDATE shamir_recovery_setup SET deleted_on = $2, deleted_by = $3, ciphered_data = ''::BYTEA
WHERE id = $1 AND deleted_on IS NULL
"""


async def delete_setup(
    conn: asyncpg.Connection,
    *,
    org_internal_id: int,
    setup_internal_id: int,
    author_device_internal_id: int,
    deleted_on: datetime,
    deletion_certificate: bytes,
) -> None:
    await conn.execute(_Q_DELETE_SETUP, setup_internal_id, deleted_on, author_device_internal_id)
    await conn.execute(
        _Q_INSERT_CERTIFICATE,
        org_internal_id,
        deleted_on,
        0,
        "shamir_recovery_deletion_certificate",
        deletion_certificate,
        setup_internal_id,
        None,
    )
    await conn.execute(_Q_BUMP_TOPIC, org_internal_id, deleted_on)


_Q_REVEAL = (
    "SELECT ciphered_data, reveal_token, deleted_on FROM shamir_recovery_setup WHERE id = $1"
)


async def reveal(
    conn: asyncpg.Connection, setup_internal_id: int, reveal_token: bytes
) -> bytes | None:
    """The setup's ciphered data if `reveal_token` is its reveal token and it is not deleted."""
    row = await conn.fetchrow(_Q_REVEAL, setup_internal_id)
    if row is None or row["deleted_on"] is not None or bytes(row["reveal_token"]) != reveal_token:
        return None
    return bytes(row["ciphered_data"])
