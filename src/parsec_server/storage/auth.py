"""The queries of the handshake: an organization, a device with its user and organization, a user's
realms. The per-process cache that keeps their results lives in asgi/auth.py.
"""

from __future__ import annotations

import uuid

import asyncpg

from parsec_server.storage.records import AuthenticatedDevice, Organization

_ORG_COLUMNS = """
    o.id AS org_internal_id, o.organization_id, o.root_verify_key IS NOT NULL AS is_bootstrapped,
    o.is_expired, o.bootstrap_token, o.user_profile_outsider_allowed, o.active_users_limit,
    o.realm_minimum_archiving_period_before_deletion AS minimum_archiving_period, o.tos_updated_on,
    o.sequester_authority_verify_key_der IS NOT NULL AS is_sequestered
"""

_Q_DEVICE = f"""
SELECT {_ORG_COLUMNS},
    d.id AS device_internal_id, d.verify_key, u.id AS user_internal_id, u.user_id, u.current_profile,
    u.revoked_on, u.frozen, u.tos_accepted_on
FROM organization o
LEFT JOIN device d ON d.organization = o.id AND d.device_id = $2
LEFT JOIN user_ u ON u.id = d.user_
WHERE o.organization_id = $1
"""

_Q_ORG = f"SELECT {_ORG_COLUMNS} FROM organization o WHERE o.organization_id = $1"

_Q_USER_REALMS = """
SELECT r.realm_id FROM realm_member m JOIN realm r ON r.id = m.realm
WHERE m.user_ = $2 AND m.role IS NOT NULL AND r.organization = $1
"""


def organization_from_row(row: asyncpg.Record) -> Organization:
    return Organization(
        internal_id=row["org_internal_id"],
        organization_id=row["organization_id"],
        is_bootstrapped=row["is_bootstrapped"],
        is_expired=row["is_expired"],
        bootstrap_token=None if row["bootstrap_token"] is None else bytes(row["bootstrap_token"]),
        user_profile_outsider_allowed=row["user_profile_outsider_allowed"],
        active_users_limit=row["active_users_limit"],
        minimum_archiving_period=row["minimum_archiving_period"],
        tos_updated_on=row["tos_updated_on"],
        is_sequestered=row["is_sequestered"],
    )


async def fetch_organization(conn: asyncpg.Connection, organization_id: str) -> Organization | None:
    row = await conn.fetchrow(_Q_ORG, organization_id)
    return None if row is None else organization_from_row(row)


async def user_realms(
    conn: asyncpg.Connection, org_internal_id: int, user_internal_id: int
) -> set[uuid.UUID]:
    """Realms where the user's last role is not None (what an event stream listens to)."""
    return {
        r["realm_id"] for r in await conn.fetch(_Q_USER_REALMS, org_internal_id, user_internal_id)
    }


async def fetch_device(
    conn: asyncpg.Connection, org_id: str, device_id: uuid.UUID
) -> Organization | AuthenticatedDevice | None:
    """The device with its user and organization; only the organization when the device is unknown;
    None when the organization is unknown."""
    row = await conn.fetchrow(_Q_DEVICE, org_id, device_id)
    if row is None:
        return None
    org = organization_from_row(row)
    if row["device_internal_id"] is None:
        return org
    return AuthenticatedDevice(
        org=org,
        device_internal_id=row["device_internal_id"],
        device_id=device_id,
        user_internal_id=row["user_internal_id"],
        user_id=row["user_id"],
        profile=row["current_profile"],
        verify_key=bytes(row["verify_key"]),
        revoked=row["revoked_on"] is not None,
        frozen=row["frozen"],
        tos_accepted_on=row["tos_accepted_on"],
    )
