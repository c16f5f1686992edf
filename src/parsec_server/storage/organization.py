"""Organizations: creation (administration API, spontaneous), bootstrap, settings, usage statistics.

A created organization has its `topic_common` row from the start (at the epoch): bootstrap locks it
like any other common-topic writer. Re-creating an organization that is not bootstrapped yet
replaces its token and settings (observed-reference.md §4, quirk 2); a bootstrapped one is never
touched again by creation.
"""

from __future__ import annotations

import datetime
import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg

from parsec_server.storage.auth import _ORG_COLUMNS, organization_from_row
from parsec_server.storage.records import Organization

if TYPE_CHECKING:
    from parsec_server.config import ServerConfig

PROFILES = ("ADMIN", "STANDARD", "OUTSIDER")


@dataclass(frozen=True, slots=True)
class OrganizationSettings:
    user_profile_outsider_allowed: bool
    active_users_limit: int | None
    minimum_archiving_period: int
    tos: dict[str, str] | None


def initial_settings(config: ServerConfig) -> OrganizationSettings:
    """Settings of a new organization (protocol.md §6.5, `--organization-initial-*`)."""
    return OrganizationSettings(
        user_profile_outsider_allowed=config.organization_initial_user_profile_outsider_allowed,
        active_users_limit=config.organization_initial_active_users_limit,
        minimum_archiving_period=config.organization_initial_minimum_archiving_period,
        tos=config.organization_initial_tos,
    )


# --- creation -------------------------------------------------------------------------------------

# $1 organization_id, $2 bootstrap_token, $3 outsider allowed, $4 active users limit, $5 archiving
# period, $6 tos urls (JSON text or NULL), $7 now
_Q_CREATE = """
WITH upserted AS (
    INSERT INTO organization (
        organization_id, created_on, bootstrap_token, user_profile_outsider_allowed,
        active_users_limit, realm_minimum_archiving_period_before_deletion, tos_updated_on,
        tos_per_locale_urls
    )
    VALUES (
        $1, $7::timestamptz, $2, $3, $4, $5,
        CASE WHEN $6::text IS NULL THEN NULL ELSE $7::timestamptz END, $6::jsonb
    )
    ON CONFLICT (organization_id) DO UPDATE SET
        created_on = EXCLUDED.created_on,
        bootstrap_token = EXCLUDED.bootstrap_token,
        is_expired = FALSE,
        expired_on = NULL,
        user_profile_outsider_allowed = EXCLUDED.user_profile_outsider_allowed,
        active_users_limit = EXCLUDED.active_users_limit,
        realm_minimum_archiving_period_before_deletion =
            EXCLUDED.realm_minimum_archiving_period_before_deletion,
        tos_updated_on = EXCLUDED.tos_updated_on,
        tos_per_locale_urls = EXCLUDED.tos_per_locale_urls
    WHERE organization.root_verify_key IS NULL
    RETURNING id
),
topic AS (
    INSERT INTO topic_common (organization, last_timestamp)
    SELECT id, '1970-01-01T00:00:00Z'::timestamptz FROM upserted
    ON CONFLICT (organization) DO NOTHING
)
SELECT id FROM upserted
"""


async def create(
    conn: asyncpg.Connection,
    organization_id: str,
    bootstrap_token: bytes | None,
    settings: OrganizationSettings,
    now: datetime.datetime,
) -> int | None:
    """Create (or overwrite a not yet bootstrapped) organization; None if it exists and is
    bootstrapped."""
    tos = None if settings.tos is None else json.dumps(settings.tos)
    org_internal_id: int | None = await conn.fetchval(
        _Q_CREATE,
        organization_id,
        bootstrap_token,
        settings.user_profile_outsider_allowed,
        settings.active_users_limit,
        settings.minimum_archiving_period,
        tos,
        now,
    )
    return org_internal_id


_Q_CREATE_SPONTANEOUS = f"""
WITH new_org AS (
    INSERT INTO organization (
        organization_id, created_on, bootstrap_token, user_profile_outsider_allowed,
        active_users_limit, realm_minimum_archiving_period_before_deletion, tos_updated_on,
        tos_per_locale_urls
    )
    VALUES (
        $1, now(), NULL, $2, $3, $4, CASE WHEN $5::text IS NULL THEN NULL ELSE now() END, $5::jsonb
    )
    ON CONFLICT (organization_id) DO NOTHING
    RETURNING *
),
topic AS (
    INSERT INTO topic_common (organization, last_timestamp)
    SELECT id, '1970-01-01T00:00:00Z'::timestamptz FROM new_org
)
SELECT {_ORG_COLUMNS} FROM new_org o
"""


async def create_spontaneous(
    conn: asyncpg.Connection, config: ServerConfig, organization_id: str
) -> Organization:
    """`--spontaneous-organization-bootstrap`: create an unknown organization on first anonymous
    POST, with no bootstrap token (bootstrapped with `bootstrap_token: nil`) and the initial
    settings (protocol.md §1.8)."""
    s = initial_settings(config)
    tos = None if s.tos is None else json.dumps(s.tos)
    row = await conn.fetchrow(
        _Q_CREATE_SPONTANEOUS,
        organization_id,
        s.user_profile_outsider_allowed,
        s.active_users_limit,
        s.minimum_archiving_period,
        tos,
    )
    if row is None:  # created concurrently by another request
        from parsec_server.storage.auth import fetch_organization

        org = await fetch_organization(conn, organization_id)
        assert org is not None
        return org
    return organization_from_row(row)


# --- read / update --------------------------------------------------------------------------------

_Q_GET = """
SELECT id, root_verify_key IS NOT NULL AS is_bootstrapped, is_expired,
    user_profile_outsider_allowed, active_users_limit,
    realm_minimum_archiving_period_before_deletion AS minimum_archiving_period,
    tos_updated_on, tos_per_locale_urls::text AS tos_per_locale_urls
FROM organization WHERE organization_id = $1
"""


async def get(conn: asyncpg.Connection, organization_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(_Q_GET, organization_id)
    if row is None:
        return None
    doc = dict(row)
    tos = doc["tos_per_locale_urls"]
    doc["tos_per_locale_urls"] = None if tos is None else json.loads(tos)
    return doc


# Each setting is (flag, value): a setting with flag FALSE is left unchanged. $1 organization_id,
# $2 now.
_Q_UPDATE = """
UPDATE organization SET
    is_expired = CASE WHEN $3 THEN $4 ELSE is_expired END,
    expired_on =
        CASE WHEN NOT $3 THEN expired_on WHEN $4 THEN COALESCE(expired_on, $2) ELSE NULL END,
    user_profile_outsider_allowed = CASE WHEN $5 THEN $6 ELSE user_profile_outsider_allowed END,
    active_users_limit = CASE WHEN $7 THEN $8 ELSE active_users_limit END,
    realm_minimum_archiving_period_before_deletion =
        CASE WHEN $9 THEN $10 ELSE realm_minimum_archiving_period_before_deletion END,
    tos_updated_on =
        CASE WHEN NOT $11 THEN tos_updated_on WHEN $12::text IS NULL THEN NULL ELSE $2 END,
    tos_per_locale_urls = CASE WHEN $11 THEN $12::jsonb ELSE tos_per_locale_urls END
WHERE organization_id = $1
RETURNING id
"""


async def update(
    conn: asyncpg.Connection, organization_id: str, changes: dict[str, Any], now: datetime.datetime
) -> bool:
    """Apply the administration PATCH `changes` (keys: is_expired, user_profile_outsider_allowed,
    active_users_limit, realm_minimum_archiving_period_before_deletion, tos).

    False if no such organization."""

    def opt(key: str) -> tuple[bool, Any]:
        return (key in changes, changes.get(key))

    tos_set, tos = opt("tos")
    row = await conn.fetchrow(
        _Q_UPDATE,
        organization_id,
        now,
        *opt("is_expired"),
        *opt("user_profile_outsider_allowed"),
        *opt("active_users_limit"),
        *opt("realm_minimum_archiving_period_before_deletion"),
        tos_set,
        None if tos is None else json.dumps(tos),
    )
    return row is not None


# --- bootstrap ------------------------------------------------------------------------------------

_Q_LOCK_FOR_BOOTSTRAP = """
SELECT o.is_expired, o.root_verify_key IS NOT NULL AS is_bootstrapped, o.bootstrap_token
FROM organization o
JOIN topic_common tc ON tc.organization = o.id
WHERE o.id = $1
FOR UPDATE OF o, tc
"""


@dataclass(frozen=True, slots=True)
class BootstrapState:
    is_expired: bool
    is_bootstrapped: bool
    bootstrap_token: bytes | None


async def lock_for_bootstrap(
    conn: asyncpg.Connection, org_internal_id: int
) -> BootstrapState | None:
    row = await conn.fetchrow(_Q_LOCK_FOR_BOOTSTRAP, org_internal_id)
    if row is None:
        return None
    token = row["bootstrap_token"]
    return BootstrapState(
        row["is_expired"], row["is_bootstrapped"], None if token is None else bytes(token)
    )


@dataclass(frozen=True, slots=True)
class BootstrapData:
    timestamp: datetime.datetime
    root_verify_key: bytes
    user_id: uuid.UUID
    email: str
    label: str
    device_id: uuid.UUID
    device_label: str | None
    device_purpose: str
    verify_key: bytes
    user_certificate: bytes
    redacted_user_certificate: bytes
    device_certificate: bytes
    redacted_device_certificate: bytes
    sequester_authority_certificate: bytes | None
    sequester_authority_timestamp: datetime.datetime | None
    sequester_verify_key_der: bytes | None


# $1 org, $2 ts, $3 root key, $4 user_id, $5 email, $6 label, $7 device_id, $8 device_label,
# $9 purpose, $10 verify key, $11 user cert, $12 redacted user cert, $13 device cert, $14 redacted
# device cert, $15 sequester authority cert, $16 its timestamp, $17 sequester verify key der
_Q_BOOTSTRAP = """
WITH new_human AS (
    INSERT INTO human (organization, email, label) VALUES ($1, $5, $6)
    ON CONFLICT (organization, email) DO UPDATE SET label = EXCLUDED.label
    RETURNING id
),
new_user AS (
    INSERT INTO user_ (
        organization, user_id, human, initial_profile, current_profile, created_on, created_by
    )
    SELECT $1, $4, new_human.id, 'ADMIN', 'ADMIN', $2, NULL FROM new_human
    RETURNING id
),
new_device AS (
    INSERT INTO device (
        organization, user_, device_id, device_label, purpose, verify_key, created_on, created_by
    )
    SELECT $1, new_user.id, $7, $8, $9, $10, $2, NULL FROM new_user
    RETURNING id
),
certs AS (
    INSERT INTO certificate (
        organization, topic, certified_on, priority, kind, certificate, redacted_certificate
    )
    SELECT $1::bigint, 'common', $2::timestamptz, 0, 'user_certificate', $11::bytea, $12::bytea
    FROM new_device
    UNION ALL
    SELECT $1, 'common', $2, 1, 'device_certificate', $13::bytea, $14::bytea FROM new_device
    UNION ALL
    SELECT $1, 'sequester', $16::timestamptz, 0, 'sequester_authority_certificate', $15::bytea, NULL
    FROM new_device WHERE $15::bytea IS NOT NULL
),
org AS (
    UPDATE organization
    SET root_verify_key = $3, bootstrapped_on = $2, sequester_authority_verify_key_der = $17
    WHERE id = $1
),
topic AS (
    UPDATE topic_common SET last_timestamp = $2 WHERE organization = $1
),
sequester_topic AS (
    INSERT INTO topic_sequester (organization, last_timestamp)
    SELECT $1, $16 WHERE $16::timestamptz IS NOT NULL
)
SELECT id FROM new_device
"""


async def bootstrap(conn: asyncpg.Connection, org_internal_id: int, d: BootstrapData) -> None:
    """Store the first user and device, the root key and the sequester authority (the caller holds
    the organization and its common topic FOR UPDATE and checked every precondition)."""
    await conn.fetchval(
        _Q_BOOTSTRAP,
        org_internal_id,
        d.timestamp,
        d.root_verify_key,
        d.user_id,
        d.email,
        d.label,
        d.device_id,
        d.device_label,
        d.device_purpose,
        d.verify_key,
        d.user_certificate,
        d.redacted_user_certificate,
        d.device_certificate,
        d.redacted_device_certificate,
        d.sequester_authority_certificate,
        d.sequester_authority_timestamp,
        d.sequester_verify_key_der,
    )


# --- usage ----------------------------------------------------------------------------------------

_Q_USAGE = """
SELECT
    (SELECT COALESCE(SUM(r.vlob_bytes), 0) FROM realm r
     WHERE r.organization = $1 AND r.status <> 'DELETED')::bigint AS metadata,
    (SELECT COALESCE(SUM(u.bytes), 0) FROM realm_block_usage u JOIN realm r ON r.id = u.realm
     WHERE r.organization = $1 AND r.status <> 'DELETED')::bigint AS data
"""


async def usage(conn: asyncpg.Connection, org_internal_id: int) -> tuple[int, int]:
    """(total metadata bytes, total block bytes) of the organization's realms: the totals the
    writes keep (migration 0008), one row per realm (and block slot), whatever the data size."""
    row = await conn.fetchrow(_Q_USAGE, org_internal_id)
    assert row is not None
    return row["metadata"], row["data"]


def _stats_query(one_org: bool, at: bool) -> str:
    """Statistics of one organization (`$1` its id) or of all of them, now or as of `at` (the next
    parameter). A user counts if created by then, is revoked if revoked by then, with the profile
    he had then.

    Four statements rather than one with `$n IS NULL OR ...` filters (issue 17): the pool runs
    generic plans (storage/db.py), in which such a filter is no index bound and hides the row
    counts from the planner; there, the per-organization sums were computed again for every
    organization (O(organizations^2)), and the sums without `at` read each vlob row instead of the
    covering index (0002). The CTEs are MATERIALIZED: each is computed once. Run without JIT
    (`_fetch_stats`): the estimated cost of the sums over a big database made PostgreSQL compile
    the statement at every call, which cost more than running it."""
    at_param = "$2" if one_org else "$1"

    def by(column: str) -> str:
        return f"{column} <= {at_param}::timestamptz" if at else "TRUE"

    # Now: the totals the writes keep (0008), one row per realm (and block slot). At a past date:
    # the sums of the rows created by then (covering indexes of 0002).
    sizes = (
        f"""COALESCE(SUM((
            SELECT SUM(v.size) FROM vlob_atom v WHERE v.realm = r.id AND {by("v.created_on")}
        )), 0)::bigint AS metadata_size,
        COALESCE(SUM((
            SELECT SUM(b.size) FROM block b WHERE b.realm = r.id AND {by("b.created_on")}
        )), 0)::bigint AS data_size"""
        if at
        else """COALESCE(SUM(r.vlob_bytes), 0)::bigint AS metadata_size,
        COALESCE(SUM((
            SELECT SUM(u.bytes) FROM realm_block_usage u WHERE u.realm = r.id
        )), 0)::bigint AS data_size"""
    )
    # Now: the profile kept in user_ (user_update sets it). At a past date: the user's last
    # profile update by then (one lookup per user).
    profile = (
        f"""COALESCE(
            (SELECT p.profile FROM user_profile_update p
             WHERE p.user_ = u.id AND {by("p.certified_on")}
             ORDER BY p.certified_on DESC, p.id DESC LIMIT 1),
            u.initial_profile
        )"""
        if at
        else "u.current_profile"
    )
    return f"""
WITH orgs AS MATERIALIZED (
    SELECT id, organization_id FROM organization
    WHERE {"organization_id = $1" if one_org else "TRUE"} AND {by("created_on")}
),
user_rows AS MATERIALIZED (
    SELECT u.organization,
        {profile} AS profile,
        u.revoked_on IS NOT NULL AND {by("u.revoked_on")} AS revoked,
        COUNT(*)::bigint AS n
    FROM user_ u JOIN orgs ON orgs.id = u.organization
    WHERE {by("u.created_on")}
    GROUP BY 1, 2, 3
),
user_counts AS MATERIALIZED (
    SELECT organization, array_agg(ROW(profile, revoked, n)) AS users
    FROM user_rows GROUP BY organization
),
sizes AS MATERIALIZED (
    SELECT r.organization,
        COUNT(*)::bigint AS realms,
        {sizes}
    FROM realm r JOIN orgs ON orgs.id = r.organization
    WHERE r.status <> 'DELETED' AND {by("r.created_on")}
    GROUP BY r.organization
)
SELECT orgs.organization_id,
    COALESCE(sizes.realms, 0) AS realms,
    COALESCE(sizes.metadata_size, 0) AS metadata_size,
    COALESCE(sizes.data_size, 0) AS data_size,
    user_counts.users  -- NULL: no user
FROM orgs
LEFT JOIN sizes ON sizes.organization = orgs.id
LEFT JOIN user_counts ON user_counts.organization = orgs.id
ORDER BY orgs.organization_id
"""


_Q_STATS_ORG = _stats_query(one_org=True, at=False)
_Q_STATS_ALL = _stats_query(one_org=False, at=False)
_Q_STATS_ALL_AT = _stats_query(one_org=False, at=True)


def _stats_from_row(row: asyncpg.Record) -> dict[str, Any]:
    detail = {p: {"active": 0, "revoked": 0} for p in PROFILES}
    for profile, revoked, n in row["users"] or ():
        detail[profile]["revoked" if revoked else "active"] += n
    active = sum(d["active"] for d in detail.values())
    return {
        "realms": row["realms"],
        "data_size": row["data_size"],
        "metadata_size": row["metadata_size"],
        "users": active + sum(d["revoked"] for d in detail.values()),
        "active_users": active,
        "users_per_profile_detail": detail,
    }


async def _fetch_stats(conn: asyncpg.Connection, query: str, *args: Any) -> list[asyncpg.Record]:
    async with conn.transaction():
        # jit: see _stats_query. Index scans: the generic plan expects an average organization's
        # users (a few dozen) and fetched them through the index one heap page per user (50,000
        # page reads for an organization of 50,000 users, in index order); a bitmap scan reads
        # each page once, in order (issue 17).
        await conn.execute("SET LOCAL jit = off; SET LOCAL enable_indexscan = off")
        return list(await conn.fetch(query, *args))


async def stats(conn: asyncpg.Connection, organization_id: str) -> dict[str, Any] | None:
    rows = await _fetch_stats(conn, _Q_STATS_ORG, organization_id)
    return _stats_from_row(rows[0]) if rows else None


async def server_stats(
    conn: asyncpg.Connection, at: datetime.datetime | None
) -> list[dict[str, Any]]:
    """Every organization that existed at `at` (None: now), by organization id."""
    return [
        {"organization_id": row["organization_id"], **_stats_from_row(row)}
        for row in await (
            _fetch_stats(conn, _Q_STATS_ALL)
            if at is None
            else _fetch_stats(conn, _Q_STATS_ALL_AT, at)
        )
    ]


__all__ = [
    "BootstrapData",
    "BootstrapState",
    "OrganizationSettings",
    "bootstrap",
    "create",
    "create_spontaneous",
    "get",
    "initial_settings",
    "lock_for_bootstrap",
    "server_stats",
    "stats",
    "update",
    "usage",
]
