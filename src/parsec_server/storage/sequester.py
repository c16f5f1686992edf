"""Sequester services of a sequestered organization: list, create, revoke, change the type
(administration API and `sequester` CLI, commands/sequester.py), and the webhook services a vlob
write must ask first (storage/vlob.py reads them in its own statement).

The service and revoked service certificates go to `certificate` (topic `sequester`, served by
certificate_get) and bump `topic_sequester`; `sequester_service` keeps what the server needs to act
on a service (label, type, webhook URL, creation and revocation timestamps). Only bootstrapped
organizations are considered: an organization not bootstrapped yet is "not found", as on the
official server.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Literal, NamedTuple

import asyncpg

from parsec_server.events.bus import publish
from parsec_server.events.types import sequester_certificate

__all__ = [
    "Authority",
    "CreateOutcome",
    "RevokeOutcome",
    "Service",
    "ServiceType",
    "UpdateOutcome",
    "create_service",
    "list_services",
    "lock_authority",
    "revoke_service",
    "update_config",
]

# The column's values (the administration API speaks lower case: "storage" / "webhook").
ServiceType = Literal["STORAGE", "WEBHOOK"]


class Authority(NamedTuple):
    """A bootstrapped organization with the sequester topic locked FOR UPDATE: its sequester
    authority key (None: not sequestered) and the topic's last timestamp (None likewise)."""

    org_internal_id: int
    verify_key_der: bytes | None
    last_timestamp: datetime.datetime | None


_Q_LOCK_AUTHORITY = """
WITH o AS (
    SELECT id, sequester_authority_verify_key_der FROM organization
    WHERE organization_id = $1 AND root_verify_key IS NOT NULL
),
t AS (
    SELECT last_timestamp FROM topic_sequester WHERE organization = (SELECT id FROM o) FOR UPDATE
)
SELECT o.id, o.sequester_authority_verify_key_der, (SELECT last_timestamp FROM t) AS last_timestamp
FROM o
"""


async def lock_authority(conn: asyncpg.Connection, organization_id: str) -> Authority | None:
    """Lock the sequester topic (in the caller's transaction) and read the authority; None when no
    bootstrapped organization has that id."""
    row = await conn.fetchrow(_Q_LOCK_AUTHORITY, organization_id)
    if row is None:
        return None
    key = row["sequester_authority_verify_key_der"]
    return Authority(row["id"], None if key is None else bytes(key), row["last_timestamp"])


# $1 org, $2 service_id, $3 label, $4 encryption key der, $5 created_on, $6 type, $7 webhook url,
# $8 signed certificate
_Q_CREATE = """
WITH s AS (
    INSERT INTO sequester_service (
        organization, service_id, service_label, encryption_key_der, created_on, service_type,
        webhook_url
    )
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (organization, service_id) DO NOTHING
    RETURNING id
),
c AS (
    INSERT INTO certificate (organization, topic, certified_on, priority, kind, certificate)
    SELECT $1, 'sequester', $5, 0, 'sequester_service_certificate', $8 FROM s
),
t AS (
    UPDATE topic_sequester SET last_timestamp = $5
    WHERE organization = $1 AND EXISTS (SELECT 1 FROM s)
)
SELECT EXISTS (SELECT 1 FROM s)
"""

CreateOutcome = Literal["ok", "already_exists"]


async def create_service(
    conn: asyncpg.Connection,
    authority: Authority,
    organization_id: str,
    *,
    service_id: uuid.UUID,
    label: str,
    encryption_key_der: bytes,
    created_on: datetime.datetime,
    service_type: ServiceType,
    webhook_url: str | None,
    certificate: bytes,
) -> CreateOutcome:
    """Store a checked service certificate (the caller holds the topic lock: `lock_authority`,
    and checked `created_on` is after the topic's last timestamp) and send SEQUESTER_CERTIFICATE."""
    inserted: bool = await conn.fetchval(
        _Q_CREATE,
        authority.org_internal_id,
        service_id,
        label,
        encryption_key_der,
        created_on,
        service_type,
        webhook_url,
        certificate,
    )
    if not inserted:
        return "already_exists"
    await publish(conn, sequester_certificate(organization_id, created_on))
    return "ok"


# $1 org, $2 service_id, $3 revoked_on, $4 signed certificate
_Q_REVOKE = """
WITH s AS (
    SELECT id, revoked_on FROM sequester_service WHERE organization = $1 AND service_id = $2
),
u AS (
    UPDATE sequester_service SET revoked_on = $3
    WHERE id = (SELECT id FROM s) AND revoked_on IS NULL
    RETURNING id
),
c AS (
    INSERT INTO certificate (organization, topic, certified_on, priority, kind, certificate)
    SELECT $1, 'sequester', $3, 0, 'sequester_revoked_service_certificate', $4 FROM u
),
t AS (
    UPDATE topic_sequester SET last_timestamp = $3
    WHERE organization = $1 AND EXISTS (SELECT 1 FROM u)
)
SELECT EXISTS (SELECT 1 FROM s) AS found, EXISTS (SELECT 1 FROM u) AS revoked
"""

RevokeOutcome = Literal["ok", "not_found", "already_revoked"]


async def revoke_service(
    conn: asyncpg.Connection,
    authority: Authority,
    organization_id: str,
    *,
    service_id: uuid.UUID,
    revoked_on: datetime.datetime,
    certificate: bytes,
) -> RevokeOutcome:
    """Store a checked revoked service certificate (same preconditions as `create_service`)."""
    row = await conn.fetchrow(
        _Q_REVOKE, authority.org_internal_id, service_id, revoked_on, certificate
    )
    if not row["found"]:
        return "not_found"
    if not row["revoked"]:
        return "already_revoked"
    await publish(conn, sequester_certificate(organization_id, revoked_on))
    return "ok"


# $1 organization_id, $2 service_id, $3 type, $4 webhook url
_Q_UPDATE_CONFIG = """
WITH o AS (
    SELECT id, sequester_authority_verify_key_der IS NOT NULL AS sequestered FROM organization
    WHERE organization_id = $1 AND root_verify_key IS NOT NULL
),
u AS (
    UPDATE sequester_service SET service_type = $3, webhook_url = $4
    WHERE organization = (SELECT id FROM o WHERE sequestered) AND service_id = $2
    RETURNING id
)
SELECT
    EXISTS (SELECT 1 FROM o) AS org_found,
    COALESCE((SELECT sequestered FROM o), FALSE) AS sequestered,
    EXISTS (SELECT 1 FROM u) AS service_found
"""

UpdateOutcome = Literal["ok", "organization_not_found", "sequester_disabled", "service_not_found"]


async def update_config(
    conn: asyncpg.Connection,
    organization_id: str,
    service_id: uuid.UUID,
    service_type: ServiceType,
    webhook_url: str | None,
) -> UpdateOutcome:
    """Change a service's type (and webhook URL); no certificate, no event (not signed data). A
    revoked service may be changed too, like on the official server (it is ignored anyway)."""
    row = await conn.fetchrow(
        _Q_UPDATE_CONFIG, organization_id, service_id, service_type, webhook_url
    )
    if not row["org_found"]:
        return "organization_not_found"
    if not row["sequestered"]:
        return "sequester_disabled"
    if not row["service_found"]:
        return "service_not_found"
    return "ok"


class Service(NamedTuple):
    service_id: uuid.UUID
    label: str
    created_on: datetime.datetime
    revoked_on: datetime.datetime | None
    service_type: ServiceType
    webhook_url: str | None


# $1 organization_id. One row per service, or one row of NULLs when the organization has none.
_Q_LIST = """
SELECT
    o.sequestered, s.service_id, s.service_label, s.created_on, s.revoked_on, s.service_type,
    s.webhook_url
FROM (
    SELECT id, sequester_authority_verify_key_der IS NOT NULL AS sequestered FROM organization
    WHERE organization_id = $1 AND root_verify_key IS NOT NULL
) o
LEFT JOIN sequester_service s ON s.organization = o.id
ORDER BY s.created_on, s.id
"""


async def list_services(
    conn: asyncpg.Connection, organization_id: str
) -> list[Service] | Literal["organization_not_found", "sequester_disabled"]:
    """Every service of the organization (revoked ones included), oldest first."""
    rows = await conn.fetch(_Q_LIST, organization_id)
    if not rows:
        return "organization_not_found"
    if not rows[0]["sequestered"]:
        return "sequester_disabled"
    return [
        Service(
            r["service_id"],
            r["service_label"],
            r["created_on"],
            r["revoked_on"],
            r["service_type"],
            r["webhook_url"],
        )
        for r in rows
        if r["service_id"] is not None
    ]
