"""certificate_get (protocol.md §4.9): every certificate a user may read, per topic, after given
timestamps.

All certificates live in the `certificate` table (written by each area's commands, in the writing
transaction). What a user may read:
* common: everything; OUTSIDER users get the redacted user/device certificates instead;
* sequester: everything;
* shamir_recovery: brief and deletion certificates of the setups the user owns or is a recipient of,
  share certificates addressed to the user only;
* realm: for every realm the user ever had a role in (realm_member), all its certificates, up to the
  user's unsharing when his current role is none.
One statement; each topic's certificates come ordered by (timestamp, priority, insertion), so a
user certificate precedes the device certificate of the same timestamp.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

import asyncpg

from parsec_server.protocol.ids import VlobID
from parsec_server.protocol.registry import Flat

# $1 org, $2 user (internal id), $3 common_after, $4 sequester_after, $5 shamir_after,
# $6 realm_after ids, $7 realm_after timestamps
# "after" bounds are written `certified_on > COALESCE($n, '-infinity')`, not `$n IS NULL OR ...`:
# the pool runs generic plans (storage/db.py), in which only the former is an index bound, so that a
# client asking for what is new reads the new certificates only, not every certificate of the
# organization (issue 17, docs/dev/performance.md "Data scale").
# The certificates come aggregated, one row per topic (and realm), each an array in (timestamp,
# priority, insertion) order: asyncpg decodes a bytea[] into a list in C, where one row per
# certificate cost ~1.7 us of Python each (34 ms for an organization of 10,000 users asked from the
# start; issue 17).
_Q_GET = """
WITH me AS (
    SELECT current_profile = 'OUTSIDER' AS redacted FROM user_ WHERE id = $2
),
realm_after AS (
    SELECT * FROM unnest($6::uuid[], $7::timestamptz[]) AS a(realm_id, after)
),
my_realms AS MATERIALIZED (
    SELECT m.realm, r.realm_id, m.role IS NOT NULL AS has_access, m.role_certified_on,
        COALESCE(a.after, '-infinity') AS after
    FROM realm_member m
    JOIN realm r ON r.id = m.realm
    LEFT JOIN realm_after a ON a.realm_id = r.realm_id
    WHERE m.user_ = $2
),
found AS (
SELECT 'common' AS topic, NULL::uuid AS realm_id, c.certified_on, c.priority, c.id,
    CASE WHEN (SELECT redacted FROM me) THEN COALESCE(c.redacted_certificate, c.certificate)
        ELSE c.certificate END AS certificate
FROM certificate c
WHERE c.organization = $1 AND c.topic = 'common' AND c.realm IS NULL
    AND c.certified_on > COALESCE($3::timestamptz, '-infinity')
UNION ALL
SELECT 'sequester', NULL, c.certified_on, c.priority, c.id, c.certificate
FROM certificate c
WHERE c.organization = $1 AND c.topic = 'sequester' AND c.realm IS NULL
    AND c.certified_on > COALESCE($4::timestamptz, '-infinity')
UNION ALL
SELECT 'shamir_recovery', NULL, c.certified_on, c.priority, c.id, c.certificate
FROM certificate c
JOIN shamir_recovery_setup s ON s.id = c.shamir_recovery_setup
WHERE c.organization = $1 AND c.topic = 'shamir_recovery' AND c.realm IS NULL
    AND c.certified_on > COALESCE($5::timestamptz, '-infinity')
    AND CASE
        WHEN c.kind = 'shamir_recovery_share_certificate' THEN c.shamir_recipient = $2
        ELSE s.user_ = $2 OR EXISTS (
            SELECT 1 FROM shamir_recovery_share sh WHERE sh.setup = s.id AND sh.recipient = $2
        )
    END
UNION ALL
SELECT 'realm', mr.realm_id, c.certified_on, c.priority, c.id, c.certificate
FROM my_realms mr
JOIN certificate c ON c.realm = mr.realm
WHERE (mr.has_access OR c.certified_on <= mr.role_certified_on)
    AND c.certified_on > mr.after
)
SELECT topic, realm_id, array_agg(certificate ORDER BY certified_on, priority, id) AS certificates
FROM found
GROUP BY topic, realm_id
ORDER BY topic, realm_id
"""


@dataclass(slots=True)
class Certificates:
    """Each list a `Flat` (bytes only): the reply encoder packs it without walking it."""

    common: list[bytes] = field(default_factory=Flat)
    sequester: list[bytes] = field(default_factory=Flat)
    shamir_recovery: list[bytes] = field(default_factory=Flat)
    realm: dict[uuid.UUID, list[bytes]] = field(default_factory=dict)


async def get(
    conn: asyncpg.Connection,
    org_internal_id: int,
    user_internal_id: int,
    common_after: datetime.datetime | None,
    sequester_after: datetime.datetime | None,
    shamir_recovery_after: datetime.datetime | None,
    realm_after: Mapping[VlobID, datetime.datetime],
) -> Certificates:
    rows = await conn.fetch(
        _Q_GET,
        org_internal_id,
        user_internal_id,
        common_after,
        sequester_after,
        shamir_recovery_after,
        list(realm_after.keys()),
        list(realm_after.values()),
    )
    out = Certificates()
    for topic, realm_id, certs in rows:
        if topic == "common":
            out.common = Flat(certs)
        elif topic == "realm":
            out.realm[realm_id] = Flat(certs)
        elif topic == "sequester":
            out.sequester = Flat(certs)
        else:
            out.shamir_recovery = Flat(certs)
    return out


__all__ = ["Certificates", "get"]
