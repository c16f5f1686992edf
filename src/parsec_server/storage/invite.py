"""Invitations: rows of `invitation`, with what the commands need about their author and claimer.

An invitation is PENDING until it is completed (FINISHED) or cancelled (CANCELLED); both are
terminal and recorded in `deleted_on` / `deleted_reason`. A SHAMIR_RECOVERY invitation whose setup
was deleted counts as cancelled even if its row says otherwise (the setup deletion also marks its
pending invitations).

Creation is serialised per organization with a transaction-level advisory lock: a pending invitation
for the same claimer is reused instead of creating a second one (protocol.md §4.7).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, TypedDict

import asyncpg
import msgpack

from parsec_server.protocol.codec import ext_uuid
from parsec_server.protocol.ids import HumanHandle
from parsec_server.protocol.registry import Flat

InvitationType = Literal["USER", "DEVICE", "SHAMIR_RECOVERY"]
USER: Final = "USER"
DEVICE: Final = "DEVICE"
SHAMIR_RECOVERY: Final = "SHAMIR_RECOVERY"

InvitationStatus = Literal["PENDING", "FINISHED", "CANCELLED"]
PENDING: Final = "PENDING"
FINISHED: Final = "FINISHED"
CANCELLED: Final = "CANCELLED"

# pg_advisory_xact_lock(<namespace>, <organization internal id>): invitation creation.
_LOCK_NAMESPACE_INVITATION_CREATE = 0x1A71


class CreatedByUser(TypedDict):
    """`InvitationCreatedBy` variant `USER` (invite_info, invite_list)."""

    type: Literal["USER"]
    user_id: uuid.UUID
    human_handle: HumanHandle


class CreatedByExternalService(TypedDict):
    """`InvitationCreatedBy` variant `EXTERNAL_SERVICE`."""

    type: Literal["EXTERNAL_SERVICE"]
    service_label: str


@dataclass(frozen=True, slots=True)
class Invitation:
    internal_id: int
    organization_internal_id: int
    token: bytes
    type: InvitationType
    created_on: datetime
    created_by_user_id: uuid.UUID | None  # None: created by an external service
    created_by_human: HumanHandle | None
    created_by_service_label: str | None
    claimer_email: str | None  # USER
    claimer_user_internal_id: int | None  # DEVICE, SHAMIR_RECOVERY
    claimer_user_id: uuid.UUID | None
    claimer_human: HumanHandle | None
    shamir_setup_internal_id: int | None  # SHAMIR_RECOVERY
    shamir_threshold: int | None
    shamir_created_on: datetime | None
    shamir_deleted_on: datetime | None
    deleted_on: datetime | None
    deleted_reason: Literal["FINISHED", "CANCELLED"] | None

    @property
    def status(self) -> InvitationStatus:
        if self.deleted_reason is not None:
            return self.deleted_reason
        if self.shamir_deleted_on is not None:
            return CANCELLED
        return PENDING

    @property
    def is_deleted(self) -> bool:
        """Completed or cancelled: the claimer's requests answer HTTP 410."""
        return self.status != PENDING

    @property
    def is_finished(self) -> bool:
        return self.status == FINISHED

    @property
    def is_cancelled(self) -> bool:
        return self.status == CANCELLED

    def created_by(self) -> CreatedByUser | CreatedByExternalService:
        """The `InvitationCreatedBy` union of invite_info / invite_list."""
        if self.created_by_user_id is not None:
            assert self.created_by_human is not None
            return {
                "type": "USER",
                "user_id": self.created_by_user_id,
                "human_handle": self.created_by_human,
            }
        return {"type": "EXTERNAL_SERVICE", "service_label": self.created_by_service_label or ""}


_SELECT = """
SELECT
    i.id, i.organization, i.token, i.type, i.created_on, i.deleted_on, i.deleted_reason,
    i.created_by_service_label, i.claimer_email, i.claimer_user, i.shamir_recovery_setup,
    cu.user_id AS created_by_user_id, ch.email AS created_by_email, ch.label AS created_by_label,
    u.user_id AS claimer_user_id, h.email AS claimer_email_of_user, h.label AS claimer_label,
    s.threshold AS shamir_threshold, s.created_on AS shamir_created_on,
    s.deleted_on AS shamir_deleted_on
FROM invitation i
LEFT JOIN device cd ON cd.id = i.created_by_device
LEFT JOIN user_ cu ON cu.id = cd.user_
LEFT JOIN human ch ON ch.id = cu.human
LEFT JOIN user_ u ON u.id = i.claimer_user
LEFT JOIN human h ON h.id = u.human
LEFT JOIN shamir_recovery_setup s ON s.id = i.shamir_recovery_setup
"""

_Q_BY_TOKEN = _SELECT + "WHERE i.organization = $1 AND i.token = $2"
_Q_LOCK_BY_TOKEN = _Q_BY_TOKEN + " FOR UPDATE OF i"
_Q_LOCK_BY_ATTEMPT = (
    _SELECT
    + """
JOIN greeting_session gs ON gs.invitation = i.id
JOIN greeting_attempt ga ON ga.session = gs.id
WHERE i.organization = $1 AND ga.greeting_attempt_id = $2
FOR UPDATE OF i
"""
)


def _human(email: str | None, label: str | None) -> HumanHandle | None:
    return None if email is None or label is None else HumanHandle(email, label)


def _from_row(row: asyncpg.Record) -> Invitation:
    return Invitation(
        internal_id=row["id"],
        organization_internal_id=row["organization"],
        token=bytes(row["token"]),
        type=row["type"],
        created_on=row["created_on"],
        created_by_user_id=row["created_by_user_id"],
        created_by_human=_human(row["created_by_email"], row["created_by_label"]),
        created_by_service_label=row["created_by_service_label"],
        claimer_email=row["claimer_email"],
        claimer_user_internal_id=row["claimer_user"],
        claimer_user_id=row["claimer_user_id"],
        claimer_human=_human(row["claimer_email_of_user"], row["claimer_label"]),
        shamir_setup_internal_id=row["shamir_recovery_setup"],
        shamir_threshold=row["shamir_threshold"],
        shamir_created_on=row["shamir_created_on"],
        shamir_deleted_on=row["shamir_deleted_on"],
        deleted_on=row["deleted_on"],
        deleted_reason=row["deleted_reason"],
    )


async def get_for_claimer(
    conn: asyncpg.Connection, org_internal_id: int, token: bytes
) -> Invitation | None:
    """The invitation a claimer authenticates with (`/invited/<org>`, `Bearer <token hex>`)."""
    row = await conn.fetchrow(_Q_BY_TOKEN, org_internal_id, token)
    return None if row is None else _from_row(row)


async def lock(conn: asyncpg.Connection, org_internal_id: int, token: bytes) -> Invitation | None:
    """Read and lock (FOR UPDATE) an invitation: every state change of one invitation, its greeting
    included, is serialised on this row lock."""
    row = await conn.fetchrow(_Q_LOCK_BY_TOKEN, org_internal_id, token)
    return None if row is None else _from_row(row)


async def lock_by_greeting_attempt(
    conn: asyncpg.Connection, org_internal_id: int, greeting_attempt_id: uuid.UUID
) -> Invitation | None:
    row = await conn.fetchrow(_Q_LOCK_BY_ATTEMPT, org_internal_id, greeting_attempt_id)
    return None if row is None else _from_row(row)


# --- invite_list ---------------------------------------------------------------------------------
#
# One statement, one round trip: the author's facts, then the invitations the author may see, as
# one row of parallel arrays already in their wire form (tokens as bytes, `created_on` as the 8
# big-endian bytes of its microseconds since the epoch, ids as their 16 bytes: see storage/vlob.py).
# Which invitations (protocol.md §4.7 invite_list), three disjoint branches, each reaching its rows
# through an index bounded by the organization or by the author:
# * USER: all of the organization's, for an ADMIN (a one-time filter: skipped for the others);
# * DEVICE: the author's own (`invitation_claimer_user`);
# * SHAMIR_RECOVERY: those of the setups the author holds a share of (`shamir_recovery_share_
#   recipient`, then the setup's user: a recovery invitation's claimer is its setup's user, as
#   invite_new_shamir_recovery and the adoption of an official database both write it).
# The authors of the invitations are read once per distinct device (an ADMIN's list is mostly made
# by a few devices), each table by its primary key: LATERAL ... LIMIT 1 (OFFSET 0 where several
# rows match) keeps these lookups from being turned into joins, which generic plans hashed over
# every user and human of the server.
# The arrays are aggregated from one sorted subquery (one sort, not one per array; PostgreSQL
# aggregates the rows of a sorted subquery in its order when nothing else happens at that level).
_Q_LIST = """
WITH author AS MATERIALIZED (
    SELECT u.current_profile = 'ADMIN' AS is_admin, u.revoked_on IS NOT NULL AS is_revoked,
        (SELECT o.is_expired FROM organization o WHERE o.id = u.organization) AS is_expired
    FROM user_ u
    WHERE u.id = $2
),
visible AS MATERIALIZED (
    SELECT i.id, i.token, i.type, i.created_on, i.created_by_device, i.created_by_service_label,
        i.claimer_email, NULL::uuid AS claimer_user_id, NULL::timestamptz AS shamir_created_on,
        COALESCE(i.deleted_reason, 'PENDING') AS status
    FROM invitation i
    WHERE i.organization = $1 AND i.type = 'USER' AND (SELECT a.is_admin FROM author a)
    UNION ALL
    SELECT i.id, i.token, i.type, i.created_on, i.created_by_device, i.created_by_service_label,
        NULL, NULL, NULL, COALESCE(i.deleted_reason, 'PENDING')
    FROM invitation i
    WHERE i.claimer_user = $2 AND i.type = 'DEVICE' AND i.organization = $1
    UNION ALL
    SELECT i.id, i.token, i.type, i.created_on, i.created_by_device, i.created_by_service_label,
        NULL, cu.user_id, s.created_on,
        COALESCE(i.deleted_reason, CASE WHEN s.deleted_on IS NULL THEN 'PENDING' ELSE 'CANCELLED' END)
    FROM shamir_recovery_share sh
    CROSS JOIN LATERAL (
        SELECT s.id, s.user_, s.created_on, s.deleted_on FROM shamir_recovery_setup s
        WHERE s.id = sh.setup AND s.organization = $1 LIMIT 1
    ) s
    CROSS JOIN LATERAL (
        SELECT cu.user_id FROM user_ cu WHERE cu.id = s.user_ LIMIT 1
    ) cu
    CROSS JOIN LATERAL (
        SELECT * FROM invitation i
        WHERE i.claimer_user = s.user_ AND i.shamir_recovery_setup = s.id
            AND i.type = 'SHAMIR_RECOVERY' AND i.organization = $1
        OFFSET 0
    ) i
    WHERE sh.recipient = $2
),
creators AS (
    SELECT c.device, u.user_id, h.email, h.label
    FROM (
        SELECT DISTINCT v.created_by_device AS device FROM visible v
        WHERE v.created_by_device IS NOT NULL
    ) c
    CROSS JOIN LATERAL (SELECT d.user_ FROM device d WHERE d.id = c.device LIMIT 1) d
    CROSS JOIN LATERAL (SELECT u.user_id, u.human FROM user_ u WHERE u.id = d.user_ LIMIT 1) u
    CROSS JOIN LATERAL (SELECT h.email, h.label FROM human h WHERE h.id = u.human LIMIT 1) h
)
SELECT a.is_expired, a.is_revoked, items.*, authors.*
FROM author a
LEFT JOIN LATERAL (
    SELECT array_agg(v.type) AS types, array_agg(v.token) AS tokens,
        array_agg(int8send((EXTRACT(EPOCH FROM v.created_on) * 1000000)::int8)) AS created_ons,
        array_agg(v.created_by_device) AS created_by_devices,
        array_agg(v.created_by_service_label) AS service_labels,
        array_agg(v.claimer_email) AS claimer_emails,
        array_agg(uuid_send(v.claimer_user_id)) AS claimer_user_ids,
        array_agg(int8send((EXTRACT(EPOCH FROM v.shamir_created_on) * 1000000)::int8))
            AS shamir_created_ons,
        array_agg(v.status) AS statuses
    FROM (SELECT * FROM visible ORDER BY created_on, id) v
) items ON TRUE
LEFT JOIN LATERAL (
    SELECT array_agg(c.device) AS author_devices, array_agg(uuid_send(c.user_id)) AS author_ids,
        array_agg(c.email) AS author_emails, array_agg(c.label) AS author_labels
    FROM creators c
) authors ON TRUE
"""


@dataclass(frozen=True, slots=True)
class InvitationList:
    """invite_list's facts: the author as the database sees it now, and the reply's items."""

    org_expired: bool
    author_revoked: bool
    items: Flat


async def list_visible(
    conn: asyncpg.Connection, org_internal_id: int, user_internal_id: int
) -> InvitationList | None:
    """The invitations the user may see (his profile read in the same statement), oldest first, as
    invite_list's `invitations` (`InviteListItem` maps in their wire order: discriminant first,
    then the fields sorted by name, so that `encode_rep` packs them as they are). None if the user
    is gone."""
    row = await conn.fetchrow(_Q_LIST, org_internal_id, user_internal_id)
    if row is None:
        return None
    return InvitationList(row["is_expired"], row["is_revoked"], _list_items(row))


# codec.ext_datetime / ext_uuid without a call per item (tens of thousands of items per reply).
_tuple_new = tuple.__new__
_ExtType = msgpack.ExtType


def _list_items(row: asyncpg.Record) -> Flat:
    items = Flat()
    types = row["types"]
    if types is None:
        return items
    by_device: dict[int, dict[str, Any]] = {
        device: {"type": "USER", "human_handle": HumanHandle(email, label), "user_id": ext_uuid(u)}
        for device, u, email, label in zip(
            row["author_devices"] or (),
            row["author_ids"] or (),
            row["author_emails"] or (),
            row["author_labels"] or (),
            strict=True,
        )
    }
    by_service: dict[str | None, dict[str, Any]] = {}
    append = items.append
    tuple_new, ext = _tuple_new, _ExtType
    for type_, token, created_on, device, service, email, claimer, shamir_on, status in zip(
        types,
        row["tokens"],
        row["created_ons"],
        row["created_by_devices"],
        row["service_labels"],
        row["claimer_emails"],
        row["claimer_user_ids"],
        row["shamir_created_ons"],
        row["statuses"],
        strict=True,
    ):
        if device is not None:
            created_by = by_device[device]
        else:
            created_by = by_service.get(service) or by_service.setdefault(
                service, {"type": "EXTERNAL_SERVICE", "service_label": service or ""}
            )
        if type_ == USER:
            append(
                {
                    "type": type_,
                    "claimer_email": email,
                    "created_by": created_by,
                    "created_on": tuple_new(ext, (1, created_on)),
                    "status": status,
                    "token": token,
                }
            )
        elif type_ == DEVICE:
            append(
                {
                    "type": type_,
                    "created_by": created_by,
                    "created_on": tuple_new(ext, (1, created_on)),
                    "status": status,
                    "token": token,
                }
            )
        else:
            append(
                {
                    "type": type_,
                    "claimer_user_id": tuple_new(ext, (2, claimer)),
                    "created_by": created_by,
                    "created_on": tuple_new(ext, (1, created_on)),
                    "shamir_recovery_created_on": tuple_new(ext, (1, shamir_on)),
                    "status": status,
                    "token": token,
                }
            )
    return items


# --- creation ------------------------------------------------------------------------------------

_Q_LOCK_CREATE = "SELECT pg_advisory_xact_lock($1, $2::INTEGER)"

_Q_PENDING_USER = """
SELECT token FROM invitation
WHERE organization = $1 AND type = 'USER' AND claimer_email = $2 AND deleted_on IS NULL
LIMIT 1
"""
_Q_PENDING_DEVICE = """
SELECT token FROM invitation
WHERE organization = $1 AND type = 'DEVICE' AND claimer_user = $2 AND deleted_on IS NULL
LIMIT 1
"""
_Q_PENDING_SHAMIR = """
SELECT token FROM invitation
WHERE organization = $1 AND type = 'SHAMIR_RECOVERY' AND shamir_recovery_setup = $2
    AND deleted_on IS NULL
LIMIT 1
"""
_Q_INSERT = """
INSERT INTO invitation (organization, token, type, created_on, created_by_device, claimer_email,
                        claimer_user, shamir_recovery_setup)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""


async def lock_creation(conn: asyncpg.Connection, org_internal_id: int) -> None:
    """Serialise invitation creation in one organization (held until the transaction ends)."""
    await conn.execute(_Q_LOCK_CREATE, _LOCK_NAMESPACE_INVITATION_CREATE, org_internal_id % 2**31)


async def pending_token(
    conn: asyncpg.Connection,
    org_internal_id: int,
    type_: InvitationType,
    *,
    claimer_email: str | None = None,
    claimer_user_internal_id: int | None = None,
    shamir_setup_internal_id: int | None = None,
) -> bytes | None:
    """The token of the pending invitation for the same claimer, to be reused (call under
    lock_creation)."""
    if type_ == USER:
        token = await conn.fetchval(_Q_PENDING_USER, org_internal_id, claimer_email)
    elif type_ == DEVICE:
        token = await conn.fetchval(_Q_PENDING_DEVICE, org_internal_id, claimer_user_internal_id)
    else:
        token = await conn.fetchval(_Q_PENDING_SHAMIR, org_internal_id, shamir_setup_internal_id)
    return None if token is None else bytes(token)


async def insert(
    conn: asyncpg.Connection,
    org_internal_id: int,
    token: bytes,
    type_: InvitationType,
    created_on: datetime,
    created_by_device_internal_id: int,
    *,
    claimer_email: str | None = None,
    claimer_user_internal_id: int | None = None,
    shamir_setup_internal_id: int | None = None,
) -> None:
    await conn.execute(
        _Q_INSERT,
        org_internal_id,
        token,
        type_,
        created_on,
        created_by_device_internal_id,
        claimer_email,
        claimer_user_internal_id,
        shamir_setup_internal_id,
    )


_Q_MARK_DELETED = """
UPDATE invitation SET deleted_on = $2, deleted_reason = $3 WHERE id = $1 AND deleted_on IS NULL
"""

_Q_CANCEL_FOR_SHAMIR_SETUP = """
UPDATE invitation SET deleted_on = $2, deleted_reason = 'CANCELLED'
WHERE shamir_recovery_setup = $1 AND deleted_on IS NULL
RETURNING token
"""


async def mark_deleted(
    conn: asyncpg.Connection,
    invitation_internal_id: int,
    on: datetime,
    reason: Literal["FINISHED", "CANCELLED"],
) -> None:
    assert reason in (FINISHED, CANCELLED)
    await conn.execute(_Q_MARK_DELETED, invitation_internal_id, on, reason)


async def cancel_for_shamir_setup(
    conn: asyncpg.Connection, setup_internal_id: int, on: datetime
) -> list[bytes]:
    """Cancel the pending invitations of a deleted shamir recovery setup; returns their tokens."""
    return [
        bytes(r["token"])
        for r in await conn.fetch(_Q_CANCEL_FOR_SHAMIR_SETUP, setup_internal_id, on)
    ]


# --- users, as seen by invitations ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserInfo:
    internal_id: int
    user_id: uuid.UUID
    human: HumanHandle
    profile: str
    revoked_on: datetime | None

    @property
    def is_revoked(self) -> bool:
        return self.revoked_on is not None


_USER_SELECT = """
SELECT u.id, u.user_id, h.email, h.label, u.current_profile, u.revoked_on
FROM user_ u JOIN human h ON h.id = u.human
"""
_Q_USER_BY_ID = _USER_SELECT + "WHERE u.organization = $1 AND u.user_id = $2"
_Q_USER_BY_INTERNAL_ID = _USER_SELECT + "WHERE u.id = $1"
_Q_ACTIVE_USER_BY_EMAIL = (
    _USER_SELECT + "WHERE u.organization = $1 AND h.email = $2 AND u.revoked_on IS NULL LIMIT 1"
)


def _user_from_row(row: asyncpg.Record) -> UserInfo:
    return UserInfo(
        row["id"],
        row["user_id"],
        HumanHandle(row["email"], row["label"]),
        row["current_profile"],
        row["revoked_on"],
    )


_Q_AUTHOR = """
SELECT u.id, u.user_id, h.email, h.label, u.current_profile, u.revoked_on, o.is_expired
FROM user_ u JOIN human h ON h.id = u.human JOIN organization o ON o.id = u.organization
WHERE u.id = $1
"""


async def get_author(
    conn: asyncpg.Connection, user_internal_id: int
) -> tuple[UserInfo, bool] | None:
    """The requesting user as the database sees it now, and whether its organization has expired."""
    row = await conn.fetchrow(_Q_AUTHOR, user_internal_id)
    return None if row is None else (_user_from_row(row), row["is_expired"])


async def get_user(
    conn: asyncpg.Connection, org_internal_id: int, user_id: uuid.UUID
) -> UserInfo | None:
    row = await conn.fetchrow(_Q_USER_BY_ID, org_internal_id, user_id)
    return None if row is None else _user_from_row(row)


async def get_user_by_internal_id(
    conn: asyncpg.Connection, user_internal_id: int
) -> UserInfo | None:
    row = await conn.fetchrow(_Q_USER_BY_INTERNAL_ID, user_internal_id)
    return None if row is None else _user_from_row(row)


async def get_active_user_by_email(
    conn: asyncpg.Connection, org_internal_id: int, email: str
) -> UserInfo | None:
    row = await conn.fetchrow(_Q_ACTIVE_USER_BY_EMAIL, org_internal_id, email)
    return None if row is None else _user_from_row(row)


# --- who may greet --------------------------------------------------------------------------------

_Q_IS_RECIPIENT = (
    "SELECT EXISTS (SELECT 1 FROM shamir_recovery_share WHERE setup = $1 AND recipient = $2)"
)
_Q_ACTIVE_RECIPIENTS = """
SELECT u.user_id FROM shamir_recovery_share sh JOIN user_ u ON u.id = sh.recipient
WHERE sh.setup = $1 AND u.revoked_on IS NULL
"""


async def is_greeter_allowed(
    conn: asyncpg.Connection, invitation: Invitation, user: UserInfo
) -> bool:
    """USER: any current ADMIN; DEVICE: the claimer himself; SHAMIR_RECOVERY: a recipient of the
    setup. (Revocation is checked separately: it has its own statuses.)"""
    if invitation.type == USER:
        return user.profile == "ADMIN"
    if invitation.type == DEVICE:
        return invitation.claimer_user_internal_id == user.internal_id
    return bool(
        await conn.fetchval(_Q_IS_RECIPIENT, invitation.shamir_setup_internal_id, user.internal_id)
    )


def is_claimer(invitation: Invitation, user: UserInfo) -> bool:
    """The user the invitation is for (same email for USER invitations)."""
    if invitation.type == USER:
        return invitation.claimer_email == user.human.email
    return invitation.claimer_user_internal_id == user.internal_id


async def possible_greeters(
    conn: asyncpg.Connection,
    invitation_type: InvitationType,
    org_internal_id: int,
    *,
    claimer_user_id: uuid.UUID | None = None,
    shamir_setup_internal_id: int | None = None,
) -> list[uuid.UUID] | None:
    """Who receives INVITATION events; None: every ADMIN (USER invitations, decided per stream)."""
    if invitation_type == USER:
        return None
    if invitation_type == DEVICE:
        assert claimer_user_id is not None
        return [claimer_user_id]
    return [r["user_id"] for r in await conn.fetch(_Q_ACTIVE_RECIPIENTS, shamir_setup_internal_id)]


# --- invite_info details --------------------------------------------------------------------------

# Non-revoked administrators, with the last time each joined a greeting attempt of this invitation.
# Lists are ordered by label in code point order (COLLATE "C"), like the official server.
_Q_GREETING_ADMINISTRATORS = """
SELECT u.user_id, h.email, h.label,
    (SELECT max(ga.greeter_joined_on)
     FROM greeting_session gs JOIN greeting_attempt ga ON ga.session = gs.id
     WHERE gs.invitation = $2 AND gs.greeter = u.id) AS last_joined
FROM user_ u JOIN human h ON h.id = u.human
WHERE u.organization = $1 AND u.current_profile = 'ADMIN' AND u.revoked_on IS NULL
ORDER BY h.label COLLATE "C", u.user_id
"""

_Q_SHAMIR_RECIPIENTS = """
SELECT u.user_id, h.email, h.label, sh.shares, u.revoked_on
FROM shamir_recovery_share sh JOIN user_ u ON u.id = sh.recipient JOIN human h ON h.id = u.human
WHERE sh.setup = $1
ORDER BY h.label COLLATE "C", u.user_id
"""


class GreetingAdministrator(TypedDict):
    """An item of invite_info's `administrators` (USER invitations)."""

    user_id: uuid.UUID
    human_handle: HumanHandle
    online_status: Literal["UNKNOWN"]
    last_greeting_attempt_joined_on: datetime | None


class ShamirRecipient(TypedDict):
    """An item of invite_info's `recipients` (SHAMIR_RECOVERY invitations)."""

    user_id: uuid.UUID
    human_handle: HumanHandle
    shares: int
    revoked_on: datetime | None
    online_status: Literal["UNKNOWN"]


async def greeting_administrators(
    conn: asyncpg.Connection, invitation: Invitation
) -> list[GreetingAdministrator]:
    rows = await conn.fetch(
        _Q_GREETING_ADMINISTRATORS, invitation.organization_internal_id, invitation.internal_id
    )
    return [
        {
            "user_id": r["user_id"],
            "human_handle": HumanHandle(r["email"], r["label"]),
            "online_status": "UNKNOWN",
            "last_greeting_attempt_joined_on": r["last_joined"],
        }
        for r in rows
    ]


async def shamir_recipients(
    conn: asyncpg.Connection, setup_internal_id: int
) -> list[ShamirRecipient]:
    return [
        {
            "user_id": r["user_id"],
            "human_handle": HumanHandle(r["email"], r["label"]),
            "shares": r["shares"],
            "revoked_on": r["revoked_on"],
            "online_status": "UNKNOWN",
        }
        for r in await conn.fetch(_Q_SHAMIR_RECIPIENTS, setup_internal_id)
    ]
