"""Realms: creation, roles (share, unshare, self-promotion), name, archiving, key rotation, keys
bundles.

A realm certificate command runs in one transaction (commands/realm.py), protocol.md §4.2:
1. `topics.lock_common(write=False)`: common topic FOR SHARE (and the author re-read);
2. `lock(...)`: the realm topic FOR UPDATE;
3. `state(...)`: what the checks need, read AFTER the locks (a new statement: a new snapshot), so it
   is consistent with the topics just locked (every change of a realm's roles, key index or
   archiving holds its topic FOR UPDATE until commit);
4. one write statement: the certificate's rows, the realm topic bump, the certificate itself in
   `certificate`, and the REALM_CERTIFICATE event (NOTIFY, delivered on commit).
Nothing is written when a check fails.

`realm_create` locks no realm topic (there is none yet): the INSERT ... ON CONFLICT DO NOTHING on
(organization, realm_id) makes a concurrent creation of the same realm wait, then find it.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass

import asyncpg

from parsec_server.storage.topics import NOTIFY_CHANNEL

__all__ = [
    "INT4_MAX",
    "RealmCertificate",
    "RealmState",
    "create",
    "get_keys_bundle",
    "last_timestamp",
    "lock",
    "rename",
    "rotate_key",
    "set_role",
    "state",
    "update_archiving",
]

INT4_MAX = 2**31 - 1
ROLE_PRIORITY = {"READER": 1, "CONTRIBUTOR": 2, "MANAGER": 3, "OWNER": 4}


# --- realm_create ---------------------------------------------------------------------------------

# $1 org, $2 realm_id, $3 timestamp, $4 author device, $5 author user, $6 certificate, $7 channel,
# $8 event
_Q_CREATE = """
WITH new_realm AS (
    INSERT INTO realm (organization, realm_id, created_on, created_by)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (organization, realm_id) DO NOTHING
    RETURNING id
),
new_topic AS (
    INSERT INTO topic_realm (realm, last_timestamp) SELECT id, $3 FROM new_realm
),
new_role AS (
    INSERT INTO realm_user_role (realm, user_, role, certified_on, certified_by)
    SELECT id, $5, 'OWNER', $3, $4 FROM new_realm
),
new_member AS (
    INSERT INTO realm_member (realm, user_, role, role_certified_on)
    SELECT id, $5, 'OWNER', $3 FROM new_realm
),
new_certificate AS (
    INSERT INTO certificate (organization, topic, realm, certified_on, kind, certificate)
    SELECT $1, 'realm', id, $3, 'realm_role_certificate', $6 FROM new_realm
)
SELECT id, pg_notify($7, $8) IS NULL AS notified FROM new_realm
"""

_Q_LAST_TIMESTAMP = """
SELECT t.last_timestamp FROM realm r JOIN topic_realm t ON t.realm = r.id
WHERE r.organization = $1 AND r.realm_id = $2
"""


async def create(
    conn: asyncpg.Connection,
    org_internal_id: int,
    realm_id: uuid.UUID,
    timestamp: datetime.datetime,
    device_internal_id: int,
    user_internal_id: int,
    certificate: bytes,
    event: str,
) -> bool:
    """Create the realm with its owner; False if it already exists (nothing written)."""
    row = await conn.fetchrow(
        _Q_CREATE,
        org_internal_id,
        realm_id,
        timestamp,
        device_internal_id,
        user_internal_id,
        certificate,
        NOTIFY_CHANNEL,
        event,
    )
    return row is not None


async def last_timestamp(
    conn: asyncpg.Connection, org_internal_id: int, realm_id: uuid.UUID
) -> datetime.datetime | None:
    """The realm topic timestamp (its last certificate), None if no such realm."""
    ts: datetime.datetime | None = await conn.fetchval(_Q_LAST_TIMESTAMP, org_internal_id, realm_id)
    return ts


# --- locking and state ----------------------------------------------------------------------------

_Q_LOCK = """
SELECT r.id FROM realm r JOIN topic_realm t ON t.realm = r.id
WHERE r.organization = $1 AND r.realm_id = $2
FOR UPDATE OF t
"""


async def lock(conn: asyncpg.Connection, org_internal_id: int, realm_id: uuid.UUID) -> int | None:
    """Lock the realm topic FOR UPDATE; the realm's internal id, None if no such realm."""
    realm: int | None = await conn.fetchval(_Q_LOCK, org_internal_id, realm_id)
    return realm


@dataclass(frozen=True, slots=True)
class RealmState:
    """A realm as seen under its topic lock, with what one command needs about other users."""

    internal_id: int
    last_timestamp: datetime.datetime  # realm topic
    key_index: int  # 0: never rotated
    status: str  # AVAILABLE | ARCHIVED | DELETION_PLANNED | DELETED
    last_vlob_timestamp: datetime.datetime | None
    author_role: str | None
    # realm_share / realm_unshare: the recipient (None: no such user in the organization)
    recipient: int | None = None
    recipient_revoked: bool = False
    recipient_profile: str | None = None
    recipient_role: str | None = None
    keys_bundle: int | None = None  # the current keys bundle (None: never rotated)
    # realm_self_promote_to_owner, over the members who are not revoked
    has_active_owner: bool = False
    max_active_priority: int = 0
    # realm_rename
    has_name: bool = False
    # realm_update_archiving
    minimum_archiving_period: int = 0


# $1 realm, $2 author user, $3 recipient user_id (or NULL), $4 org
_Q_STATE = """
SELECT
    t.last_timestamp,
    r.key_index,
    r.status,
    r.last_vlob_timestamp,
    (SELECT m.role FROM realm_member m WHERE m.realm = r.id AND m.user_ = $2) AS author_role,
    ru.id AS recipient,
    ru.revoked_on IS NOT NULL AS recipient_revoked,
    ru.current_profile AS recipient_profile,
    (SELECT m.role FROM realm_member m WHERE m.realm = r.id AND m.user_ = ru.id) AS recipient_role,
    (SELECT kb.id FROM realm_keys_bundle kb WHERE kb.realm = r.id AND kb.key_index = r.key_index)
        AS keys_bundle,
    EXISTS (
        SELECT 1 FROM realm_member m JOIN user_ u ON u.id = m.user_
        WHERE m.realm = r.id AND m.role = 'OWNER' AND u.revoked_on IS NULL
    ) AS has_active_owner,
    (
        SELECT max(
            CASE m.role
                WHEN 'READER' THEN 1 WHEN 'CONTRIBUTOR' THEN 2 WHEN 'MANAGER' THEN 3 ELSE 4
            END
        )
        FROM realm_member m JOIN user_ u ON u.id = m.user_
        WHERE m.realm = r.id AND m.role IS NOT NULL AND u.revoked_on IS NULL
    ) AS max_active_priority,
    EXISTS (SELECT 1 FROM realm_name n WHERE n.realm = r.id) AS has_name,
    o.realm_minimum_archiving_period_before_deletion AS minimum_archiving_period
FROM realm r
JOIN topic_realm t ON t.realm = r.id
JOIN organization o ON o.id = r.organization
LEFT JOIN user_ ru ON ru.organization = $4 AND ru.user_id = $3
WHERE r.id = $1
"""


async def state(
    conn: asyncpg.Connection,
    org_internal_id: int,
    realm_internal_id: int,
    author_user_internal_id: int,
    recipient_user_id: uuid.UUID | None = None,
) -> RealmState:
    """The realm (locked by `lock` in this transaction) and, optionally, a recipient user."""
    row = await conn.fetchrow(
        _Q_STATE, realm_internal_id, author_user_internal_id, recipient_user_id, org_internal_id
    )
    assert row is not None
    return RealmState(
        internal_id=realm_internal_id,
        last_timestamp=row["last_timestamp"],
        key_index=row["key_index"],
        status=row["status"],
        last_vlob_timestamp=row["last_vlob_timestamp"],
        author_role=row["author_role"],
        recipient=row["recipient"],
        recipient_revoked=bool(row["recipient_revoked"]),
        recipient_profile=row["recipient_profile"],
        recipient_role=row["recipient_role"],
        keys_bundle=row["keys_bundle"],
        has_active_owner=row["has_active_owner"],
        max_active_priority=row["max_active_priority"] or 0,
        has_name=row["has_name"],
        minimum_archiving_period=row["minimum_archiving_period"],
    )


# --- writes ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RealmCertificate:
    """What every realm certificate write stores besides its own rows: the certificate itself (in
    `certificate`), the realm topic bump to its timestamp and the REALM_CERTIFICATE event."""

    org_internal_id: int
    realm_internal_id: int
    timestamp: datetime.datetime
    author_device_internal_id: int
    certificate: bytes
    event: str


def _certificate_write(kind: str, own_rows: str) -> str:
    """One realm certificate write: the command's own rows (CTEs, their parameters from $8), then
    what every one of them does. $1 realm, $2 timestamp, $3 author device, $4 org, $5 certificate,
    $6 channel, $7 event (`_write` passes them)."""
    return f"""
WITH {own_rows},
topic AS (
    UPDATE topic_realm SET last_timestamp = $2 WHERE realm = $1
),
new_certificate AS (
    INSERT INTO certificate (organization, topic, realm, certified_on, kind, certificate)
    VALUES ($4, 'realm', $1, $2, '{kind}', $5)
)
SELECT pg_notify($6, $7)
"""


async def _write(
    conn: asyncpg.Connection, query: str, c: RealmCertificate, *own_args: object
) -> None:
    await conn.execute(
        query,
        c.realm_internal_id,
        c.timestamp,
        c.author_device_internal_id,
        c.org_internal_id,
        c.certificate,
        NOTIFY_CHANNEL,
        c.event,
        *own_args,
    )


# $8 user, $9 role (NULL: unshare), $10 keys bundle (NULL: no access), $11 keys bundle access
_Q_SET_ROLE = _certificate_write(
    "realm_role_certificate",
    """new_role AS (
    INSERT INTO realm_user_role (realm, user_, role, certified_on, certified_by)
    VALUES ($1, $8, $9, $2, $3)
    RETURNING id
),
member AS (
    INSERT INTO realm_member (realm, user_, role, role_certified_on)
    VALUES ($1, $8, $9, $2)
    ON CONFLICT (realm, user_) DO UPDATE
    SET role = EXCLUDED.role, role_certified_on = EXCLUDED.role_certified_on
),
access AS (
    INSERT INTO realm_keys_bundle_access (realm_keys_bundle, user_, access, from_sharing)
    SELECT $10, $8, $11, new_role.id FROM new_role WHERE $10::bigint IS NOT NULL
)""",
)


async def set_role(
    conn: asyncpg.Connection,
    c: RealmCertificate,
    *,
    user_internal_id: int,
    role: str | None,
    keys_bundle: int | None = None,
    keys_bundle_access: bytes | None = None,
) -> None:
    """A role certificate (share, unshare, self-promotion); with a keys bundle access for a
    sharing."""
    await _write(conn, _Q_SET_ROLE, c, user_internal_id, role, keys_bundle, keys_bundle_access)


# $8 key index
_Q_RENAME = _certificate_write(
    "realm_name_certificate",
    """new_name AS (
    INSERT INTO realm_name (realm, key_index, certified_on, certified_by) VALUES ($1, $8, $2, $3)
)""",
)


async def rename(conn: asyncpg.Connection, c: RealmCertificate, *, key_index: int) -> None:
    await _write(conn, _Q_RENAME, c, key_index)


# $8 configuration, $9 deletion date
_Q_UPDATE_ARCHIVING = _certificate_write(
    "realm_archiving_certificate",
    """new_archiving AS (
    INSERT INTO realm_archiving (realm, configuration, deletion_date, certified_on, certified_by)
    VALUES ($1, $8, $9, $2, $3)
),
realm_status AS (
    UPDATE realm SET status = $8, deletion_date = $9 WHERE id = $1
)""",
)


async def update_archiving(
    conn: asyncpg.Connection,
    c: RealmCertificate,
    *,
    configuration: str,
    deletion_date: datetime.datetime | None,
) -> None:
    """AVAILABLE, ARCHIVED or DELETION_PLANNED (the realm status follows the configuration)."""
    await _write(conn, _Q_UPDATE_ARCHIVING, c, configuration, deletion_date)


_Q_PARTICIPANTS = """
SELECT u.user_id, u.id FROM realm_member m JOIN user_ u ON u.id = m.user_
WHERE m.realm = $1 AND m.role IS NOT NULL
"""


async def participants(conn: asyncpg.Connection, realm_internal_id: int) -> dict[uuid.UUID, int]:
    """Users whose current role is not None (revoked ones included): user_id -> internal id."""
    return {
        row["user_id"]: row["id"] for row in await conn.fetch(_Q_PARTICIPANTS, realm_internal_id)
    }


_Q_SEQUESTER_SERVICES = """
SELECT service_id, id FROM sequester_service WHERE organization = $1 AND revoked_on IS NULL
"""


async def active_sequester_services(
    conn: asyncpg.Connection, org_internal_id: int
) -> dict[uuid.UUID, int]:
    """Non-revoked sequester services: service_id -> internal id."""
    return {
        row["service_id"]: row["id"]
        for row in await conn.fetch(_Q_SEQUESTER_SERVICES, org_internal_id)
    }


# $8 key index, $9 key canary, $10 keys bundle, $11 user internal ids, $12 their accesses,
# $13 sequester service internal ids, $14 their accesses
_Q_ROTATE_KEY = _certificate_write(
    "realm_key_rotation_certificate",
    """new_bundle AS (
    INSERT INTO realm_keys_bundle (
        realm, key_index, certified_on, certified_by, key_canary, keys_bundle
    )
    VALUES ($1, $8, $2, $3, $9, $10)
    RETURNING id
),
realm_key AS (
    UPDATE realm SET key_index = $8 WHERE id = $1
),
accesses AS (
    INSERT INTO realm_keys_bundle_access (realm_keys_bundle, user_, access)
    SELECT new_bundle.id, a.user_, a.access
    FROM new_bundle, unnest($11::bigint[], $12::bytea[]) AS a(user_, access)
),
sequester_accesses AS (
    INSERT INTO realm_sequester_keys_bundle_access (realm_keys_bundle, sequester_service, access)
    SELECT new_bundle.id, a.service, a.access
    FROM new_bundle, unnest($13::bigint[], $14::bytea[]) AS a(service, access)
)""",
)


async def rotate_key(
    conn: asyncpg.Connection,
    c: RealmCertificate,
    *,
    key_index: int,
    key_canary: bytes,
    keys_bundle: bytes,
    accesses: dict[int, bytes],
    sequester_accesses: dict[int, bytes],
) -> None:
    """A new keys bundle (the realm's key index becomes `key_index`) with each participant's
    access."""
    await _write(
        conn,
        _Q_ROTATE_KEY,
        c,
        key_index,
        key_canary,
        keys_bundle,
        list(accesses),
        list(accesses.values()),
        list(sequester_accesses),
        list(sequester_accesses.values()),
    )


# --- realm_get_keys_bundle ------------------------------------------------------------------------

# $1 org, $2 realm_id, $3 user, $4 key index. The sharing of an access is a subquery by primary key:
# as a join, the generic plan hashed every realm_user_role row of the server (issue 17).
_Q_GET_KEYS_BUNDLE = """
SELECT r.id AS realm, r.status, m.user_ IS NOT NULL AS member, m.role, kb.id AS keys_bundle_id,
    kb.keys_bundle, access.access
FROM (SELECT 1) AS one
LEFT JOIN realm r ON r.organization = $1 AND r.realm_id = $2
LEFT JOIN realm_member m ON m.realm = r.id AND m.user_ = $3
LEFT JOIN realm_keys_bundle kb ON kb.realm = r.id AND kb.key_index = $4
LEFT JOIN LATERAL (
    SELECT a.access
    FROM realm_keys_bundle_access a
    WHERE a.realm_keys_bundle = kb.id AND a.user_ = $3
    ORDER BY COALESCE(
        (SELECT s.certified_on FROM realm_user_role s WHERE s.id = a.from_sharing), kb.certified_on
    ) DESC, a.id DESC
    LIMIT 1
) access ON TRUE
"""


async def get_keys_bundle(
    conn: asyncpg.Connection,
    org_internal_id: int,
    user_internal_id: int,
    realm_id: uuid.UUID,
    key_index: int,
) -> asyncpg.Record:
    """realm (None: no such realm), status, member (ever had a role), role, keys_bundle_id (None:
    no such key index), keys_bundle, access (the user's newest access to that bundle, None:
    none)."""
    row: asyncpg.Record = await conn.fetchrow(
        _Q_GET_KEYS_BUNDLE,
        org_internal_id,
        realm_id,
        user_internal_id,
        key_index if key_index <= INT4_MAX else -1,
    )
    return row
