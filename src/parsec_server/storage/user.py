"""Users and devices: creation, revocation, profile update, freeze, listings (protocol.md §4.4).

Every writer here holds the organization's common topic FOR UPDATE (storage.topics.lock_common)
before its statement runs, so the writers of one organization are serialised: the checks below
(existing ids, email taken, active users limit) cannot race with another creation. Each function
is one statement: its checks, and its writes gated on those checks (nothing is written when a
check fails), the topic bump and the NOTIFY of its events.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from parsec_server.events.bus import Event
from parsec_server.storage.topics import NOTIFY_CHANNEL, event_payloads

# --- user_create ----------------------------------------------------------------------------------

# Why create_user wrote nothing, in the protocol's check order (each is the command's status).
CreateUserRefusal = Literal[
    "human_handle_already_taken", "active_users_limit_reached", "user_already_exists"
]


@dataclass(frozen=True, slots=True)
class NewUser:
    timestamp: datetime.datetime
    author_device_internal_id: int
    user_id: uuid.UUID
    email: str
    label: str
    profile: str
    device_id: uuid.UUID
    device_label: str | None
    device_purpose: str
    verify_key: bytes
    user_certificate: bytes
    redacted_user_certificate: bytes
    device_certificate: bytes
    redacted_device_certificate: bytes


# Whether the active users limit of organization $1 is reached (also read by async enrollment's
# accept). It counts at most `active_users_limit` users, and none without a limit: the check does
# not grow with the organization's users (issue 17).
ACTIVE_USERS_LIMIT_REACHED = """COALESCE((
            SELECT o.active_users_limit <= (
                SELECT COUNT(*) FROM (
                    SELECT 1 FROM user_ WHERE organization = $1 AND revoked_on IS NULL
                    LIMIT o.active_users_limit
                ) AS active
            )
            FROM organization o WHERE o.id = $1 AND o.active_users_limit IS NOT NULL
        ), FALSE)"""

# $1 org, $2 ts, $3 author device, $4 user_id, $5 email, $6 label, $7 profile, $8 device_id,
# $9 device label, $10 purpose, $11 verify key, $12..$15 certificates, $16 notify channel,
# $17 event payloads
_Q_CREATE_USER = f"""
WITH checks AS (
    SELECT
        EXISTS (
            SELECT 1 FROM human h JOIN user_ u ON u.human = h.id
            WHERE h.organization = $1 AND h.email = $5 AND u.revoked_on IS NULL
        ) AS human_taken,
        {ACTIVE_USERS_LIMIT_REACHED} AS limit_reached,
        EXISTS (SELECT 1 FROM user_ WHERE organization = $1 AND user_id = $4) AS user_exists,
        EXISTS (SELECT 1 FROM device WHERE organization = $1 AND device_id = $8) AS device_exists
),
gate AS (
    SELECT 1 FROM checks WHERE NOT (human_taken OR limit_reached OR user_exists OR device_exists)
),
new_human AS (
    INSERT INTO human (organization, email, label) SELECT $1, $5, $6 FROM gate
    ON CONFLICT (organization, email) DO UPDATE SET label = EXCLUDED.label
    RETURNING id
),
new_user AS (
    INSERT INTO user_ (
        organization, user_id, human, initial_profile, current_profile, created_on, created_by
    )
    SELECT $1, $4, new_human.id, $7, $7, $2, $3 FROM new_human
    RETURNING id
),
new_device AS (
    INSERT INTO device (
        organization, user_, device_id, device_label, purpose, verify_key, created_on, created_by
    )
    SELECT $1, new_user.id, $8, $9, $10, $11, $2, $3 FROM new_user
    RETURNING id
),
certs AS (
    INSERT INTO certificate (
        organization, topic, certified_on, priority, kind, certificate, redacted_certificate
    )
    SELECT $1::bigint, 'common', $2::timestamptz, 0, 'user_certificate', $12::bytea, $13::bytea
    FROM new_device
    UNION ALL
    SELECT $1, 'common', $2, 1, 'device_certificate', $14::bytea, $15::bytea FROM new_device
),
topic AS (
    UPDATE topic_common SET last_timestamp = $2
    WHERE organization = $1 AND EXISTS (SELECT 1 FROM new_device)
),
notified AS (
    SELECT pg_notify($16, p) FROM unnest($17::text[]) AS p WHERE EXISTS (SELECT 1 FROM new_device)
)
SELECT checks.*, (SELECT COUNT(*) FROM notified) AS notified FROM checks
"""


async def create_user(
    conn: asyncpg.Connection, org_internal_id: int, u: NewUser, events: list[Event]
) -> CreateUserRefusal | None:
    """None when created, else the refusal status (in the protocol's check order)."""
    row = await conn.fetchrow(
        _Q_CREATE_USER,
        org_internal_id,
        u.timestamp,
        u.author_device_internal_id,
        u.user_id,
        u.email,
        u.label,
        u.profile,
        u.device_id,
        u.device_label,
        u.device_purpose,
        u.verify_key,
        u.user_certificate,
        u.redacted_user_certificate,
        u.device_certificate,
        u.redacted_device_certificate,
        NOTIFY_CHANNEL,
        event_payloads(events),
    )
    assert row is not None
    if row["human_taken"]:
        return "human_handle_already_taken"
    if row["limit_reached"]:
        return "active_users_limit_reached"
    if row["user_exists"] or row["device_exists"]:
        return "user_already_exists"
    return None


# --- device_create --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewDevice:
    timestamp: datetime.datetime
    author_device_internal_id: int
    user_internal_id: int
    device_id: uuid.UUID
    device_label: str | None
    device_purpose: str
    verify_key: bytes
    device_certificate: bytes
    redacted_device_certificate: bytes


_Q_CREATE_DEVICE = """
WITH new_device AS (
    INSERT INTO device (
        organization, user_, device_id, device_label, purpose, verify_key, created_on, created_by
    )
    SELECT $1, $3, $4, $5, $6, $7, $2, $8
    WHERE NOT EXISTS (SELECT 1 FROM device WHERE organization = $1 AND device_id = $4)
    RETURNING id
),
certs AS (
    INSERT INTO certificate (
        organization, topic, certified_on, priority, kind, certificate, redacted_certificate
    )
    SELECT $1, 'common', $2, 1, 'device_certificate', $9, $10 FROM new_device
),
topic AS (
    UPDATE topic_common SET last_timestamp = $2
    WHERE organization = $1 AND EXISTS (SELECT 1 FROM new_device)
),
notified AS (
    SELECT pg_notify($11, p) FROM unnest($12::text[]) AS p WHERE EXISTS (SELECT 1 FROM new_device)
)
SELECT EXISTS (SELECT 1 FROM new_device) AS created, (SELECT COUNT(*) FROM notified) AS notified
"""


async def create_device(
    conn: asyncpg.Connection, org_internal_id: int, d: NewDevice, events: list[Event]
) -> bool:
    """False if the device id is taken in the organization."""
    row = await conn.fetchrow(
        _Q_CREATE_DEVICE,
        org_internal_id,
        d.timestamp,
        d.user_internal_id,
        d.device_id,
        d.device_label,
        d.device_purpose,
        d.verify_key,
        d.author_device_internal_id,
        d.device_certificate,
        d.redacted_device_certificate,
        NOTIFY_CHANNEL,
        event_payloads(events),
    )
    assert row is not None
    return bool(row["created"])


# --- user_revoke ----------------------------------------------------------------------------------

# $1 org, $2 target user_id, $3 ts, $4 last common timestamp, $5 author device, $6 certificate,
# $7 channel, $8 payloads
_Q_REVOKE_USER = """
WITH target AS (
    SELECT id, revoked_on IS NOT NULL AS revoked FROM user_ WHERE organization = $1 AND user_id = $2
    FOR UPDATE
),
member_of AS (
    SELECT m.realm FROM realm_member m
    WHERE m.user_ = (SELECT id FROM target) AND m.role IS NOT NULL
),
realm_topics AS (
    SELECT t.last_timestamp FROM topic_realm t WHERE t.realm IN (SELECT realm FROM member_of)
    ORDER BY t.realm
    FOR SHARE
),
bounds AS (
    SELECT GREATEST(
        $4::timestamptz,
        (SELECT MAX(last_timestamp) FROM realm_topics),
        (SELECT MAX(r.last_vlob_timestamp) FROM realm r WHERE r.id IN (SELECT realm FROM member_of))
    ) AS strictly_greater_than
),
gate AS (
    SELECT target.id FROM target, bounds
    WHERE NOT target.revoked AND $3 > bounds.strictly_greater_than
),
revoked AS (
    UPDATE user_ SET revoked_on = $3, revoked_by = $5 WHERE id = (SELECT id FROM gate)
    RETURNING id
),
certs AS (
    INSERT INTO certificate (organization, topic, certified_on, priority, kind, certificate)
    SELECT $1, 'common', $3, 1, 'revoked_user_certificate', $6 FROM revoked
),
topic AS (
    UPDATE topic_common SET last_timestamp = $3
    WHERE organization = $1 AND EXISTS (SELECT 1 FROM revoked)
),
notified AS (
    SELECT pg_notify($7, p) FROM unnest($8::text[]) AS p WHERE EXISTS (SELECT 1 FROM revoked)
)
SELECT
    EXISTS (SELECT 1 FROM target) AS found,
    COALESCE((SELECT revoked FROM target), FALSE) AS already_revoked,
    (SELECT strictly_greater_than FROM bounds) AS strictly_greater_than,
    EXISTS (SELECT 1 FROM revoked) AS done,
    (SELECT COUNT(*) FROM notified) AS notified
"""


@dataclass(frozen=True, slots=True)
class RevokeOutcome:
    found: bool
    already_revoked: bool
    strictly_greater_than: datetime.datetime
    done: bool


async def revoke_user(
    conn: asyncpg.Connection,
    org_internal_id: int,
    user_id: uuid.UUID,
    timestamp: datetime.datetime,
    last_common: datetime.datetime,
    author_device_internal_id: int,
    certificate: bytes,
    events: list[Event],
) -> RevokeOutcome:
    """Revoke `user_id` unless it is unknown, already revoked, or `timestamp` is not after the
    common topic, the topics of the realms the user is a member of and the last vlob of those
    realms (protocol.md §4.2)."""
    row = await conn.fetchrow(
        _Q_REVOKE_USER,
        org_internal_id,
        user_id,
        timestamp,
        last_common,
        author_device_internal_id,
        certificate,
        NOTIFY_CHANNEL,
        event_payloads(events),
    )
    assert row is not None
    return RevokeOutcome(
        row["found"], row["already_revoked"], row["strictly_greater_than"], row["done"]
    )


# --- user_update ----------------------------------------------------------------------------------

# Why update_user wrote nothing, in the protocol's check order (each is the command's status).
UpdateUserRefusal = Literal[
    "user_not_found", "user_revoked", "user_no_changes", "require_greater_timestamp"
]

# $1 org, $2 target user_id, $3 new profile, $4 ts, $5 causality ok, $6 author device,
# $7 certificate, $8 channel, $9 payloads
_Q_UPDATE_USER = """
WITH target AS (
    SELECT id, revoked_on IS NOT NULL AS revoked, current_profile FROM user_
    WHERE organization = $1 AND user_id = $2
    FOR UPDATE
),
gate AS (
    SELECT id FROM target WHERE NOT revoked AND current_profile <> $3 AND $5
),
updated AS (
    UPDATE user_ SET current_profile = $3 WHERE id = (SELECT id FROM gate)
    RETURNING id
),
history AS (
    INSERT INTO user_profile_update (user_, profile, certified_on, certified_by)
    SELECT id, $3, $4, $6 FROM updated
),
certs AS (
    INSERT INTO certificate (organization, topic, certified_on, priority, kind, certificate)
    SELECT $1, 'common', $4, 1, 'user_update_certificate', $7 FROM updated
),
topic AS (
    UPDATE topic_common SET last_timestamp = $4
    WHERE organization = $1 AND EXISTS (SELECT 1 FROM updated)
),
notified AS (
    SELECT pg_notify($8, p) FROM unnest($9::text[]) AS p WHERE EXISTS (SELECT 1 FROM updated)
)
SELECT
    (SELECT revoked FROM target) AS revoked,
    (SELECT current_profile FROM target) AS current_profile,
    EXISTS (SELECT 1 FROM updated) AS done,
    (SELECT COUNT(*) FROM notified) AS notified
"""


async def update_user(
    conn: asyncpg.Connection,
    org_internal_id: int,
    user_id: uuid.UUID,
    new_profile: str,
    timestamp: datetime.datetime,
    causality_ok: bool,
    author_device_internal_id: int,
    certificate: bytes,
    events: list[Event],
) -> UpdateUserRefusal | None:
    """None when updated, else the refusal (user_not_found, user_revoked, user_no_changes,
    require_greater_timestamp when `causality_ok` is False), in the protocol's check order."""
    row = await conn.fetchrow(
        _Q_UPDATE_USER,
        org_internal_id,
        user_id,
        new_profile,
        timestamp,
        causality_ok,
        author_device_internal_id,
        certificate,
        NOTIFY_CHANNEL,
        event_payloads(events),
    )
    assert row is not None
    if row["done"]:
        return None
    if row["revoked"] is None:
        return "user_not_found"
    if row["revoked"]:
        return "user_revoked"
    if row["current_profile"] == new_profile:
        return "user_no_changes"
    return "require_greater_timestamp"


# --- frozen users, listings (administration) ------------------------------------------------------

_Q_LIST_FROZEN = """
SELECT
    (SELECT current_profile FROM user_ WHERE id = $2) AS author_profile,
    ARRAY(
        SELECT user_id FROM user_ WHERE organization = $1 AND frozen ORDER BY created_on, id
    ) AS frozen_users
"""


async def list_frozen(
    conn: asyncpg.Connection, org_internal_id: int, author_user_internal_id: int
) -> tuple[str | None, list[uuid.UUID]]:
    """(the author's current profile, the organization's frozen users)."""
    row = await conn.fetchrow(_Q_LIST_FROZEN, org_internal_id, author_user_internal_id)
    assert row is not None
    return row["author_profile"], list(row["frozen_users"])


_Q_LIST_ACTIVE = """
SELECT o.id AS org, u.user_id, h.email, h.label, u.frozen
FROM organization o
LEFT JOIN user_ u ON u.organization = o.id AND u.revoked_on IS NULL
LEFT JOIN human h ON h.id = u.human
WHERE o.organization_id = $1 AND o.root_verify_key IS NOT NULL
ORDER BY u.created_on, u.id
"""


async def list_active(
    conn: asyncpg.Connection, organization_id: str
) -> list[dict[str, Any]] | None:
    """Non-revoked users of a bootstrapped organization (None: unknown or not bootstrapped)."""
    rows = await conn.fetch(_Q_LIST_ACTIVE, organization_id)
    if not rows:
        return None
    return [
        {
            "user_id": r["user_id"].hex,
            "user_email": r["email"],
            "user_name": r["label"],
            "frozen": r["frozen"],
        }
        for r in rows
        if r["user_id"] is not None
    ]


# $1 organization_id, $2 user_id (or NULL), $3 email (or NULL), $4 frozen
_Q_FREEZE = """
WITH org AS (
    SELECT id FROM organization WHERE organization_id = $1 AND root_verify_key IS NOT NULL
),
target AS (
    SELECT u.id, u.user_id, u.revoked_on IS NOT NULL AS revoked, h.email, h.label
    FROM user_ u JOIN human h ON h.id = u.human
    WHERE u.organization = (SELECT id FROM org)
        AND (
            ($2::uuid IS NOT NULL AND u.user_id = $2)
            -- by email: the current (non-revoked) user with that email
            OR ($2::uuid IS NULL AND h.email = $3 AND u.revoked_on IS NULL)
        )
    FOR UPDATE OF u
),
updated AS (
    UPDATE user_ SET frozen = $4 WHERE id = (SELECT id FROM target WHERE NOT revoked)
    RETURNING id
)
SELECT
    EXISTS (SELECT 1 FROM org) AS org_found,
    (SELECT user_id FROM target) AS user_id,
    (SELECT revoked FROM target) AS revoked,
    (SELECT email FROM target) AS email,
    (SELECT label FROM target) AS label
"""


async def freeze(
    conn: asyncpg.Connection,
    organization_id: str,
    frozen: bool,
    *,
    user_id: uuid.UUID | None,
    email: str | None,
) -> dict[str, Any] | str:
    """Set a user's frozen flag: the user object, or the 404 detail (the caller publishes the
    event)."""
    row = await conn.fetchrow(_Q_FREEZE, organization_id, user_id, email, frozen)
    assert row is not None
    if not row["org_found"]:
        return "Organization not found"
    if row["user_id"] is None:
        return "User not found"
    if row["revoked"]:
        return "User has been revoked"
    return {
        "user_id": row["user_id"].hex,
        "user_email": row["email"],
        "user_name": row["label"],
        "frozen": frozen,
    }


__all__ = [
    "ACTIVE_USERS_LIMIT_REACHED",
    "CreateUserRefusal",
    "NewDevice",
    "NewUser",
    "RevokeOutcome",
    "UpdateUserRefusal",
    "create_device",
    "create_user",
    "freeze",
    "list_active",
    "list_frozen",
    "revoke_user",
    "update_user",
]
