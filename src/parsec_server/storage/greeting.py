"""Greeting sessions, attempts and steps (protocol.md §4.7).

One session per (invitation, greeter); at most one active (not cancelled) attempt per session. Each
side joins the active attempt; joining an attempt one already joined cancels it
(AUTOMATICALLY_CANCELLED, origin = the joining side) and joins a fresh one. Steps are stored as raw
data per (attempt, step) and side.

Every function here runs with the invitation row locked (storage.invite.lock*): greeting state
changes of one invitation never interleave.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, NamedTuple

import asyncpg

Side = Literal["GREETER", "CLAIMER"]
GREETER: Final = "GREETER"
CLAIMER: Final = "CLAIMER"

AUTOMATICALLY_CANCELLED = "AUTOMATICALLY_CANCELLED"


class Cancellation(NamedTuple):
    """Who cancelled an attempt (GREETER | CLAIMER), when and why."""

    origin: str
    timestamp: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class Attempt:
    internal_id: int
    greeting_attempt_id: uuid.UUID
    invitation_internal_id: int
    greeter_internal_id: int
    greeter_user_id: uuid.UUID
    greeter_joined_on: datetime | None
    claimer_joined_on: datetime | None
    cancelled_on: datetime | None
    cancelled_by: str | None
    cancelled_reason: str | None

    def joined(self, side: Side) -> bool:
        return (self.greeter_joined_on if side == GREETER else self.claimer_joined_on) is not None

    def cancelled(self) -> Cancellation | None:
        """Origin, timestamp and reason of a cancelled attempt."""
        if self.cancelled_on is None:
            return None
        # Set together (_Q_CANCEL).
        assert self.cancelled_by is not None and self.cancelled_reason is not None
        return Cancellation(self.cancelled_by, self.cancelled_on, self.cancelled_reason)


_Q_ATTEMPT = """
SELECT ga.id, ga.greeting_attempt_id, gs.invitation, gs.greeter, u.user_id AS greeter_user_id,
    ga.greeter_joined_on, ga.claimer_joined_on,
    ga.cancelled_on, ga.cancelled_by, ga.cancelled_reason
FROM greeting_attempt ga
JOIN greeting_session gs ON gs.id = ga.session
JOIN user_ u ON u.id = gs.greeter
WHERE ga.greeting_attempt_id = $1 AND gs.invitation = $2
"""


def _attempt(row: asyncpg.Record) -> Attempt:
    return Attempt(
        internal_id=row["id"],
        greeting_attempt_id=row["greeting_attempt_id"],
        invitation_internal_id=row["invitation"],
        greeter_internal_id=row["greeter"],
        greeter_user_id=row["greeter_user_id"],
        greeter_joined_on=row["greeter_joined_on"],
        claimer_joined_on=row["claimer_joined_on"],
        cancelled_on=row["cancelled_on"],
        cancelled_by=row["cancelled_by"],
        cancelled_reason=row["cancelled_reason"],
    )


async def get_attempt(
    conn: asyncpg.Connection, invitation_internal_id: int, greeting_attempt_id: uuid.UUID
) -> Attempt | None:
    """The attempt, only if it belongs to that invitation."""
    row = await conn.fetchrow(_Q_ATTEMPT, greeting_attempt_id, invitation_internal_id)
    return None if row is None else _attempt(row)


# --- joining --------------------------------------------------------------------------------------

_Q_SESSION = """
WITH created AS (
    INSERT INTO greeting_session (invitation, greeter) VALUES ($1, $2)
    ON CONFLICT (invitation, greeter) DO NOTHING
    RETURNING id
)
SELECT id FROM created
UNION ALL
SELECT id FROM greeting_session WHERE invitation = $1 AND greeter = $2
LIMIT 1
"""

_Q_ACTIVE_ATTEMPT = """
SELECT id, greeter_joined_on, claimer_joined_on, greeting_attempt_id
FROM greeting_attempt WHERE session = $1 AND cancelled_on IS NULL
"""

_Q_NEW_ATTEMPT = """
INSERT INTO greeting_attempt (greeting_attempt_id, session, created_on) VALUES ($1, $2, $3)
RETURNING id, greeter_joined_on, claimer_joined_on, greeting_attempt_id
"""

_Q_JOIN_GREETER = "UPDATE greeting_attempt SET greeter_joined_on = $2 WHERE id = $1"
_Q_JOIN_CLAIMER = "UPDATE greeting_attempt SET claimer_joined_on = $2 WHERE id = $1"

_Q_CANCEL = """
UPDATE greeting_attempt SET cancelled_on = $2, cancelled_by = $3, cancelled_reason = $4
WHERE id = $1 AND cancelled_on IS NULL
"""


async def join(
    conn: asyncpg.Connection,
    invitation_internal_id: int,
    greeter_internal_id: int,
    side: Side,
    now: datetime,
) -> uuid.UUID:
    """`*_start_greeting_attempt`: join the session's active attempt (created if none); an attempt
    this side had already joined is cancelled and replaced. Returns the joined attempt's id."""
    session = await conn.fetchval(_Q_SESSION, invitation_internal_id, greeter_internal_id)
    row = await conn.fetchrow(_Q_ACTIVE_ATTEMPT, session)
    if (
        row is not None
        and row["greeter_joined_on" if side == GREETER else "claimer_joined_on"] is not None
    ):
        await conn.execute(_Q_CANCEL, row["id"], now, side, AUTOMATICALLY_CANCELLED)
        row = None
    if row is None:
        row = await conn.fetchrow(_Q_NEW_ATTEMPT, uuid.uuid4(), session, now)
    await conn.execute(_Q_JOIN_GREETER if side == GREETER else _Q_JOIN_CLAIMER, row["id"], now)
    attempt_id: uuid.UUID = row["greeting_attempt_id"]
    return attempt_id


async def cancel(
    conn: asyncpg.Connection, attempt: Attempt, origin: Side, reason: str, now: datetime
) -> None:
    await conn.execute(_Q_CANCEL, attempt.internal_id, now, origin, reason)


# --- steps ----------------------------------------------------------------------------------------

# Why a step gave no peer data (each is also the command's status).
StepRefusal = Literal["not_ready", "step_too_advanced", "step_mismatch"]
NOT_READY: Final = "not_ready"
STEP_TOO_ADVANCED: Final = "step_too_advanced"
STEP_MISMATCH: Final = "step_mismatch"

_Q_STEPS = """
SELECT step, greeter_data, claimer_data FROM greeting_step
WHERE attempt = $1 AND step IN ($2 - 1, $2)
"""
_Q_SET_GREETER = """
INSERT INTO greeting_step (attempt, step, greeter_data) VALUES ($1, $2, $3)
ON CONFLICT (attempt, step) DO UPDATE SET greeter_data = excluded.greeter_data
"""
_Q_SET_CLAIMER = """
INSERT INTO greeting_step (attempt, step, claimer_data) VALUES ($1, $2, $3)
ON CONFLICT (attempt, step) DO UPDATE SET claimer_data = excluded.claimer_data
"""


async def step(
    conn: asyncpg.Connection, attempt: Attempt, side: Side, index: int, data: bytes
) -> bytes | StepRefusal:
    """Post step `index` of `side`; returns the peer's data for that step, or NOT_READY /
    STEP_TOO_ADVANCED / STEP_MISMATCH.

    Rules: every earlier step must be done by both sides (else too advanced); a step already posted
    must be posted again with the same data (else mismatch: the side restarted without a new
    attempt)."""
    rows = {r["step"]: r for r in await conn.fetch(_Q_STEPS, attempt.internal_id, index)}
    mine, peer = (
        ("greeter_data", "claimer_data") if side == GREETER else ("claimer_data", "greeter_data")
    )
    if index > 0:
        previous = rows.get(index - 1)
        if previous is None or previous["greeter_data"] is None or previous["claimer_data"] is None:
            return STEP_TOO_ADVANCED
    current = rows.get(index)
    if current is not None and current[mine] is not None:
        if bytes(current[mine]) != data:
            return STEP_MISMATCH
    else:
        await conn.execute(
            _Q_SET_GREETER if side == GREETER else _Q_SET_CLAIMER, attempt.internal_id, index, data
        )
    if current is None or current[peer] is None:
        return NOT_READY
    return bytes(current[peer])
