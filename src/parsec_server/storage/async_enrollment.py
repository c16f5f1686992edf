"""Asynchronous enrollment requests (table `async_enrollment`, migration 0006).

A request is SUBMITTED, then ACCEPTED, REJECTED or CANCELLED, once. Concurrency:

* submit: at most one SUBMITTED request per email. Creation is serialised per organization by a
  transaction-level advisory lock taken after the common topic `FOR SHARE` (the official server's
  order): a user created meanwhile (user_create, accept: topic `FOR UPDATE`) is seen by the
  email_already_enrolled check.
* cancel / reject / accept: the request's row is locked `FOR UPDATE` and changed only while it is
  SUBMITTED, so two of them racing leave one winner; the others see `enrollment_no_longer_available`.

Events (ASYNC_ENROLLMENT, to the organization's ADMINs) are NOTIFY'd by the writing statement and
leave at commit.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Literal

import asyncpg

from parsec_server.events.bus import Event
from parsec_server.storage.topics import NOTIFY_CHANNEL, event_payloads
from parsec_server.storage.user import ACTIVE_USERS_LIMIT_REACHED

__all__ = [
    "Accepted",
    "Cancelled",
    "EmailAlreadySubmitted",
    "EndRefusal",
    "Enrollment",
    "EnrollmentInfo",
    "OpenBaoSignature",
    "Pending",
    "PkiSignature",
    "Rejected",
    "Signature",
    "SignatureType",
    "SubmitRefusal",
    "Submitted",
    "active_users_limit_reached",
    "cancel",
    "get_info",
    "list_submitted",
    "lock_for_accept",
    "mark_accepted",
    "reject",
    "submit",
]

# pg_advisory_xact_lock(<namespace>, <organization internal id>): request creation.
_LOCK_NAMESPACE_SUBMIT = 0x1A72

SignatureType = Literal["PKI", "OPEN_BAO"]


@dataclass(frozen=True, slots=True)
class PkiSignature:
    signature: bytes
    algorithm: str
    x509_chain: list[bytes]  # DER, leaf first, then each issuer


@dataclass(frozen=True, slots=True)
class OpenBaoSignature:
    signature: str
    entity_id: str


Signature = PkiSignature | OpenBaoSignature


def _columns(
    sig: Signature,
) -> tuple[str, bytes | None, str | None, list[bytes] | None, str | None, str | None]:
    """(type, pki signature, pki algorithm, pki chain, openbao signature, openbao entity id)."""
    if isinstance(sig, PkiSignature):
        return "PKI", sig.signature, sig.algorithm, sig.x509_chain, None, None
    return "OPEN_BAO", None, None, None, sig.signature, sig.entity_id


def _signature(
    kind: str,
    pki_signature: bytes | None,
    pki_algorithm: str | None,
    pki_chain: list[bytes] | None,
    openbao_signature: str | None,
    openbao_entity_id: str | None,
) -> Signature:
    if kind == "PKI":
        assert pki_signature is not None and pki_algorithm is not None and pki_chain
        return PkiSignature(pki_signature, pki_algorithm, list(pki_chain))
    assert openbao_signature is not None and openbao_entity_id is not None
    return OpenBaoSignature(openbao_signature, openbao_entity_id)


# --- submit ---------------------------------------------------------------------------------------

# The common topic FOR SHARE, then the creation lock (two statements: a statement's snapshot is
# taken before its locks are granted, so the checks must come in the next one).
_Q_LOCK_SUBMIT = """
WITH common AS (
    SELECT last_timestamp FROM topic_common WHERE organization = $2 FOR SHARE
)
SELECT pg_advisory_xact_lock($1, $2::INTEGER), (SELECT COUNT(*) FROM common)
"""

# $1 org, $2 enrollment_id, $3 email, $4 force, $5 now, $6 payload, $7 signature type,
# $8 pki signature, $9 pki algorithm, $10 pki chain, $11 openbao signature, $12 openbao entity,
# $13 channel, $14 event payloads
_Q_SUBMIT = """
WITH checks AS (
    SELECT
        EXISTS (
            SELECT 1 FROM async_enrollment WHERE organization = $1 AND enrollment_id = $2
        ) AS id_used,
        EXISTS (
            SELECT 1 FROM human h JOIN user_ u ON u.human = h.id
            WHERE h.organization = $1 AND h.email = $3 AND u.revoked_on IS NULL
        ) AS enrolled,
        (
            SELECT MIN(submitted_on) FROM async_enrollment
            WHERE organization = $1 AND requested_email = $3 AND state = 'SUBMITTED'
        ) AS pending_submitted_on
),
gate AS (
    SELECT 1 FROM checks
    WHERE NOT id_used AND NOT enrolled AND (pending_submitted_on IS NULL OR $4)
),
cancelled AS (
    UPDATE async_enrollment SET state = 'CANCELLED', cancelled_on = $5
    WHERE organization = $1 AND requested_email = $3 AND state = 'SUBMITTED'
        AND EXISTS (SELECT 1 FROM gate)
    RETURNING id
),
inserted AS (
    INSERT INTO async_enrollment (
        organization, enrollment_id, submitted_on, submit_payload, requested_email,
        submit_signature_type, submit_pki_signature, submit_pki_algorithm, submit_pki_x509_chain,
        submit_openbao_signature, submit_openbao_entity_id
    )
    SELECT $1, $2, $5, $6, $3, $7, $8, $9, $10, $11, $12 FROM gate
    RETURNING id
),
notified AS (
    SELECT pg_notify($13, p) FROM unnest($14::text[]) AS p WHERE EXISTS (SELECT 1 FROM inserted)
)
SELECT checks.*, (SELECT COUNT(*) FROM cancelled) AS cancelled,
    (SELECT COUNT(*) FROM notified) AS notified
FROM checks
"""


@dataclass(frozen=True, slots=True)
class EmailAlreadySubmitted:
    submitted_on: datetime.datetime


SubmitRefusal = Literal["id_already_used", "email_already_enrolled"] | EmailAlreadySubmitted


async def submit(
    conn: asyncpg.Connection,
    org_internal_id: int,
    enrollment_id: uuid.UUID,
    email: str,
    force: bool,
    now: datetime.datetime,
    payload: bytes,
    signature: Signature,
    events: list[Event],
) -> SubmitRefusal | None:
    """Record a SUBMITTED request (with `force`, cancelling the pending one for the same email):
    None, or the refusal in the official order (id, email enrolled, email submitted)."""
    await conn.fetchrow(_Q_LOCK_SUBMIT, _LOCK_NAMESPACE_SUBMIT, org_internal_id)
    row = await conn.fetchrow(
        _Q_SUBMIT,
        org_internal_id,
        enrollment_id,
        email,
        force,
        now,
        payload,
        *_columns(signature),
        NOTIFY_CHANNEL,
        event_payloads(events),
    )
    assert row is not None
    if row["id_used"]:
        return "id_already_used"
    if row["enrolled"]:
        return "email_already_enrolled"
    if row["pending_submitted_on"] is not None and not force:
        return EmailAlreadySubmitted(row["pending_submitted_on"])
    return None


# --- info -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Submitted:
    submitted_on: datetime.datetime


@dataclass(frozen=True, slots=True)
class Rejected:
    submitted_on: datetime.datetime
    rejected_on: datetime.datetime


@dataclass(frozen=True, slots=True)
class Cancelled:
    submitted_on: datetime.datetime
    cancelled_on: datetime.datetime


@dataclass(frozen=True, slots=True)
class Accepted:
    submitted_on: datetime.datetime
    accepted_on: datetime.datetime
    accept_payload: bytes
    accept_signature: Signature


EnrollmentInfo = Submitted | Rejected | Cancelled | Accepted

_Q_INFO = """
SELECT state, submitted_on, rejected_on, cancelled_on, accepted_on, accept_payload,
    accept_signature_type, accept_pki_signature, accept_pki_algorithm, accept_pki_x509_chain,
    accept_openbao_signature, accept_openbao_entity_id
FROM async_enrollment WHERE organization = $1 AND enrollment_id = $2
"""


async def get_info(
    conn: asyncpg.Connection, org_internal_id: int, enrollment_id: uuid.UUID
) -> EnrollmentInfo | None:
    row = await conn.fetchrow(_Q_INFO, org_internal_id, enrollment_id)
    if row is None:
        return None
    match row["state"]:
        case "SUBMITTED":
            return Submitted(row["submitted_on"])
        case "REJECTED":
            return Rejected(row["submitted_on"], row["rejected_on"])
        case "CANCELLED":
            return Cancelled(row["submitted_on"], row["cancelled_on"])
        case _:
            return Accepted(
                row["submitted_on"],
                row["accepted_on"],
                row["accept_payload"],
                _signature(
                    row["accept_signature_type"],
                    row["accept_pki_signature"],
                    row["accept_pki_algorithm"],
                    row["accept_pki_x509_chain"],
                    row["accept_openbao_signature"],
                    row["accept_openbao_entity_id"],
                ),
            )


# --- list -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Enrollment:
    enrollment_id: uuid.UUID
    submitted_on: datetime.datetime
    submit_payload: bytes
    submit_signature: Signature


_Q_LIST = """
SELECT
    (SELECT current_profile FROM user_ WHERE id = $2) AS author_profile,
    (SELECT revoked_on IS NOT NULL FROM user_ WHERE id = $2) AS author_revoked,
    ARRAY(
        SELECT ROW(
            enrollment_id, submitted_on, submit_payload, submit_signature_type,
            submit_pki_signature, submit_pki_algorithm, submit_pki_x509_chain,
            submit_openbao_signature, submit_openbao_entity_id
        )
        FROM async_enrollment
        WHERE organization = $1 AND state = 'SUBMITTED'
        ORDER BY submitted_on, id
    ) AS enrollments
"""


async def list_submitted(
    conn: asyncpg.Connection, org_internal_id: int, author_user_internal_id: int
) -> tuple[str | None, bool, list[Enrollment]]:
    """(the author's current profile, whether the author is revoked, the SUBMITTED requests
    oldest first)."""
    row = await conn.fetchrow(_Q_LIST, org_internal_id, author_user_internal_id)
    assert row is not None
    enrollments = [
        Enrollment(r[0], r[1], r[2], _signature(r[3], r[4], r[5], r[6], r[7], r[8]))
        for r in row["enrollments"]
    ]
    return row["author_profile"], bool(row["author_revoked"]), enrollments


# --- cancel / reject ------------------------------------------------------------------------------

EndRefusal = Literal["enrollment_not_found", "enrollment_no_longer_available"]

# $1 org, $2 enrollment_id, $3 now, $4 new state, $5 channel, $6 payloads
_Q_END = """
WITH target AS (
    SELECT id, state FROM async_enrollment WHERE organization = $1 AND enrollment_id = $2
    FOR UPDATE
),
ended AS (
    UPDATE async_enrollment SET
        state = $4,
        cancelled_on = CASE WHEN $4 = 'CANCELLED' THEN $3::timestamptz END,
        rejected_on = CASE WHEN $4 = 'REJECTED' THEN $3::timestamptz END
    WHERE id = (SELECT id FROM target WHERE state = 'SUBMITTED')
    RETURNING id
),
notified AS (
    SELECT pg_notify($5, p) FROM unnest($6::text[]) AS p WHERE EXISTS (SELECT 1 FROM ended)
)
SELECT (SELECT state FROM target) AS state, EXISTS (SELECT 1 FROM ended) AS done,
    (SELECT COUNT(*) FROM notified) AS notified
"""


async def _end(
    conn: asyncpg.Connection,
    org_internal_id: int,
    enrollment_id: uuid.UUID,
    now: datetime.datetime,
    state: Literal["CANCELLED", "REJECTED"],
    events: list[Event],
) -> EndRefusal | None:
    row = await conn.fetchrow(
        _Q_END,
        org_internal_id,
        enrollment_id,
        now,
        state,
        NOTIFY_CHANNEL,
        event_payloads(events),
    )
    assert row is not None
    if row["state"] is None:
        return "enrollment_not_found"
    if not row["done"]:
        return "enrollment_no_longer_available"
    return None


async def cancel(
    conn: asyncpg.Connection,
    org_internal_id: int,
    enrollment_id: uuid.UUID,
    now: datetime.datetime,
    events: list[Event],
) -> EndRefusal | None:
    """SUBMITTED -> CANCELLED (by the requester): None, or why not."""
    return await _end(conn, org_internal_id, enrollment_id, now, "CANCELLED", events)


async def reject(
    conn: asyncpg.Connection,
    org_internal_id: int,
    enrollment_id: uuid.UUID,
    now: datetime.datetime,
    events: list[Event],
) -> EndRefusal | None:
    """SUBMITTED -> REJECTED (by an ADMIN): None, or why not."""
    return await _end(conn, org_internal_id, enrollment_id, now, "REJECTED", events)


# --- accept ---------------------------------------------------------------------------------------

_Q_LOCK_FOR_ACCEPT = """
SELECT id, state, submit_signature_type FROM async_enrollment
WHERE organization = $1 AND enrollment_id = $2
FOR UPDATE
"""


@dataclass(frozen=True, slots=True)
class Pending:
    internal_id: int
    submit_signature_type: SignatureType


async def lock_for_accept(
    conn: asyncpg.Connection, org_internal_id: int, enrollment_id: uuid.UUID
) -> Pending | EndRefusal:
    """Lock the request: the SUBMITTED one, or why it cannot be accepted."""
    row = await conn.fetchrow(_Q_LOCK_FOR_ACCEPT, org_internal_id, enrollment_id)
    if row is None:
        return "enrollment_not_found"
    if row["state"] != "SUBMITTED":
        return "enrollment_no_longer_available"
    kind: SignatureType = "PKI" if row["submit_signature_type"] == "PKI" else "OPEN_BAO"
    return Pending(row["id"], kind)


# $1 id, $2 now, $3 payload, $4 type, $5 pki signature, $6 pki algorithm, $7 pki chain,
# $8 openbao signature, $9 openbao entity
_Q_MARK_ACCEPTED = """
UPDATE async_enrollment SET
    state = 'ACCEPTED', accepted_on = $2, accept_payload = $3, accept_signature_type = $4,
    accept_pki_signature = $5, accept_pki_algorithm = $6, accept_pki_x509_chain = $7,
    accept_openbao_signature = $8, accept_openbao_entity_id = $9
WHERE id = $1 AND state = 'SUBMITTED'
"""


async def mark_accepted(
    conn: asyncpg.Connection,
    pending: Pending,
    now: datetime.datetime,
    payload: bytes,
    signature: Signature,
) -> None:
    """SUBMITTED -> ACCEPTED, in the transaction that created the user (its statement NOTIFY'd the
    events)."""
    status = await conn.execute(
        _Q_MARK_ACCEPTED, pending.internal_id, now, payload, *_columns(signature)
    )
    assert status == "UPDATE 1", status


_Q_ACTIVE_USERS_LIMIT_REACHED = f"SELECT {ACTIVE_USERS_LIMIT_REACHED}"


async def active_users_limit_reached(conn: asyncpg.Connection, org_internal_id: int) -> bool:
    """The organization's active users limit is reached (accept reports it before a taken email,
    user_create after)."""
    return bool(await conn.fetchval(_Q_ACTIVE_USERS_LIMIT_REACHED, org_internal_id))
