"""Vlobs: writes (vlob_create / vlob_update) and reads (read_batch, read_versions, poll_changes).

Each command is ONE statement (one round trip, no explicit transaction: a statement is atomic on its
own). It returns every fact the handler needs to pick the reply in the official order
(commands/vlob.py), and a write happens only when every check passes.

Writes (protocol.md §4.2: read common, read realm):
* `locked` takes `topic_common` and `topic_realm` FOR SHARE. A realm certificate writer holds
  `topic_realm` FOR UPDATE, a common one `topic_common` FOR UPDATE: a write waits for them and they
  wait for it, so the causality checks (`timestamp > topic`) and the readers of
  `realm.last_vlob_timestamp` (share, unshare, revoke) see a consistent state.
* The other facts (role, key index, status, author revoked...) come from the statement's snapshot.
  Every change to them commits a certificate that bumps one of the two topics, so when a locked
  topic row is newer than its snapshot version (we waited for such a writer) the snapshot is stale:
  nothing is written and `stale` tells the caller to run the statement again.
* `upd` bumps `realm.vlob_checkpoint` (the realm row lock serialises the writers of one realm, and
  the checkpoint log has no gap) before `ins` inserts the version: two racing writes of the same
  version end with the second one's INSERT failing on the unique index (UniqueViolationError, which
  aborts the whole statement, checkpoint included: the caller reports vlob_already_exists /
  bad_vlob_version).
* The VLOB event is NOTIFYed by the same statement (delivered on commit).
* Sequestered organizations (the caller knows it from its cached organization record) run
  `_Q_WRITE_SEQUESTERED` instead: the same statement, which also reads the organization's active
  sequester services of webhook type not yet asked (`$14`, their internal ids) and does not write
  while one is left. The caller asks them with no connection held (webhooks/), then runs the
  statement again with them as accepted: one round trip more only for organizations that have a
  webhook service; the others run the same statement as before.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

import asyncpg

from parsec_server.events.types import vlob_payload_head, vlob_payload_sql
from parsec_server.protocol.codec import ext_datetime, ext_uuid
from parsec_server.protocol.registry import Flat
from parsec_server.storage.topics import NOTIFY_CHANNEL
from parsec_server.storage.write_rules import WriteFacts, write_ok_sql

__all__ = [
    "INT4_MAX",
    "WRITTEN",
    "ReadFacts",
    "VlobChanges",
    "VlobItems",
    "VlobWrite",
    "Webhook",
    "poll_changes",
    "read_batch",
    "read_versions",
    "write",
]

INT4_MAX = 2**31 - 1
INT8_MAX = 2**63 - 1

# The refusal rules in SQL (storage/write_rules.py decides the same in Python).
_WRITE_OK = write_ok_sql(
    "facts", key_index="$6", version="$10", update="$13", timestamp="$7", in_ballpark="$9"
)

# $1 org, $2 author user, $3 author device, $4 realm_id, $5 vlob_id, $6 key_index, $7 timestamp,
# $8 blob, $9 timestamp in the ballpark, $10 version (1 for vlob_create), $11 notify channel,
# $12 event payload head, $13 update (the vlob must exist at version $10 - 1) or create (it must not
# exist)
_WRITE_HEAD = f"""
WITH r0 AS (
    SELECT id, status, key_index FROM realm WHERE organization = $1 AND realm_id = $4
),
locked AS MATERIALIZED (
    SELECT tc.last_timestamp AS common_ts, tr.last_timestamp AS realm_ts
    FROM topic_common tc, topic_realm tr
    WHERE tc.organization = $1 AND tr.realm = (SELECT id FROM r0)
    FOR SHARE
),
facts AS MATERIALIZED (
    SELECT
        o.is_expired,
        u.revoked_on IS NOT NULL AS revoked,
        r0.id AS realm,
        r0.status,
        r0.key_index,
        (SELECT m.role FROM realm_member m WHERE m.realm = r0.id AND m.user_ = $2) AS role,
        locked.common_ts,
        locked.realm_ts,
        locked.realm_ts IS NOT NULL AND (
            locked.common_ts IS DISTINCT FROM (
                SELECT t.last_timestamp FROM topic_common t WHERE t.organization = $1
            )
            OR locked.realm_ts IS DISTINCT FROM (
                SELECT t.last_timestamp FROM topic_realm t WHERE t.realm = r0.id
            )
        ) AS stale,
        (
            SELECT max(v.version) FROM vlob_atom v WHERE v.realm = r0.id AND v.vlob_id = $5
        ) AS current_version
    FROM organization o
    JOIN user_ u ON u.id = $2
    LEFT JOIN r0 ON TRUE
    LEFT JOIN locked ON TRUE
    WHERE o.id = $1
),
ctx AS (
    SELECT facts.*, ({_WRITE_OK}) AS ok
    FROM facts
),
upd AS (
    UPDATE realm
    SET vlob_checkpoint = realm.vlob_checkpoint + 1,
        last_vlob_timestamp = GREATEST(realm.last_vlob_timestamp, $7),
        vlob_bytes = realm.vlob_bytes + octet_length($8::bytea)
    FROM ctx
    WHERE realm.id = ctx.realm AND ctx.ok
    RETURNING realm.id, realm.vlob_checkpoint
),
ins AS (
    INSERT INTO vlob_atom (realm, vlob_id, version, key_index, author, created_on, size, blob)
    SELECT
        upd.id, $5::uuid, $10::int, $6::int, $3::bigint, $7::timestamptz, octet_length($8::bytea),
        $8::bytea
    FROM upd
),
log AS (
    INSERT INTO realm_vlob_update (realm, checkpoint, vlob_id, version)
    SELECT upd.id, upd.vlob_checkpoint, $5, $10 FROM upd
)
"""

_WRITTEN = f"""(
    SELECT pg_notify($11, {vlob_payload_sql("$12", "ctx.common_ts", "ctx.realm_ts")}) IS NULL
    FROM upd
) IS NOT NULL AS written"""

_Q_WRITE = (
    _WRITE_HEAD
    + f"""
SELECT ctx.*, {_WRITTEN}
FROM ctx
"""
)

# $14: internal ids of the webhook services that already accepted this write.
_CTX_HEAD = "ctx AS (\n    SELECT facts.*, ("
assert _WRITE_HEAD.count(_CTX_HEAD) == 1
_Q_WRITE_SEQUESTERED = (
    _WRITE_HEAD.replace(
        _CTX_HEAD,
        """hooks AS MATERIALIZED (
    SELECT s.id, s.service_id, s.webhook_url FROM sequester_service s
    WHERE s.organization = $1 AND s.service_type = 'WEBHOOK' AND s.revoked_on IS NULL
        AND s.id <> ALL($14::bigint[])
),
ctx AS (
    SELECT facts.*, NOT EXISTS (SELECT 1 FROM hooks) AND (""",
    )
    + f"""
SELECT ctx.*, {_WRITTEN},
    (SELECT array_agg(h.id ORDER BY h.id) FROM hooks h) AS hook_ids,
    (SELECT array_agg(h.service_id ORDER BY h.id) FROM hooks h) AS hook_service_ids,
    (SELECT array_agg(h.webhook_url ORDER BY h.id) FROM hooks h) AS hook_urls
FROM ctx
"""
)


class Webhook(NamedTuple):
    """A sequester service of webhook type to ask before writing."""

    internal_id: int
    service_id: uuid.UUID
    url: str


class VlobWrite(NamedTuple):
    """The outcome of `write`: `written`, or the facts that refused it (`stale`: certificates
    committed meanwhile, run it again; `is_expired` / `revoked`: the author's state now)."""

    written: bool
    stale: bool
    is_expired: bool
    revoked: bool
    facts: WriteFacts
    # Sequestered organizations: the webhook services still to ask (nothing was written).
    webhooks: tuple[Webhook, ...] = ()


# What a write that succeeded returns (the common case: its facts are never read; not building
# them saves ~3 % of a write's CPU, bench/inproc.py --callgrind).
WRITTEN = VlobWrite(True, False, False, False, WriteFacts(True, None, None, None, None, None, None))


async def write(
    conn: asyncpg.Connection,
    *,
    org_internal_id: int,
    organization_id: str,
    user_internal_id: int,
    device_internal_id: int,
    device_id: uuid.UUID,
    realm_id: uuid.UUID,
    vlob_id: uuid.UUID,
    key_index: int,
    timestamp: datetime.datetime,
    blob: bytes,
    version: int,
    update: bool,
    in_ballpark: bool,
    accepted_webhooks: list[int] | None = None,
) -> VlobWrite | None:
    """Write version `version` of a vlob (vlob_update, or vlob_create: version 1) if every check
    passes: what the statement found and did, None if the organization or the author is gone.
    Raises UniqueViolationError when a concurrent write of the same version won.

    `accepted_webhooks`: None for an organization that is not sequestered; else the webhook
    services that accepted the write (internal ids), and the write waits for the others
    (`VlobWrite.webhooks`)."""
    head = vlob_payload_head(
        organization_id, realm_id, vlob_id, device_id, timestamp, version, blob
    )
    args = (
        org_internal_id,
        user_internal_id,
        device_internal_id,
        realm_id,
        vlob_id,
        # out-of-range values cannot be the realm's: compare with an impossible one
        key_index if key_index <= INT4_MAX else -1,
        timestamp,
        blob,
        in_ballpark,
        version if version <= INT4_MAX else -1,
        NOTIFY_CHANNEL,
        head,
        update,
    )
    row: asyncpg.Record | None
    if accepted_webhooks is None:
        row = await conn.fetchrow(_Q_WRITE, *args)
    else:
        row = await conn.fetchrow(_Q_WRITE_SEQUESTERED, *args, accepted_webhooks)
    if row is None:
        return None
    if row["written"]:
        return WRITTEN
    hooks: tuple[Webhook, ...] = ()
    if accepted_webhooks is not None and row["hook_ids"] is not None:
        hooks = tuple(
            Webhook(*hook)
            for hook in zip(row["hook_ids"], row["hook_service_ids"], row["hook_urls"], strict=True)
        )
    return VlobWrite(
        row["written"],
        row["stale"],
        row["is_expired"],
        row["revoked"],
        WriteFacts(
            row["realm"] is not None,  # realm_found
            row["status"],
            row["role"],
            row["key_index"],
            row["common_ts"],
            row["realm_ts"],
            row["current_version"],
        ),
        hooks,
    )


# --- reads -----------------------------------------------------------------------------------
#
# The common part: $1 org, $2 user, $3 realm_id. No lock (the official server takes none either):
# the reply carries the topic timestamps the client must know to validate what it reads.
#
# `(SELECT $n)` hides a parameter's value from the planner: with the value known (custom plans, the
# first executions of a prepared statement) the estimates would always beat the generic plan's, and
# PostgreSQL would plan the statement again at every execution (about 0.7 ms here).

_READ_CTX = """
WITH r0 AS (
    SELECT id, status, vlob_checkpoint FROM realm WHERE organization = $1 AND realm_id = $3
),
ctx AS MATERIALIZED (
    SELECT
        o.is_expired,
        u.revoked_on IS NOT NULL AS revoked,
        r0.id AS realm,
        r0.status,
        r0.vlob_checkpoint,
        (SELECT m.role FROM realm_member m WHERE m.realm = r0.id AND m.user_ = $2) AS role,
        (SELECT t.last_timestamp FROM topic_common t WHERE t.organization = $1) AS common_ts,
        (SELECT t.last_timestamp FROM topic_realm t WHERE t.realm = r0.id) AS realm_ts
    FROM organization o
    JOIN user_ u ON u.id = $2
    LEFT JOIN r0 ON TRUE
    WHERE o.id = $1
)
"""

# The items come as one row of parallel arrays, in request order, already in their wire form where
# that saves the server work: ids as their 16 bytes (`uuid_send`), `created_on` as the 8 big-endian
# bytes of its microseconds since the epoch (`int8send`; EXTRACT is exact since PostgreSQL 14):
# they become msgpack ext values (codec.ext_uuid / ext_datetime) without a Python conversion each,
# and one row of arrays decodes much faster than a row per item repeating the read facts.
_ITEM_ARRAYS = """
    array_agg(uuid_send(q.vlob_id) ORDER BY q.ord) AS vlob_ids,
    array_agg(v.key_index ORDER BY q.ord) AS key_indexes,
    array_agg(uuid_send(d.device_id) ORDER BY q.ord) AS authors,
    array_agg(v.version ORDER BY q.ord) AS versions,
    array_agg(
        int8send((EXTRACT(EPOCH FROM v.created_on) * 1000000)::int8) ORDER BY q.ord
    ) AS created_ons,
    array_agg(v.blob ORDER BY q.ord) AS blobs
"""

# $4 vlob ids, $5 at (NULL: latest). One row: the facts, then the arrays of the found vlobs (NULL
# when nothing is found or readable).
_Q_READ_BATCH = (
    _READ_CTX
    + f"""
SELECT ctx.*, item.*
FROM ctx
LEFT JOIN LATERAL (
    SELECT {_ITEM_ARRAYS}
    FROM unnest((SELECT $4::uuid[])) WITH ORDINALITY AS q(vlob_id, ord)
    JOIN LATERAL (
        SELECT a.key_index, a.author, a.version, a.created_on, a.blob FROM vlob_atom a
        WHERE a.realm = ctx.realm AND a.vlob_id = q.vlob_id
            AND ($5::timestamptz IS NULL OR a.created_on <= $5::timestamptz)
        ORDER BY a.version DESC
        LIMIT 1
    ) v ON TRUE
    JOIN device d ON d.id = v.author
    WHERE ctx.role IS NOT NULL AND ctx.status <> 'DELETED'
) item ON TRUE
"""
)

# $4 vlob ids, $5 versions. One index lookup per item: as a plain join, the generic plan may
# hash every version of the realm instead (issue 17); LIMIT 1 (the key is unique) keeps it lateral.
_Q_READ_VERSIONS = (
    _READ_CTX
    + f"""
SELECT ctx.*, item.*
FROM ctx
LEFT JOIN LATERAL (
    SELECT {_ITEM_ARRAYS}
    FROM unnest((SELECT $4::uuid[]), (SELECT $5::int[])) WITH ORDINALITY AS q(vlob_id, version, ord)
    JOIN LATERAL (
        SELECT a.key_index, a.author, a.version, a.created_on, a.blob FROM vlob_atom a
        WHERE a.realm = ctx.realm AND a.vlob_id = q.vlob_id AND a.version = q.version
        LIMIT 1
    ) v ON TRUE
    JOIN device d ON d.id = v.author
    WHERE ctx.role IS NOT NULL AND ctx.status <> 'DELETED'
) item ON TRUE
"""
)

# $4 last checkpoint. Each vlob changed since, once: its latest version (versions only grow along
# the checkpoints), ordered by its first change in that range (ids as their 16 bytes, see
# _ITEM_ARRAYS); and the last checkpoint.
_Q_POLL_CHANGES = (
    _READ_CTX
    + """
SELECT ctx.*, c.vlob_ids, c.versions, c.last_checkpoint
FROM ctx
LEFT JOIN LATERAL (
    SELECT
        array_agg(uuid_send(g.vlob_id) ORDER BY g.first_checkpoint) AS vlob_ids,
        array_agg(g.version ORDER BY g.first_checkpoint) AS versions,
        max(g.last_checkpoint) AS last_checkpoint
    FROM (
        SELECT u.vlob_id, max(u.version) AS version, min(u.checkpoint) AS first_checkpoint,
            max(u.checkpoint) AS last_checkpoint
        FROM realm_vlob_update u
        WHERE u.realm = ctx.realm AND u.checkpoint > (SELECT $4::bigint)
            AND ctx.role IS NOT NULL AND ctx.status <> 'DELETED'
        GROUP BY u.vlob_id
    ) g
) c ON TRUE
"""
)


class ReadFacts(NamedTuple):
    """What a read statement found: the author's state now, whether the realm exists and may be
    read by the author (`role` None: not a member), the topics' timestamps."""

    is_expired: bool
    revoked: bool
    realm_found: bool
    status: str | None
    role: str | None
    common_ts: datetime.datetime | None
    realm_ts: datetime.datetime | None


class VlobItems(NamedTuple):
    """read_batch / read_versions: the facts and the items (wire form, see `items_of`)."""

    facts: ReadFacts
    items: list[tuple[Any, ...]]


class VlobChanges(NamedTuple):
    """poll_changes: the facts, then each changed vlob (id, latest version) in order of first
    change, in wire form (the id a msgpack ext value; a `Flat` list), and the last change's
    checkpoint (None: no change)."""

    facts: ReadFacts
    changes: list[tuple[Any, int]]
    last_checkpoint: int | None


def _read_facts(row: asyncpg.Record) -> ReadFacts:
    # positional: this runs on every read (keywords cost about twice as much)
    return ReadFacts(
        row["is_expired"],
        row["revoked"],
        row["realm"] is not None,  # realm_found
        row["status"],
        row["role"],
        row["common_ts"],
        row["realm_ts"],
    )


async def read_batch(
    conn: asyncpg.Connection,
    org_internal_id: int,
    user_internal_id: int,
    realm_id: uuid.UUID,
    vlob_ids: Sequence[uuid.UUID],
    at: datetime.datetime | None,
) -> VlobItems | None:
    """The read facts then, when readable, the latest version (at `at`) of each requested vlob
    that has one. None if the organization or user is gone."""
    row: asyncpg.Record | None = await conn.fetchrow(
        _Q_READ_BATCH, org_internal_id, user_internal_id, realm_id, vlob_ids, at
    )
    return None if row is None else VlobItems(_read_facts(row), items_of(row))


async def read_versions(
    conn: asyncpg.Connection,
    org_internal_id: int,
    user_internal_id: int,
    realm_id: uuid.UUID,
    items: Sequence[tuple[uuid.UUID, int]],
) -> VlobItems | None:
    """Like read_batch, for explicit (vlob_id, version) pairs (versions out of range are not
    sent)."""
    ids = [vlob_id for vlob_id, version in items if 1 <= version <= INT4_MAX]
    versions = [version for _, version in items if 1 <= version <= INT4_MAX]
    row: asyncpg.Record | None = await conn.fetchrow(
        _Q_READ_VERSIONS, org_internal_id, user_internal_id, realm_id, ids, versions
    )
    return None if row is None else VlobItems(_read_facts(row), items_of(row))


async def poll_changes(
    conn: asyncpg.Connection,
    org_internal_id: int,
    user_internal_id: int,
    realm_id: uuid.UUID,
    last_checkpoint: int,
) -> VlobChanges | None:
    """The read facts, then the changes after `last_checkpoint`. None if the organization or user
    is gone."""
    row: asyncpg.Record | None = await conn.fetchrow(
        _Q_POLL_CHANGES, org_internal_id, user_internal_id, realm_id, min(last_checkpoint, INT8_MAX)
    )
    if row is None:
        return None
    vlob_ids = row["vlob_ids"]
    if vlob_ids is None:
        return VlobChanges(_read_facts(row), [], None)
    return VlobChanges(
        _read_facts(row),
        Flat(zip(map(ext_uuid, vlob_ids), row["versions"], strict=True)),
        row["last_checkpoint"],
    )


def items_of(row: asyncpg.Record) -> list[tuple[Any, ...]]:
    """The `items` of a read reply: (vlob_id, key_index, author, version, created_on, blob), ids and
    timestamps as msgpack ext values (a `Flat` list: encode_rep takes it as is)."""
    vlob_ids = row["vlob_ids"]
    if vlob_ids is None:
        return Flat()
    return Flat(
        zip(
            map(ext_uuid, vlob_ids),
            row["key_indexes"],
            map(ext_uuid, row["authors"]),
            row["versions"],
            map(ext_datetime, row["created_ons"]),
            row["blobs"],
            strict=True,
        )
    )
