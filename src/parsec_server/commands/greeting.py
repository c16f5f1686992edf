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

from typing import Any

import asyncpg

from parsec_server.commands.checks import load_author
from parsec_server.commands.context import AuthenticatedClient, InvitedClient
from parsec_server.commands.invite import load_invitation
from parsec_server.commands.registry import AUTHENTICATED, INVITED, HandshakeError, handles
from parsec_server.events import types as events
from parsec_server.events.bus import publish
from parsec_server.protocol import greeting as steps
from parsec_server.protocol.codec import now
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


Found = tuple[invite_storage.Invitation, storage.Attempt] | dict[str, Any]


def _usable(
    inv: invite_storage.Invitation,
    attempt: storage.Attempt,
    side: storage.Side,
    cancelled_status: str,
) -> Found:
    """The last checks before a side acts on its attempt: not cancelled (`cancelled_status`, with
    who cancelled it and when), and joined by that side."""
    if (cancelled := attempt.cancelled()) is not None:
        return {"status": cancelled_status, **cancelled}
    if not attempt.joined(side):
        return {"status": "greeting_attempt_not_joined"}
    return inv, attempt


async def _cancel(
    conn: asyncpg.Connection, org_id: str, found: Found, side: storage.Side, reason: str
) -> dict[str, Any]:
    """`invite_*_cancel_greeting_attempt` once the side's attempt is found (or refused)."""
    if isinstance(found, dict):
        return found
    inv, attempt = found
    await storage.cancel(conn, attempt, side, reason, now())
    await _event(conn, org_id, "CANCELLED", inv, attempt)
    return {"status": "ok"}


# --- greeter side ---------------------------------------------------------------------------------


@handles(AUTHENTICATED, "invite_greeter_start_greeting_attempt")
async def invite_greeter_start_greeting_attempt(
    client: AuthenticatedClient, req: Any
) -> dict[str, Any]:
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
    conn: asyncpg.Connection, client: AuthenticatedClient, attempt_id: Any, cancelled_status: str
) -> Found:
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
    return _usable(inv, attempt, storage.GREETER, cancelled_status)


@handles(AUTHENTICATED, "invite_greeter_cancel_greeting_attempt")
async def invite_greeter_cancel_greeting_attempt(
    client: AuthenticatedClient, req: Any
) -> dict[str, Any]:
    async with client.backend.db.transaction() as conn:
        found = await _greeter_attempt(
            conn, client, req.greeting_attempt, "greeting_attempt_already_cancelled"
        )
        return await _cancel(conn, client.org.organization_id, found, storage.GREETER, req.reason)


@handles(AUTHENTICATED, "invite_greeter_step")
async def invite_greeter_step(client: AuthenticatedClient, req: Any) -> dict[str, Any]:
    _check_revision(client)
    index, data = steps.greeter_step_data(req.greeter_step)
    async with client.backend.db.transaction() as conn:
        found = await _greeter_attempt(
            conn, client, req.greeting_attempt, "greeting_attempt_cancelled"
        )
        if isinstance(found, dict):
            return found
        inv, attempt = found
        outcome = await storage.step(conn, attempt, storage.GREETER, index, data)
        if isinstance(outcome, str):
            return {"status": outcome}
        if index == 0:
            await _event(conn, client.org.organization_id, "JOINED", inv, attempt)
    return {"status": "ok", "claimer_step": steps.claimer_step_from_data(index, outcome)}


# --- claimer side ---------------------------------------------------------------------------------


@handles(INVITED, "invite_claimer_start_greeting_attempt")
async def invite_claimer_start_greeting_attempt(client: InvitedClient, req: Any) -> dict[str, Any]:
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
    conn: asyncpg.Connection, client: InvitedClient, attempt_id: Any, cancelled_status: str
) -> Found:
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
    return _usable(inv, attempt, storage.CLAIMER, cancelled_status)


@handles(INVITED, "invite_claimer_cancel_greeting_attempt")
async def invite_claimer_cancel_greeting_attempt(client: InvitedClient, req: Any) -> dict[str, Any]:
    async with client.backend.db.transaction() as conn:
        found = await _claimer_attempt(
            conn, client, req.greeting_attempt, "greeting_attempt_already_cancelled"
        )
        return await _cancel(conn, client.org.organization_id, found, storage.CLAIMER, req.reason)


@handles(INVITED, "invite_claimer_step")
async def invite_claimer_step(client: InvitedClient, req: Any) -> dict[str, Any]:
    _check_revision(client)
    index, data = steps.claimer_step_data(req.claimer_step)
    async with client.backend.db.transaction() as conn:
        found = await _claimer_attempt(
            conn, client, req.greeting_attempt, "greeting_attempt_cancelled"
        )
        if isinstance(found, dict):
            return found
        inv, attempt = found
        outcome = await storage.step(conn, attempt, storage.CLAIMER, index, data)
        if outcome == storage.NOT_READY and index == 0:
            # The claimer waits for the greeter: tell the greeter's client this attempt is ready.
            await _event(conn, client.org.organization_id, "READY", inv, attempt)
        if isinstance(outcome, str):
            return {"status": outcome}
    return {"status": "ok", "greeter_step": steps.greeter_step_from_data(index, outcome)}
