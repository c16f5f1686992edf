"""Topic locks and timestamps (protocol.md §4.2): the first statement of every certificate command.

Each organization has a `topic_common` row (created with the organization, at the epoch until
bootstrap) and, when sequestered, a `topic_sequester` row. A command that reads a topic's
`last_timestamp` to enforce `require_greater_timestamp` locks the row `FOR SHARE`; a command that
adds a certificate to the topic locks it `FOR UPDATE` and bumps it in the same transaction. Lock
order: topic_common, topic_sequester, topic_shamir_recovery, topic_realm (by realm id), then realm
rows.

`lock_common` also re-reads the author (protocol.md §4.1 step 1: checked by the handshake and again
inside the transaction). The author's `user_` row is locked `FOR SHARE` in the same statement: a
revocation updates that row while holding `topic_common FOR UPDATE`, so a command waiting behind a
revocation sees the revoked state once it gets the lock (a joined row that is not locked would come
from the statement's snapshot, taken before the wait).

    lock = await topics.lock_common(conn, org.internal_id, device.device_internal_id, write=False)
    if lock is None or lock.revoked: -> HandshakeError(461)   (the author vanished or was revoked)
    if lock.org_expired:            -> HandshakeError(460)
    if ts <= lock.last_common:      -> require_greater_timestamp(lock.last_common)
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg

from parsec_server.events.bus import CHANNEL, Event

__all__ = [
    "EPOCH",
    "CommonLock",
    "event_payloads",
    "last_common",
    "last_sequester",
    "lock_common",
    "lock_sequester",
]

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


@dataclass(frozen=True, slots=True)
class CommonLock:
    """State read under the common topic lock."""

    last_common: datetime.datetime
    org_expired: bool
    user_internal_id: int
    user_id: uuid.UUID
    profile: str  # current profile: ADMIN | STANDARD | OUTSIDER
    revoked: bool


_Q_LOCK_COMMON = """
SELECT tc.last_timestamp, o.is_expired, u.id AS user_internal_id, u.user_id, u.current_profile,
    u.revoked_on IS NOT NULL AS revoked
FROM topic_common tc
JOIN organization o ON o.id = tc.organization
JOIN device d ON d.organization = tc.organization AND d.id = $2
JOIN user_ u ON u.id = d.user_
WHERE tc.organization = $1
"""
_Q_LOCK_COMMON_WRITE = _Q_LOCK_COMMON + "FOR UPDATE OF tc FOR SHARE OF u"
_Q_LOCK_COMMON_READ = _Q_LOCK_COMMON + "FOR SHARE OF tc, u"


async def lock_common(
    conn: asyncpg.Connection, org_internal_id: int, device_internal_id: int, *, write: bool
) -> CommonLock | None:
    """Lock the organization's common topic (FOR UPDATE when `write`, else FOR SHARE) and read the
    author.

    None when the organization has no common topic or the device is unknown (never for an
    authenticated device of an existing organization)."""
    row = await conn.fetchrow(
        _Q_LOCK_COMMON_WRITE if write else _Q_LOCK_COMMON_READ, org_internal_id, device_internal_id
    )
    if row is None:
        return None
    return CommonLock(
        last_common=row["last_timestamp"],
        org_expired=row["is_expired"],
        user_internal_id=row["user_internal_id"],
        user_id=row["user_id"],
        profile=row["current_profile"],
        revoked=row["revoked"],
    )


async def last_common(conn: asyncpg.Connection, org_internal_id: int) -> datetime.datetime:
    """The common topic timestamp, no lock (the `needed_common_certificate_timestamp` of read
    replies)."""
    ts: datetime.datetime | None = await conn.fetchval(
        "SELECT last_timestamp FROM topic_common WHERE organization = $1", org_internal_id
    )
    return EPOCH if ts is None else ts


async def lock_sequester(
    conn: asyncpg.Connection, org_internal_id: int, *, write: bool
) -> datetime.datetime | None:
    """Lock the sequester topic; None when the organization is not sequestered (no row)."""
    lock = "FOR UPDATE" if write else "FOR SHARE"
    ts: datetime.datetime | None = await conn.fetchval(
        f"SELECT last_timestamp FROM topic_sequester WHERE organization = $1 {lock}",
        org_internal_id,
    )
    return ts


async def last_sequester(
    conn: asyncpg.Connection, org_internal_id: int
) -> datetime.datetime | None:
    ts: datetime.datetime | None = await conn.fetchval(
        "SELECT last_timestamp FROM topic_sequester WHERE organization = $1", org_internal_id
    )
    return ts


def event_payloads(events: Iterable[Event]) -> list[str]:
    """NOTIFY payloads for events sent from inside a larger statement:

        notified AS (SELECT pg_notify($channel, p) FROM unnest($payloads::text[]) AS p WHERE <gate>)

    (the same wire format as `events.bus.publish`, channel `events.bus.CHANNEL`)."""
    return [json.dumps(e, separators=(",", ":")) for e in events]


NOTIFY_CHANNEL = CHANNEL
