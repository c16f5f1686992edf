"""Operator queries behind the CLI (`list_deletable_realms`, `delete_realm`, `export_realm`,
`human_accesses`, `organization list/delete`, `user list`): reads and deletions an operator runs by
hand, never on the request path.

A realm is *deletable* (as the official server decides) when its deletion date has passed
(`DELETION_PLANNED`, `deletion_date <= now`) or when it is *orphaned*: it has members with a role and
every one of them is revoked. Deleting a realm removes its vlobs, blocks (metadata here, data through
the blockstore by the caller), keys-bundle accesses and bundle contents, and marks it `DELETED`; its
certificates stay (they are part of the organization's history).
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True, slots=True)
class OrgRow:
    internal_id: int
    organization_id: str
    bootstrapped: bool
    root_verify_key: bytes | None
    is_expired: bool
    expired_on: datetime.datetime | None
    created_on: datetime.datetime


@dataclass(frozen=True, slots=True)
class RealmRow:
    internal_id: int
    realm_id: uuid.UUID
    status: str
    deletion_date: datetime.datetime | None
    deleted_on: datetime.datetime | None


@dataclass(frozen=True, slots=True)
class DeletionCandidate:
    realm_id: uuid.UUID
    kind: str  # "deletion_planned" | "orphaned"
    since: datetime.datetime  # the deletion date, or when the last member was revoked


_ORG = """
SELECT id, organization_id, root_verify_key, is_expired, expired_on, created_on
FROM organization WHERE organization_id = $1
"""


def _org(row: asyncpg.Record) -> OrgRow:
    return OrgRow(
        internal_id=row["id"],
        organization_id=row["organization_id"],
        bootstrapped=row["root_verify_key"] is not None,
        root_verify_key=row["root_verify_key"],
        is_expired=row["is_expired"],
        expired_on=row["expired_on"],
        created_on=row["created_on"],
    )


async def organization(conn: asyncpg.Connection, organization_id: str) -> OrgRow | None:
    row = await conn.fetchrow(_ORG, organization_id)
    return None if row is None else _org(row)


_LIST_ORGS = """
SELECT o.id, o.organization_id, o.root_verify_key, o.is_expired, o.expired_on, o.created_on,
    (SELECT count(*) FROM user_ u WHERE u.organization = o.id AND u.revoked_on IS NULL)
        AS active_users,
    (SELECT count(*) FROM realm r WHERE r.organization = o.id) AS realms
FROM organization o
ORDER BY o.organization_id
"""


async def list_organizations(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(_LIST_ORGS)
    return [
        {
            "organization_id": r["organization_id"],
            "created_on": r["created_on"],
            "is_bootstrapped": r["root_verify_key"] is not None,
            "is_expired": r["is_expired"],
            "expired_on": r["expired_on"],
            "active_users": r["active_users"],
            "realms": r["realms"],
        }
        for r in rows
    ]


_EXPIRED_BEFORE = """
SELECT organization_id FROM organization
WHERE is_expired AND expired_on IS NOT NULL AND expired_on <= $1
ORDER BY organization_id
"""


async def expired_organizations(
    conn: asyncpg.Connection, expired_before: datetime.datetime
) -> list[str]:
    """Organizations expired at `expired_before` or earlier (an expiry without a date: never)."""
    return [r["organization_id"] for r in await conn.fetch(_EXPIRED_BEFORE, expired_before)]


_ORG_BLOCKS = (
    "SELECT b.block_id FROM block b JOIN realm r ON r.id = b.realm WHERE r.organization = $1"
)


async def organization_block_ids(conn: asyncpg.Connection, org_internal_id: int) -> list[uuid.UUID]:
    return [r["block_id"] for r in await conn.fetch(_ORG_BLOCKS, org_internal_id)]


_ORG_COUNTS = """
SELECT
    (SELECT count(*) FROM user_ WHERE organization = $1) AS users,
    (SELECT count(*) FROM device WHERE organization = $1) AS devices,
    (SELECT count(*) FROM realm WHERE organization = $1) AS realms,
    (SELECT count(*) FROM vlob_atom v JOIN realm r ON r.id = v.realm WHERE r.organization = $1)
        AS vlobs,
    (SELECT count(*) FROM block b JOIN realm r ON r.id = b.realm WHERE r.organization = $1)
        AS blocks
"""


async def organization_counts(conn: asyncpg.Connection, org_internal_id: int) -> dict[str, int]:
    row = await conn.fetchrow(_ORG_COUNTS, org_internal_id)
    assert row is not None
    return {k: int(row[k]) for k in ("users", "devices", "realms", "vlobs", "blocks")}


# One statement: the NO ACTION foreign keys between the organization's rows (users and devices point
# at each other) are checked at its end, when every row is gone. Left to the ON DELETE CASCADE of
# `organization`, the order in which PostgreSQL runs the cascades makes some checks fail.
_DELETE_ORGANIZATION = """
WITH
r AS (SELECT id FROM realm WHERE organization = $1),
kb AS (SELECT id FROM realm_keys_bundle WHERE realm IN (SELECT id FROM r)),
inv AS (SELECT id FROM invitation WHERE organization = $1),
gs AS (SELECT id FROM greeting_session WHERE invitation IN (SELECT id FROM inv)),
ga AS (SELECT id FROM greeting_attempt WHERE session IN (SELECT id FROM gs)),
u AS (SELECT id FROM user_ WHERE organization = $1),
d01 AS (DELETE FROM block WHERE realm IN (SELECT id FROM r)),
d02 AS (DELETE FROM vlob_atom WHERE realm IN (SELECT id FROM r)),
d03 AS (DELETE FROM realm_vlob_update WHERE realm IN (SELECT id FROM r)),
d04 AS (DELETE FROM realm_sequester_keys_bundle_access WHERE realm_keys_bundle IN (SELECT id FROM kb)),
d05 AS (DELETE FROM realm_keys_bundle_access WHERE realm_keys_bundle IN (SELECT id FROM kb)),
d06 AS (DELETE FROM realm_keys_bundle WHERE realm IN (SELECT id FROM r)),
d07 AS (DELETE FROM realm_member WHERE realm IN (SELECT id FROM r)),
d08 AS (DELETE FROM realm_user_role WHERE realm IN (SELECT id FROM r)),
d09 AS (DELETE FROM realm_name WHERE realm IN (SELECT id FROM r)),
d10 AS (DELETE FROM realm_archiving WHERE realm IN (SELECT id FROM r)),
d11 AS (DELETE FROM topic_realm WHERE realm IN (SELECT id FROM r)),
d12 AS (DELETE FROM certificate WHERE organization = $1),
d13 AS (DELETE FROM greeting_step WHERE attempt IN (SELECT id FROM ga)),
d14 AS (DELETE FROM greeting_attempt WHERE id IN (SELECT id FROM ga)),
d15 AS (DELETE FROM greeting_session WHERE id IN (SELECT id FROM gs)),
d16 AS (DELETE FROM invitation WHERE id IN (SELECT id FROM inv)),
d17 AS (
    DELETE FROM shamir_recovery_share
    WHERE setup IN (SELECT id FROM shamir_recovery_setup WHERE organization = $1)
),
d18 AS (DELETE FROM shamir_recovery_setup WHERE organization = $1),
d19 AS (DELETE FROM sequester_service WHERE organization = $1),
d20 AS (DELETE FROM user_profile_update WHERE user_ IN (SELECT id FROM u)),
d21 AS (DELETE FROM device WHERE organization = $1),
d22 AS (DELETE FROM user_ WHERE id IN (SELECT id FROM u)),
d23 AS (DELETE FROM human WHERE organization = $1),
d24 AS (DELETE FROM realm WHERE id IN (SELECT id FROM r)),
d25 AS (DELETE FROM topic_common WHERE organization = $1),
d26 AS (DELETE FROM topic_sequester WHERE organization = $1),
d27 AS (DELETE FROM topic_shamir_recovery WHERE organization = $1),
d28 AS (DELETE FROM realm_block_usage WHERE realm IN (SELECT id FROM r))
DELETE FROM organization WHERE id = $1
"""


async def delete_organization(conn: asyncpg.Connection, org_internal_id: int) -> None:
    """Remove the organization and every row that belongs to it (in the caller's transaction).

    The data of blocks kept in PostgreSQL (`block_data`, keyed by organization id) is the
    blockstore's: the caller deletes it through the blockstore."""
    await conn.execute(_DELETE_ORGANIZATION, org_internal_id)


# --- realms -----------------------------------------------------------------------------------------

_REALM = """
SELECT id, realm_id, status, deletion_date, deleted_on FROM realm
WHERE organization = $1 AND realm_id = $2
"""


async def realm(
    conn: asyncpg.Connection, org_internal_id: int, realm_id: uuid.UUID
) -> RealmRow | None:
    row = await conn.fetchrow(_REALM, org_internal_id, realm_id)
    if row is None:
        return None
    return RealmRow(
        internal_id=row["id"],
        realm_id=row["realm_id"],
        status=row["status"],
        deletion_date=row["deletion_date"],
        deleted_on=row["deleted_on"],
    )


_PLANNED = """
SELECT realm_id, deletion_date FROM realm
WHERE organization = $1 AND status = 'DELETION_PLANNED' AND deletion_date <= $2
ORDER BY deletion_date, realm_id
"""

_ORPHANED = """
SELECT r.realm_id, max(u.revoked_on) AS orphaned_since
FROM realm r
JOIN realm_member m ON m.realm = r.id AND m.role IS NOT NULL
JOIN user_ u ON u.id = m.user_
WHERE r.organization = $1 AND r.status <> 'DELETED'
GROUP BY r.id, r.realm_id
HAVING bool_and(u.revoked_on IS NOT NULL AND u.revoked_on <= $2)
ORDER BY orphaned_since, r.realm_id
"""


async def deletion_candidates(
    conn: asyncpg.Connection, org_internal_id: int, now: datetime.datetime
) -> list[DeletionCandidate]:
    """Realms `delete_realm` accepts now: deletion date passed, or orphaned (each realm once; a
    realm both planned and orphaned is listed as planned)."""
    out = [
        DeletionCandidate(r["realm_id"], "deletion_planned", r["deletion_date"])
        for r in await conn.fetch(_PLANNED, org_internal_id, now)
    ]
    planned = {c.realm_id for c in out}
    out += [
        DeletionCandidate(r["realm_id"], "orphaned", r["orphaned_since"])
        for r in await conn.fetch(_ORPHANED, org_internal_id, now)
        if r["realm_id"] not in planned
    ]
    return out


async def realm_block_ids(conn: asyncpg.Connection, realm_internal_id: int) -> list[uuid.UUID]:
    rows = await conn.fetch(
        "SELECT block_id FROM block WHERE realm = $1 ORDER BY id", realm_internal_id
    )
    return [r["block_id"] for r in rows]


_DELETE_REALM = """
WITH
updates AS (DELETE FROM realm_vlob_update WHERE realm = $1),
vlobs AS (DELETE FROM vlob_atom WHERE realm = $1),
seq_access AS (
    DELETE FROM realm_sequester_keys_bundle_access
    WHERE realm_keys_bundle IN (SELECT id FROM realm_keys_bundle WHERE realm = $1)
),
access AS (
    DELETE FROM realm_keys_bundle_access
    WHERE realm_keys_bundle IN (SELECT id FROM realm_keys_bundle WHERE realm = $1)
),
bundles AS (UPDATE realm_keys_bundle SET keys_bundle = NULL WHERE realm = $1),
sessions AS (DELETE FROM cryptpad_session WHERE realm = $1),
usage AS (DELETE FROM realm_block_usage WHERE realm = $1)
UPDATE realm SET status = 'DELETED', deleted_on = $2, vlob_bytes = 0 WHERE id = $1
"""


async def delete_realm_metadata(
    conn: asyncpg.Connection, realm_internal_id: int, now: datetime.datetime
) -> None:
    """Vlobs, keys-bundle accesses and contents, CryptPad sessions removed; the realm marked DELETED
    (in the caller's transaction). Certificates, names and the archiving history stay. The `block`
    rows stay until the caller has deleted their data from the blockstore (`delete_block_rows`): a
    deletion the blockstore interrupted is finished from them (a DELETED realm's blocks are never
    served)."""
    await conn.execute(_DELETE_REALM, realm_internal_id, now)


async def delete_block_rows(
    conn: asyncpg.Connection, realm_internal_id: int, block_ids: list[uuid.UUID]
) -> None:
    await conn.execute(
        "DELETE FROM block WHERE realm = $1 AND block_id = ANY($2::uuid[])",
        realm_internal_id,
        block_ids,
    )


_REALM_COUNTS = """
SELECT
    (SELECT count(*) FROM vlob_atom WHERE realm = $1) AS vlobs,
    (SELECT count(*) FROM block WHERE realm = $1) AS blocks,
    (SELECT coalesce(sum(size), 0) FROM block WHERE realm = $1) AS block_bytes
"""


async def realm_counts(conn: asyncpg.Connection, realm_internal_id: int) -> dict[str, int]:
    row = await conn.fetchrow(_REALM_COUNTS, realm_internal_id)
    assert row is not None
    return {k: int(row[k]) for k in ("vlobs", "blocks", "block_bytes")}


# --- export -----------------------------------------------------------------------------------------

_CERTIFICATES = """
SELECT certificate FROM certificate
WHERE organization = $1 AND topic = $2 AND (realm = $3 OR $3::bigint IS NULL) AND certified_on <= $4
ORDER BY certified_on, priority, id
"""


async def certificates(
    conn: asyncpg.Connection,
    org_internal_id: int,
    topic: str,
    upto: datetime.datetime,
    realm_internal_id: int | None = None,
) -> list[bytes]:
    """The signed (never redacted) certificates of a topic up to `upto`, in their order."""
    rows = await conn.fetch(_CERTIFICATES, org_internal_id, topic, realm_internal_id, upto)
    return [bytes(r["certificate"]) for r in rows]


_KEYS_BUNDLES = """
SELECT key_index, keys_bundle FROM realm_keys_bundle
WHERE realm = $1 AND certified_on <= $2 AND keys_bundle IS NOT NULL ORDER BY key_index
"""

_KEYS_BUNDLE_ACCESS = """
SELECT a.id, u.user_id, kb.key_index, a.access
FROM realm_keys_bundle_access a
JOIN realm_keys_bundle kb ON kb.id = a.realm_keys_bundle
JOIN user_ u ON u.id = a.user_
WHERE kb.realm = $1 AND kb.certified_on <= $2
ORDER BY a.id
"""

_SEQUESTER_ACCESS = """
SELECT s.service_id, kb.key_index, a.access
FROM realm_sequester_keys_bundle_access a
JOIN realm_keys_bundle kb ON kb.id = a.realm_keys_bundle
JOIN sequester_service s ON s.id = a.sequester_service
WHERE kb.realm = $1 AND kb.certified_on <= $2
ORDER BY kb.key_index, s.service_id
"""


async def keys_bundles(
    conn: asyncpg.Connection, realm_internal_id: int, upto: datetime.datetime
) -> tuple[
    list[tuple[int, bytes]], list[tuple[uuid.UUID, int, bytes]], list[tuple[uuid.UUID, int, bytes]]
]:
    """(bundles, user accesses, sequester service accesses) of the realm up to `upto`."""
    bundles = [
        (r["key_index"], bytes(r["keys_bundle"]))
        for r in await conn.fetch(_KEYS_BUNDLES, realm_internal_id, upto)
    ]
    users = [
        (r["user_id"], r["key_index"], bytes(r["access"]))
        for r in await conn.fetch(_KEYS_BUNDLE_ACCESS, realm_internal_id, upto)
    ]
    services = [
        (r["service_id"], r["key_index"], bytes(r["access"]))
        for r in await conn.fetch(_SEQUESTER_ACCESS, realm_internal_id, upto)
    ]
    return bundles, users, services


_VLOBS = """
SELECT v.id, u.checkpoint, v.vlob_id, v.version, v.key_index, v.blob, v.size, d.device_id,
    v.created_on
FROM vlob_atom v
JOIN device d ON d.id = v.author
JOIN realm_vlob_update u ON u.realm = v.realm AND u.vlob_id = v.vlob_id AND u.version = v.version
WHERE v.realm = $1 AND v.created_on <= $2 AND v.id > $3
ORDER BY v.id
LIMIT $4
"""


async def iter_vlobs(
    conn: asyncpg.Connection, realm_internal_id: int, upto: datetime.datetime, batch: int = 1000
) -> AsyncIterator[asyncpg.Record]:
    """Every vlob version of the realm written up to `upto`, in the order they were written."""
    last = 0
    while True:
        rows = await conn.fetch(_VLOBS, realm_internal_id, upto, last, batch)
        for row in rows:
            yield row
        if len(rows) < batch:
            return
        last = rows[-1]["id"]


_BLOCKS = """
SELECT b.id, b.block_id, d.device_id, b.size, b.key_index
FROM block b JOIN device d ON d.id = b.author
WHERE b.realm = $1 AND b.created_on <= $2
ORDER BY b.id
"""


async def blocks(
    conn: asyncpg.Connection, realm_internal_id: int, upto: datetime.datetime
) -> list[asyncpg.Record]:
    return list(await conn.fetch(_BLOCKS, realm_internal_id, upto))


# --- human accesses ---------------------------------------------------------------------------------

_USERS = """
SELECT u.id, u.user_id, h.label, h.email, u.initial_profile, u.current_profile, u.created_on,
    u.revoked_on, u.frozen
FROM user_ u JOIN human h ON h.id = u.human
WHERE u.organization = $1
ORDER BY h.email, u.created_on
"""

_PROFILE_UPDATES = """
SELECT p.user_, p.profile, p.certified_on FROM user_profile_update p
JOIN user_ u ON u.id = p.user_ WHERE u.organization = $1 ORDER BY p.certified_on, p.id
"""

_ROLES = """
SELECT g.user_, r.realm_id, g.role, g.certified_on FROM realm_user_role g
JOIN realm r ON r.id = g.realm WHERE r.organization = $1 ORDER BY g.certified_on, g.id
"""


async def human_accesses(conn: asyncpg.Connection, org_internal_id: int) -> list[dict[str, Any]]:
    """Every user of the organization with its profile history and, per realm, its role history."""
    users: dict[int, dict[str, Any]] = {}
    for r in await conn.fetch(_USERS, org_internal_id):
        users[r["id"]] = {
            "user_id": r["user_id"],
            "human_label": r["label"],
            "human_email": r["email"],
            "initial_profile": r["initial_profile"],
            "current_profile": r["current_profile"],
            "created_on": r["created_on"],
            "revoked_on": r["revoked_on"],
            "frozen": r["frozen"],
            "profile_updates": [],
            "realms": {},
        }
    for r in await conn.fetch(_PROFILE_UPDATES, org_internal_id):
        users[r["user_"]]["profile_updates"].append((r["certified_on"], r["profile"]))
    for r in await conn.fetch(_ROLES, org_internal_id):
        users[r["user_"]]["realms"].setdefault(r["realm_id"], []).append(
            (r["certified_on"], r["role"])
        )
    return list(users.values())


__all__ = [
    "DeletionCandidate",
    "OrgRow",
    "RealmRow",
    "blocks",
    "certificates",
    "delete_block_rows",
    "delete_organization",
    "delete_realm_metadata",
    "deletion_candidates",
    "expired_organizations",
    "human_accesses",
    "iter_vlobs",
    "keys_bundles",
    "list_organizations",
    "organization",
    "organization_block_ids",
    "organization_counts",
    "realm",
    "realm_block_ids",
    "realm_counts",
]
