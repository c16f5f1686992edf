"""The greeting protocol relayed by the server (protocol.md §4.7): attempts and their steps.

Greeter side (authenticated): invite_greeter_start_greeting_attempt, invite_greeter_step,
invite_greeter_cancel_greeting_attempt. Claimer side (invited):
invite_claimer_start_greeting_attempt, invite_claimer_step, invite_claimer_cancel_greeting_attempt.

Every command locks the invitation row first, so that the two sides, several greeters and retries
are serialised per invitation. Order of checks (official server): attempt exists for this invitation
and belongs to the caller -> invitation completed / cancelled -> caller (or greeter) still allowed
-> attempt cancelled -> caller joined -> step rules. On the claimer's side a completed or cancelled
invitation is HTTP 410.

Steps need API revision >= 5.2 (the SAS code algorithm changed in 5.2): older clients get HTTP 422.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, TypedDict, assert_never

import asyncpg

from parsec_server.commands.checks import AuthorNotAllowedRep, load_author
from parsec_server.commands.context import AuthenticatedClient, InvitedClient
from parsec_server.commands.invite import load_invitation
from parsec_server.commands.registry import HandshakeError, command
from parsec_server.events import types as events
from parsec_server.events.bus import publish
from parsec_server.protocol import greeting as steps
from parsec_server.protocol.codec import now
from parsec_server.protocol.generated.authenticated import (
    InviteGreeterCancelGreetingAttemptRep,
    InviteGreeterCancelGreetingAttemptReq,
    InviteGreeterStartGreetingAttemptRep,
    InviteGreeterStartGreetingAttemptReq,
    InviteGreeterStepRep,
    InviteGreeterStepReq,
)
from parsec_server.protocol.generated.invited import (
    InviteClaimerCancelGreetingAttemptRep,
    InviteClaimerCancelGreetingAttemptReq,
    InviteClaimerStartGreetingAttemptRep,
    InviteClaimerStartGreetingAttemptReq,
    InviteClaimerStepRep,
    InviteClaimerStepReq,
)
from parsec_server.storage import greeting as storage
from parsec_server.storage import invite as invite_storage

MIN_STEP_API_REVISION = 2


def _check_revision(client: AuthenticatedClient | InvitedClient) -> None:
    if client.api_revision < MIN_STEP_API_REVISION:
        raise HandshakeError(422)


async def _event(
    conn: asyncpg.Connection,
    org_id: str,
    kind: str,
    inv: invite_storage.Invitation,
    attempt: storage.Attempt,
) -> None:
    await publish(
        conn,
        events.greeting_attempt(
            org_id, kind, inv.token, attempt.greeting_attempt_id, attempt.greeter_user_id
        ),
    )


# Replies several greeting commands have (TypedDicts are structural: each fits the generated
# variant of every command with that status).


class _AttemptNotFoundRep(TypedDict):
    status: Literal["greeting_attempt_not_found"]


class _AttemptNotJoinedRep(TypedDict):
    status: Literal["greeting_attempt_not_joined"]


class _InvitationCompletedRep(TypedDict):
    status: Literal["invitation_completed"]


class _InvitationCancelledRep(TypedDict):
    status: Literal["invitation_cancelled"]


class _GreeterRevokedRep(TypedDict):
    status: Literal["greeter_revoked"]


class _GreeterNotAllowedRep(TypedDict):
    status: Literal["greeter_not_allowed"]


class _AttemptCancelledRep(TypedDict):
    """A step on a cancelled attempt."""

    status: Literal["greeting_attempt_cancelled"]
    origin: str
    timestamp: datetime
    reason: str


class _AttemptAlreadyCancelledRep(TypedDict):
    """Cancelling a cancelled attempt."""

    status: Literal["greeting_attempt_already_cancelled"]
    origin: str
    timestamp: datetime
    reason: str


Found = tuple[invite_storage.Invitation, storage.Attempt]
# The refusals of `_greeter_attempt` / `_claimer_attempt` (the checks before the cancelled one).
_GreeterRefusal = (
    _AttemptNotFoundRep | _InvitationCompletedRep | _InvitationCancelledRep | AuthorNotAllowedRep
)
_ClaimerRefusal = _AttemptNotFoundRep | _GreeterRevokedRep | _GreeterNotAllowedRep


def _cancellable(
    attempt: storage.Attempt, side: storage.Side
) -> _AttemptAlreadyCancelledRep | _AttemptNotJoinedRep | None:
    """The last checks before a side cancels its attempt: not cancelled already (with who cancelled
    it and when), and joined by that side; None: go ahead."""
    if (c := attempt.cancelled()) is not None:
        return {
            "status": "greeting_attempt_already_cancelled",
            "origin": c.origin,
            "timestamp": c.timestamp,
            "reason": c.reason,
        }
    if not attempt.joined(side):
        return {"status": "greeting_attempt_not_joined"}
    return None


def _steppable(
    attempt: storage.Attempt, side: storage.Side
) -> _AttemptCancelledRep | _AttemptNotJoinedRep | None:
    """The last checks before a side posts a step: the attempt is not cancelled (with who cancelled
    it and when), and joined by that side; None: go ahead."""
    if (c := attempt.cancelled()) is not None:
        return {
            "status": "greeting_attempt_cancelled",
            "origin": c.origin,
            "timestamp": c.timestamp,
            "reason": c.reason,
        }
    if not attempt.joined(side):
        return {"status": "greeting_attempt_not_joined"}
    return None


async def _cancel(
    conn: asyncpg.Connection, org_id: str, found: Found, side: storage.Side, reason: str
) -> None:
    """`invite_*_cancel_greeting_attempt` once the side's attempt is found and cancellable."""
    inv, attempt = found
    await storage.cancel(conn, attempt, side, reason, now())
    await _event(conn, org_id, "CANCELLED", inv, attempt)


# --- greeter side ---------------------------------------------------------------------------------


@command(InviteGreeterStartGreetingAttemptReq)
async def invite_greeter_start_greeting_attempt(
    client: AuthenticatedClient, req: InviteGreeterStartGreetingAttemptReq
) -> InviteGreeterStartGreetingAttemptRep:
    async with client.backend.db.transaction() as conn:
        author = await load_author(conn, client)
        inv = await invite_storage.lock(conn, client.org.internal_id, req.token)
        if inv is None:
            return {"status": "invitation_not_found"}
        if inv.is_finished:
            return {"status": "invitation_completed"}
        if inv.is_cancelled:
            return {"status": "invitation_cancelled"}
        if not await invite_storage.is_greeter_allowed(conn, inv, author):
            return {"status": "author_not_allowed"}
        attempt_id = await storage.join(
            conn, inv.internal_id, author.internal_id, storage.GREETER, now()
        )
    return {"status": "ok", "greeting_attempt": attempt_id}


async def _greeter_attempt(
    conn: asyncpg.Connection, client: AuthenticatedClient, attempt_id: uuid.UUID
) -> Found | _GreeterRefusal:
    """The greeter's attempt, its invitation locked; or the refusal."""
    author = await load_author(conn, client)
    inv = await invite_storage.lock_by_greeting_attempt(conn, client.org.internal_id, attempt_id)
    if inv is None:
        return {"status": "greeting_attempt_not_found"}
    if inv.is_finished:
        return {"status": "invitation_completed"}
    if inv.is_cancelled:
        return {"status": "invitation_cancelled"}
    attempt = await storage.get_attempt(conn, inv.internal_id, attempt_id)
    if attempt is None or attempt.greeter_internal_id != author.internal_id:
        return {"status": "greeting_attempt_not_found"}
    if not await invite_storage.is_greeter_allowed(conn, inv, author):
        return {"status": "author_not_allowed"}
    return inv, attempt


@command(InviteGreeterCancelGreetingAttemptReq)
async def invite_greeter_cancel_greeting_attempt(
    client: AuthenticatedClient, req: InviteGreeterCancelGreetingAttemptReq
) -> InviteGreeterCancelGreetingAttemptRep:
    async with client.backend.db.transaction() as conn:
        found = await _greeter_attempt(conn, client, req.greeting_attempt)
        if not isinstance(found, tuple):
            return found
        if (refused := _cancellable(found[1], storage.GREETER)) is not None:
            return refused
        await _cancel(conn, client.org.organization_id, found, storage.GREETER, req.reason)
    return {"status": "ok"}


@command(InviteGreeterStepReq)
async def invite_greeter_step(
    client: AuthenticatedClient, req: InviteGreeterStepReq
) -> InviteGreeterStepRep:
    _check_revision(client)
    index, data = steps.greeter_step_data(req.greeter_step)
    async with client.backend.db.transaction() as conn:
        found = await _greeter_attempt(conn, client, req.greeting_attempt)
        if not isinstance(found, tuple):
            return found
        inv, attempt = found
        if (refused := _steppable(attempt, storage.GREETER)) is not None:
            return refused
        outcome = await storage.step(conn, attempt, storage.GREETER, index, data)
        match outcome:
            case bytes():
                peer_data = outcome
            case "not_ready":
                return {"status": "not_ready"}
            case "step_too_advanced":
                return {"status": "step_too_advanced"}
            case "step_mismatch":
                return {"status": "step_mismatch"}
            case _:
                assert_never(outcome)
        if index == 0:
            await _event(conn, client.org.organization_id, "JOINED", inv, attempt)
    return {"status": "ok", "claimer_step": steps.claimer_step_from_data(index, peer_data)}


# --- claimer side ---------------------------------------------------------------------------------


@command(InviteClaimerStartGreetingAttemptReq)
async def invite_claimer_start_greeting_attempt(
    client: InvitedClient, req: InviteClaimerStartGreetingAttemptReq
) -> InviteClaimerStartGreetingAttemptRep:
    async with client.backend.db.transaction() as conn:
        inv = await load_invitation(conn, client, for_update=True)
        greeter = await invite_storage.get_user(conn, client.org.internal_id, req.greeter)
        if greeter is None:
            return {"status": "greeter_not_found"}
        if greeter.is_revoked:
            return {"status": "greeter_revoked"}
        if not await invite_storage.is_greeter_allowed(conn, inv, greeter):
            return {"status": "greeter_not_allowed"}
        attempt_id = await storage.join(
            conn, inv.internal_id, greeter.internal_id, storage.CLAIMER, now()
        )
    return {"status": "ok", "greeting_attempt": attempt_id}


async def _claimer_attempt(
    conn: asyncpg.Connection, client: InvitedClient, attempt_id: uuid.UUID
) -> Found | _ClaimerRefusal:
    """The claimer's attempt, its invitation locked; or the refusal."""
    inv = await load_invitation(conn, client, for_update=True)
    attempt = await storage.get_attempt(conn, inv.internal_id, attempt_id)
    if attempt is None:
        return {"status": "greeting_attempt_not_found"}
    greeter = await invite_storage.get_user_by_internal_id(conn, attempt.greeter_internal_id)
    assert greeter is not None
    if greeter.is_revoked:
        return {"status": "greeter_revoked"}
    if not await invite_storage.is_greeter_allowed(conn, inv, greeter):
        return {"status": "greeter_not_allowed"}
    return inv, attempt


@command(InviteClaimerCancelGreetingAttemptReq)
async def invite_claimer_cancel_greeting_attempt(
    client: InvitedClient, req: InviteClaimerCancelGreetingAttemptReq
) -> InviteClaimerCancelGreetingAttemptRep:
    async with client.backend.db.transaction() as conn:
        found = await _claimer_attempt(conn, client, req.greeting_attempt)
        if not isinstance(found, tuple):
            return found
        if (refused := _cancellable(found[1], storage.CLAIMER)) is not None:
            return refused
        await _cancel(conn, client.org.organization_id, found, storage.CLAIMER, req.reason)
    return {"status": "ok"}


@command(InviteClaimerStepReq)
async def invite_claimer_step(
    client: InvitedClient, req: InviteClaimerStepReq
) -> InviteClaimerStepRep:
    _check_revision(client)
    index, data = steps.claimer_step_data(req.claimer_step)
    async with client.backend.db.transaction() as conn:
        found = await _claimer_attempt(conn, client, req.greeting_attempt)
        if not isinstance(found, tuple):
            return found
        inv, attempt = found
        if (refused := _steppable(attempt, storage.CLAIMER)) is not None:
            return refused
        outcome = await storage.step(conn, attempt, storage.CLAIMER, index, data)
        match outcome:
            case bytes():
                peer_data = outcome
            case "not_ready":
                if index == 0:
                    # The claimer waits for the greeter: tell the greeter's client this attempt is
                    # ready.
                    await _event(conn, client.org.organization_id, "READY", inv, attempt)
                return {"status": "not_ready"}
            case "step_too_advanced":
                return {"status": "step_too_advanced"}
            case "step_mismatch":
                return {"status": "step_mismatch"}
            case _:
                assert_never(outcome)
    return {"status": "ok", "greeter_step": steps.greeter_step_from_data(index, peer_data)}
