"""TOTP multi-factor state (migration 0005): per-user secret and set-up state, opaque keys with the
throttling of wrong codes, administration reset tokens (docs/totp.md).

`user_totp` has a row once a user's secret is first asked for (or the administration reset it);
`user_totp_opaque_key` one per key created by totp_create_opaque_key. The reset token is stored as
its SHA-256. Every function runs inside the caller's transaction; the ones that read before they
write lock the row they will write (`FOR UPDATE`), so concurrent wrong codes cannot slip past the
throttle and two confirmations cannot both win.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Literal, NamedTuple

import asyncpg

__all__ = [
    "FetchableKey",
    "ResetDone",
    "ResetOutcome",
    "SetupSecret",
    "TokenSetup",
    "clear_throttle",
    "complete_setup",
    "create_opaque_key",
    "get_or_create_secret",
    "get_or_create_secret_with_token",
    "lock_fetchable_key",
    "lock_setup",
    "lock_setup_with_token",
    "record_failure",
    "reset",
    "token_sha256",
]


def token_sha256(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


class SetupSecret(NamedTuple):
    secret: bytes
    setup_completed: bool


_Q_GET_OR_CREATE_SECRET = """
INSERT INTO user_totp (user_, secret) VALUES ($1, $2)
ON CONFLICT (user_) DO UPDATE SET secret = coalesce(user_totp.secret, EXCLUDED.secret)
RETURNING secret, setup_completed
"""


async def get_or_create_secret(
    conn: asyncpg.Connection, user_internal_id: int, new_secret: bytes
) -> SetupSecret:
    """The user's TOTP secret, `new_secret` stored if there was none yet (one round trip)."""
    row = await conn.fetchrow(_Q_GET_OR_CREATE_SECRET, user_internal_id, new_secret)
    assert row is not None
    return SetupSecret(row["secret"], row["setup_completed"])


# A reset token is good for an active (not revoked, not frozen) user whose setup is pending.
_Q_GET_OR_CREATE_SECRET_WITH_TOKEN = """
UPDATE user_totp AS t SET secret = coalesce(t.secret, $4)
FROM user_ AS u
WHERE u.id = t.user_ AND u.organization = $1 AND u.user_id = $2
    AND u.revoked_on IS NULL AND NOT u.frozen
    AND NOT t.setup_completed AND t.reset_token_sha256 = $3
RETURNING t.secret
"""


async def get_or_create_secret_with_token(
    conn: asyncpg.Connection,
    org_internal_id: int,
    user_id: uuid.UUID,
    token: bytes,
    new_secret: bytes,
) -> bytes | None:
    """The secret of a user reset by the administration, given the reset token; None for a wrong
    token or user (unknown, revoked, frozen, set up already)."""
    secret: bytes | None = await conn.fetchval(
        _Q_GET_OR_CREATE_SECRET_WITH_TOKEN,
        org_internal_id,
        user_id,
        token_sha256(token),
        new_secret,
    )
    return secret


class TokenSetup(NamedTuple):
    user_internal_id: int
    secret: bytes | None


_Q_LOCK_SETUP = "SELECT secret, setup_completed FROM user_totp WHERE user_ = $1 FOR UPDATE"


async def lock_setup(conn: asyncpg.Connection, user_internal_id: int) -> SetupSecret | None:
    """The user's pending or completed setup, locked; None when no secret was ever asked for."""
    row = await conn.fetchrow(_Q_LOCK_SETUP, user_internal_id)
    if row is None or row["secret"] is None:
        return None
    return SetupSecret(row["secret"], row["setup_completed"])


_Q_LOCK_SETUP_WITH_TOKEN = """
SELECT t.user_, t.secret
FROM user_totp AS t JOIN user_ AS u ON u.id = t.user_
WHERE u.organization = $1 AND u.user_id = $2
    AND u.revoked_on IS NULL AND NOT u.frozen
    AND NOT t.setup_completed AND t.reset_token_sha256 = $3
FOR UPDATE OF t
"""


async def lock_setup_with_token(
    conn: asyncpg.Connection, org_internal_id: int, user_id: uuid.UUID, token: bytes
) -> TokenSetup | None:
    """The pending setup the reset token opens, locked; None for a wrong token or user."""
    row = await conn.fetchrow(
        _Q_LOCK_SETUP_WITH_TOKEN, org_internal_id, user_id, token_sha256(token)
    )
    if row is None:
        return None
    return TokenSetup(row["user_"], row["secret"])


_Q_COMPLETE = """
UPDATE user_totp SET setup_completed = TRUE, reset_token_sha256 = NULL WHERE user_ = $1
"""


async def complete_setup(conn: asyncpg.Connection, user_internal_id: int) -> None:
    await conn.execute(_Q_COMPLETE, user_internal_id)


_Q_CREATE_KEY = """
INSERT INTO user_totp_opaque_key (user_, opaque_key_id, opaque_key) VALUES ($1, $2, $3)
"""


async def create_opaque_key(
    conn: asyncpg.Connection, user_internal_id: int, opaque_key_id: uuid.UUID, opaque_key: bytes
) -> None:
    await conn.execute(_Q_CREATE_KEY, user_internal_id, opaque_key_id, opaque_key)


class FetchableKey(NamedTuple):
    internal_id: int
    opaque_key: bytes
    secret: bytes
    failed_attempts: int
    last_failed_attempt: datetime | None


# Only an active user with a completed setup can fetch: anything else is indistinguishable from a
# wrong code (the official server answers invalid_one_time_password for all of them).
_Q_LOCK_KEY = """
SELECT k.id, k.opaque_key, t.secret, k.failed_attempts, k.last_failed_attempt
FROM user_totp_opaque_key AS k
JOIN user_ AS u ON u.id = k.user_
JOIN user_totp AS t ON t.user_ = u.id
WHERE u.organization = $1 AND u.user_id = $2 AND k.opaque_key_id = $3
    AND u.revoked_on IS NULL AND NOT u.frozen AND t.setup_completed
FOR UPDATE OF k
"""


async def lock_fetchable_key(
    conn: asyncpg.Connection, org_internal_id: int, user_id: uuid.UUID, opaque_key_id: uuid.UUID
) -> FetchableKey | None:
    row = await conn.fetchrow(_Q_LOCK_KEY, org_internal_id, user_id, opaque_key_id)
    if row is None:
        return None
    return FetchableKey(
        row["id"],
        row["opaque_key"],
        row["secret"],
        row["failed_attempts"],
        row["last_failed_attempt"],
    )


_Q_FAILURE = """
UPDATE user_totp_opaque_key SET failed_attempts = failed_attempts + 1, last_failed_attempt = $2
WHERE id = $1
"""


async def record_failure(conn: asyncpg.Connection, key_internal_id: int, at: datetime) -> None:
    await conn.execute(_Q_FAILURE, key_internal_id, at)


_Q_CLEAR_THROTTLE = """
UPDATE user_totp_opaque_key SET failed_attempts = 0, last_failed_attempt = NULL WHERE id = $1
"""


async def clear_throttle(conn: asyncpg.Connection, key_internal_id: int) -> None:
    await conn.execute(_Q_CLEAR_THROTTLE, key_internal_id)


class ResetDone(NamedTuple):
    user_id: uuid.UUID
    email: str


ResetOutcome = ResetDone | Literal["organization_not_found", "user_not_found", "user_revoked"]

_Q_RESET_FIND = """
WITH org AS (
    SELECT id FROM organization WHERE organization_id = $1 AND root_verify_key IS NOT NULL
)
SELECT
    (SELECT id FROM org) AS org_internal_id,
    u.id AS user_internal_id, u.user_id, h.email, u.revoked_on IS NOT NULL AS revoked
FROM (SELECT 1) AS one
LEFT JOIN (
    user_ AS u JOIN human AS h ON h.id = u.human
) ON u.organization = (SELECT id FROM org)
    AND CASE WHEN $2::UUID IS NOT NULL THEN u.user_id = $2
        ELSE h.email = $3 AND u.revoked_on IS NULL END
LIMIT 1
"""

_Q_RESET = """
WITH totp AS (
    INSERT INTO user_totp (user_, secret, setup_completed, reset_token_sha256)
    VALUES ($1, NULL, FALSE, $2)
    ON CONFLICT (user_) DO UPDATE
    SET secret = NULL, setup_completed = FALSE, reset_token_sha256 = EXCLUDED.reset_token_sha256
)
UPDATE user_totp_opaque_key SET failed_attempts = 0, last_failed_attempt = NULL WHERE user_ = $1
"""


async def reset(
    conn: asyncpg.Connection,
    organization_id: str,
    token: bytes,
    *,
    user_id: uuid.UUID | None = None,
    email: str | None = None,
) -> ResetOutcome:
    """Forget the user's TOTP setup (secret included) and throttles; `token` (its SHA-256 kept)
    lets the user set it up again with the anonymous totp_setup_* commands. The user is named by
    id (revoked: refused) or by the e-mail of its active user."""
    row = await conn.fetchrow(_Q_RESET_FIND, organization_id, user_id, email)
    assert row is not None
    if row["org_internal_id"] is None:
        return "organization_not_found"
    if row["user_internal_id"] is None:
        return "user_not_found"
    if row["revoked"]:
        return "user_revoked"
    await conn.execute(_Q_RESET, row["user_internal_id"], token_sha256(token))
    return ResetDone(row["user_id"], row["email"])
