"""CryptPad sessions (cryptpad_register_session, API 5.6; migration 0007_cryptpad_sessions).

One statement per call: it reads the facts the handler needs to pick a refusal (commands/cryptpad.py,
in the official order) and, only when every rule holds (`_OK`, the same rules in SQL), registers the
candidate session of (realm, document) or keeps the one there:

* no session yet: the candidate is stored;
* a session without edit key (opened by a reader) and a candidate with one (the author can write):
  the candidate replaces it;
* otherwise the stored session stays and is returned.

The statement's snapshot gives facts that belong together (role, key index, certificate topics). Two
first registrations of one document racing: the second one's INSERT meets the first one's row, which
its snapshot does not show: nothing is returned and the caller runs the statement again.
"""

from __future__ import annotations

import datetime
import uuid
from typing import NamedTuple

import asyncpg

__all__ = ["INT4_MAX", "Registration", "Session", "SessionFacts", "register"]

INT4_MAX = 2**31 - 1

# $1 organization, $2 author user, $3 author device, $4 realm_id, $5 document_id, $6 key_index
# (-1: beyond INTEGER, matches no realm), $7 timestamp, $8 candidate view key, $9 candidate edit key
# (NULL: none), $10 timestamp in the ballpark
_Q_REGISTER = """
WITH facts AS MATERIALIZED (
    SELECT
        o.is_expired,
        COALESCE((SELECT u.revoked_on IS NOT NULL FROM user_ u WHERE u.id = $2), TRUE) AS revoked,
        r.id AS realm,
        r.status,
        r.key_index,
        (SELECT m.role FROM realm_member m WHERE m.realm = r.id AND m.user_ = $2) AS role,
        (SELECT tc.last_timestamp FROM topic_common tc WHERE tc.organization = o.id) AS common_ts,
        (SELECT tr.last_timestamp FROM topic_realm tr WHERE tr.realm = r.id) AS realm_ts
    FROM organization o
    LEFT JOIN realm r ON r.organization = o.id AND r.realm_id = $4
    WHERE o.id = $1
),
ok AS (
    SELECT realm FROM facts
    WHERE NOT is_expired AND NOT revoked
        AND realm IS NOT NULL AND status <> 'DELETED' AND role IS NOT NULL
        AND (role = 'READER') = ($9::BYTEA IS NULL)
        AND key_index = $6::INTEGER AND $10::BOOLEAN
),
existing AS (
    SELECT s.key_index, s.author, s.created_on, s.encrypted_view_key, s.encrypted_edit_key
    FROM cryptpad_session s
    WHERE s.realm = (SELECT realm FROM ok) AND s.document_id = $5
),
upsert AS (
    INSERT INTO cryptpad_session AS s (
        realm, document_id, key_index, author, created_on, encrypted_view_key, encrypted_edit_key
    )
    SELECT realm, $5, $6::INTEGER, $3, $7, $8, $9::BYTEA FROM ok
    ON CONFLICT (realm, document_id) DO UPDATE SET
        key_index = excluded.key_index,
        author = excluded.author,
        created_on = excluded.created_on,
        encrypted_view_key = excluded.encrypted_view_key,
        encrypted_edit_key = excluded.encrypted_edit_key
    WHERE excluded.encrypted_edit_key IS NOT NULL AND s.encrypted_edit_key IS NULL
    RETURNING s.key_index, s.author, s.created_on, s.encrypted_view_key, s.encrypted_edit_key
),
session AS (
    SELECT * FROM upsert
    UNION ALL
    SELECT * FROM existing WHERE NOT EXISTS (SELECT 1 FROM upsert)
)
SELECT
    f.is_expired, f.revoked, f.realm IS NOT NULL AS realm_found, f.status, f.role, f.key_index,
    f.common_ts, f.realm_ts,
    EXISTS (SELECT 1 FROM ok) AS accepted,
    se.key_index AS session_key_index,
    d.device_id AS session_author,
    se.created_on AS session_created_on,
    se.encrypted_view_key AS session_view_key,
    se.encrypted_edit_key AS session_edit_key
FROM facts f
LEFT JOIN session se ON TRUE
LEFT JOIN device d ON d.id = se.author
"""


class SessionFacts(NamedTuple):
    """What the statement read (its snapshot): the refusal rules' input."""

    is_expired: bool
    revoked: bool
    realm_found: bool
    status: str | None  # AVAILABLE | ARCHIVED | DELETION_PLANNED | DELETED
    role: str | None  # the author's current role (None: not a member)
    key_index: int | None  # the realm's current key index
    common_ts: datetime.datetime
    realm_ts: datetime.datetime | None


class Session(NamedTuple):
    """The session of the document, as stored (edit key None: opened by a reader)."""

    author: uuid.UUID
    timestamp: datetime.datetime
    key_index: int
    encrypted_view_key: bytes
    encrypted_edit_key: bytes | None


class Registration(NamedTuple):
    facts: SessionFacts
    accepted: bool  # every rule held (`session` None then: a concurrent first registration, retry)
    session: Session | None


async def register(
    conn: asyncpg.Connection,
    *,
    org_internal_id: int,
    user_internal_id: int,
    device_internal_id: int,
    realm_id: uuid.UUID,
    document_id: uuid.UUID,
    key_index: int,
    timestamp: datetime.datetime,
    encrypted_view_key: bytes,
    encrypted_edit_key: bytes | None,
    in_ballpark: bool,
) -> Registration | None:
    """None: no such organization."""
    row = await conn.fetchrow(
        _Q_REGISTER,
        org_internal_id,
        user_internal_id,
        device_internal_id,
        realm_id,
        document_id,
        key_index if key_index <= INT4_MAX else -1,
        timestamp,
        encrypted_view_key,
        encrypted_edit_key,
        in_ballpark,
    )
    if row is None:
        return None
    facts = SessionFacts(
        is_expired=row["is_expired"],
        revoked=row["revoked"],
        realm_found=row["realm_found"],
        status=row["status"],
        role=row["role"],
        key_index=row["key_index"],
        common_ts=row["common_ts"],
        realm_ts=row["realm_ts"],
    )
    session = None
    if row["session_key_index"] is not None:
        session = Session(
            author=row["session_author"],
            timestamp=row["session_created_on"],
            key_index=row["session_key_index"],
            encrypted_view_key=row["session_view_key"],
            encrypted_edit_key=row["session_edit_key"],
        )
    return Registration(facts=facts, accepted=row["accepted"], session=session)
