"""Invitations (protocol.md §4.7): invite_new_user / _device / _shamir_recovery, invite_list,
invite_cancel, invite_complete, and on the claimer's side invite_info and
invite_shamir_recovery_reveal.

Who may do what:
* invite_new_user: ADMIN only; the email must not belong to a non-revoked user. invite_new_device:
  anybody, for himself. invite_new_shamir_recovery: a recipient of the claimer's current setup.
* A pending invitation for the same claimer is reused (same token). Every creation emits INVITATION
  PENDING to the possible greeters (USER: the ADMINs; DEVICE: the claimer; SHAMIR_RECOVERY: the
  recipients).
* invite_cancel / invite_complete: a possible greeter or the claimer himself (same email for USER).

The invitation email leaves after the transaction has committed; `email_sent` says what happened
(see parsec_server.email). With `send_email: false` nothing is sent and SUCCESS is answered, like
the official server.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Literal, TypedDict, assert_never

import asyncpg

from parsec_server import email
from parsec_server.commands.checks import load_author
from parsec_server.commands.context import AuthenticatedClient, InvitedClient
from parsec_server.commands.registry import HandshakeError, command
from parsec_server.events import types as events
from parsec_server.events.bus import publish
from parsec_server.protocol.addr import ServerAddr, claim_url
from parsec_server.protocol.codec import now
from parsec_server.protocol.generated.authenticated import (
    InviteCancelRep,
    InviteCancelReq,
    InviteCompleteRep,
    InviteCompleteReq,
    InviteListRep,
    InviteListReq,
    InviteNewDeviceRep,
    InviteNewDeviceReq,
    InviteNewShamirRecoveryRep,
    InviteNewShamirRecoveryReq,
    InviteNewUserRep,
    InviteNewUserReq,
)
from parsec_server.protocol.generated.invited import (
    InviteInfoRep,
    InviteInfoReq,
    InviteShamirRecoveryRevealRep,
    InviteShamirRecoveryRevealReq,
)
from parsec_server.protocol.ids import HumanHandle
from parsec_server.storage import invite as storage
from parsec_server.storage import shamir as shamir_storage

# INVITATION events name their recipients; NOTIFY payloads must stay small, so long lists are split.
_GREETERS_PER_EVENT = 100


async def publish_invitation_event(
    conn: asyncpg.Connection,
    org_id: str,
    token: bytes,
    status: str,
    greeters: list[uuid.UUID] | None,
) -> None:
    """INVITATION event; `greeters` None = every ADMIN (decided by each event stream)."""
    if greeters is None:
        await publish(conn, events.invitation(org_id, token, status, to_admins=True))
        return
    for start in range(0, max(len(greeters), 1), _GREETERS_PER_EVENT):
        chunk = greeters[start : start + _GREETERS_PER_EVENT]
        await publish(conn, events.invitation(org_id, token, status, greeters=chunk))


async def greeters_of(
    conn: asyncpg.Connection, invitation: storage.Invitation
) -> list[uuid.UUID] | None:
    return await storage.possible_greeters(
        conn,
        invitation.type,
        invitation.organization_internal_id,
        claimer_user_id=invitation.claimer_user_id,
        shamir_setup_internal_id=invitation.shamir_setup_internal_id,
    )


# --- creation -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Email:
    to: str
    greeter: storage.UserInfo | None


async def _create(
    conn: asyncpg.Connection,
    client: AuthenticatedClient,
    type_: storage.InvitationType,
    *,
    claimer_email: str | None = None,
    claimer_user_internal_id: int | None = None,
    claimer_user_id: uuid.UUID | None = None,
    shamir_setup_internal_id: int | None = None,
) -> bytes:
    org = client.org
    await storage.lock_creation(conn, org.internal_id)
    token = await storage.pending_token(
        conn,
        org.internal_id,
        type_,
        claimer_email=claimer_email,
        claimer_user_internal_id=claimer_user_internal_id,
        shamir_setup_internal_id=shamir_setup_internal_id,
    )
    if token is None:
        token = secrets.token_bytes(16)
        await storage.insert(
            conn,
            org.internal_id,
            token,
            type_,
            now(),
            client.device.device_internal_id,
            claimer_email=claimer_email,
            claimer_user_internal_id=claimer_user_internal_id,
            shamir_setup_internal_id=shamir_setup_internal_id,
        )
    greeters = await storage.possible_greeters(
        conn,
        type_,
        org.internal_id,
        claimer_user_id=claimer_user_id,
        shamir_setup_internal_id=shamir_setup_internal_id,
    )
    await publish_invitation_event(conn, org.organization_id, token, "PENDING", greeters)
    return token


async def _email_status(
    client: AuthenticatedClient, type_: storage.InvitationType, token: bytes, mail: _Email | None
) -> str:
    if mail is None:
        return email.SUCCESS
    config = client.backend.config
    try:
        server = ServerAddr.parse(config.server_addr)
    except ValueError:
        return email.SERVER_UNAVAILABLE
    org_id = client.org.organization_id
    message = email.invitation_message(
        config.email,
        invitation_type=type_,
        to=mail.to,
        organization_id=org_id,
        invitation_url=claim_url(server, org_id, type_, token, http_redirection=True),
        server_url=server.to_http_url(),
        greeter_name=mail.greeter.human.label if mail.greeter else None,
        reply_to=mail.greeter.human.email if mail.greeter else None,
    )
    return await email.send(config.email, message)


class _CreatedRep(TypedDict):
    """The `ok` reply of every invite_new_* command."""

    status: Literal["ok"]
    token: bytes
    email_sent: str


async def _created(
    client: AuthenticatedClient, type_: storage.InvitationType, token: bytes, mail: _Email | None
) -> _CreatedRep:
    """The reply of invite_new_*, once the invitation is committed: its email leaves now."""
    return {
        "status": "ok",
        "token": token,
        "email_sent": await _email_status(client, type_, token, mail),
    }


@command(InviteNewUserReq)
async def invite_new_user(client: AuthenticatedClient, req: InviteNewUserReq) -> InviteNewUserRep:
    async with client.backend.db.transaction() as conn:
        author = await load_author(conn, client)
        if author.profile != "ADMIN":
            return {"status": "author_not_allowed"}
        if (
            await storage.get_active_user_by_email(conn, client.org.internal_id, req.claimer_email)
            is not None
        ):
            return {"status": "claimer_email_already_enrolled"}
        token = await _create(conn, client, storage.USER, claimer_email=req.claimer_email)
    mail = _Email(req.claimer_email, author) if req.send_email else None
    return await _created(client, storage.USER, token, mail)


@command(InviteNewDeviceReq)
async def invite_new_device(
    client: AuthenticatedClient, req: InviteNewDeviceReq
) -> InviteNewDeviceRep:
    async with client.backend.db.transaction() as conn:
        author = await load_author(conn, client)
        token = await _create(
            conn,
            client,
            storage.DEVICE,
            claimer_user_internal_id=author.internal_id,
            claimer_user_id=author.user_id,
        )
    mail = _Email(author.human.email, None) if req.send_email else None
    return await _created(client, storage.DEVICE, token, mail)


@command(InviteNewShamirRecoveryReq)
async def invite_new_shamir_recovery(
    client: AuthenticatedClient, req: InviteNewShamirRecoveryReq
) -> InviteNewShamirRecoveryRep:
    async with client.backend.db.transaction() as conn:
        author = await load_author(conn, client)
        claimer = await storage.get_user(conn, client.org.internal_id, req.claimer_user_id)
        if claimer is None:
            return {"status": "user_not_found"}
        setup = await shamir_storage.active_setup(conn, claimer.internal_id)
        if setup is None or author.user_id not in await shamir_storage.recipient_ids(
            conn, setup.internal_id
        ):
            return {"status": "author_not_allowed"}
        token = await _create(
            conn,
            client,
            storage.SHAMIR_RECOVERY,
            claimer_user_internal_id=claimer.internal_id,
            claimer_user_id=claimer.user_id,
            shamir_setup_internal_id=setup.internal_id,
        )
    # The link is for the claimer (the official server mails it to the greeter instead).
    mail = _Email(claimer.human.email, author) if req.send_email else None
    return await _created(client, storage.SHAMIR_RECOVERY, token, mail)


# --- list, cancel, complete -----------------------------------------------------------------------


@command(InviteListReq)
async def invite_list(client: AuthenticatedClient, req: InviteListReq) -> InviteListRep:
    # One statement (no transaction needed): the author's profile, revocation and the
    # organization's expiration are read in the same snapshot as the invitations, like load_author.
    async with client.backend.db.connection() as conn:
        found = await storage.list_visible(
            conn, client.org.internal_id, client.device.user_internal_id
        )
    if found is None:
        raise HandshakeError(403)
    if found.org_expired:
        raise HandshakeError(460)
    if found.author_revoked:
        raise HandshakeError(461)
    return {"status": "ok", "invitations": found.items}


# Why an invitation was not ended (each command words it its own way).
_EndRefusal = Literal["not_found", "completed", "cancelled", "not_allowed"]


async def _end(
    client: AuthenticatedClient, token: bytes, reason: Literal["FINISHED", "CANCELLED"]
) -> _EndRefusal | None:
    """Complete (FINISHED) or cancel (CANCELLED) an invitation; None if done, else the refusal."""
    async with client.backend.db.transaction() as conn:
        author = await load_author(conn, client)
        inv = await storage.lock(conn, client.org.internal_id, token)
        if inv is None:
            return "not_found"
        if inv.is_finished:
            return "completed"
        if inv.is_cancelled:
            return "cancelled"
        if not await storage.is_greeter_allowed(conn, inv, author) and not storage.is_claimer(
            inv, author
        ):
            return "not_allowed"
        await storage.mark_deleted(conn, inv.internal_id, now(), reason)
        await publish_invitation_event(
            conn, client.org.organization_id, inv.token, reason, await greeters_of(conn, inv)
        )
    return None


@command(InviteCancelReq)
async def invite_cancel(client: AuthenticatedClient, req: InviteCancelReq) -> InviteCancelRep:
    refusal = await _end(client, req.token, storage.CANCELLED)
    match refusal:
        case None:
            return {"status": "ok"}
        case "not_found":
            return {"status": "invitation_not_found"}
        case "completed":
            return {"status": "invitation_completed"}
        case "cancelled":
            return {"status": "invitation_already_cancelled"}
        case "not_allowed":
            return {"status": "author_not_allowed"}
        case _:
            assert_never(refusal)


@command(InviteCompleteReq)
async def invite_complete(client: AuthenticatedClient, req: InviteCompleteReq) -> InviteCompleteRep:
    refusal = await _end(client, req.token, storage.FINISHED)
    match refusal:
        case None:
            return {"status": "ok"}
        case "not_found":
            return {"status": "invitation_not_found"}
        case "completed":
            return {"status": "invitation_already_completed"}
        case "cancelled":
            return {"status": "invitation_cancelled"}
        case "not_allowed":
            return {"status": "author_not_allowed"}
        case _:
            assert_never(refusal)


# --- claimer side ---------------------------------------------------------------------------------


async def load_invitation(
    conn: asyncpg.Connection, client: InvitedClient, *, for_update: bool
) -> storage.Invitation:
    """The claimer's invitation, fresh (and locked if `for_update`): completed or cancelled
    meanwhile -> 410."""
    token = client.invitation.token
    if for_update:
        inv = await storage.lock(conn, client.org.internal_id, token)
    else:
        inv = await storage.get_for_claimer(conn, client.org.internal_id, token)
    if inv is None:
        raise HandshakeError(403)
    if inv.is_deleted:
        raise HandshakeError(410)
    return inv


def _claimer(inv: storage.Invitation) -> tuple[uuid.UUID, HumanHandle]:
    """The claimer of a DEVICE or SHAMIR_RECOVERY invitation (a user of the organization)."""
    assert inv.claimer_user_id is not None and inv.claimer_human is not None
    return inv.claimer_user_id, inv.claimer_human


@command(InviteInfoReq)
async def invite_info(client: InvitedClient, req: InviteInfoReq) -> InviteInfoRep:
    async with client.backend.db.transaction() as conn:
        inv = await load_invitation(conn, client, for_update=False)
        created_by = inv.created_by()
        if inv.type == storage.USER:
            assert inv.claimer_email is not None
            return {
                "status": "ok",
                "type": "USER",
                "created_by": created_by,
                "claimer_email": inv.claimer_email,
                "administrators": await storage.greeting_administrators(conn, inv),
            }
        claimer_user_id, claimer_human = _claimer(inv)
        if inv.type == storage.DEVICE:
            return {
                "status": "ok",
                "type": "DEVICE",
                "created_by": created_by,
                "claimer_user_id": claimer_user_id,
                "claimer_human_handle": claimer_human,
            }
        assert inv.shamir_setup_internal_id is not None
        assert inv.shamir_created_on is not None and inv.shamir_threshold is not None
        return {
            "status": "ok",
            "type": "SHAMIR_RECOVERY",
            "created_by": created_by,
            "claimer_user_id": claimer_user_id,
            "claimer_human_handle": claimer_human,
            "shamir_recovery_created_on": inv.shamir_created_on,
            "threshold": inv.shamir_threshold,
            "recipients": await storage.shamir_recipients(conn, inv.shamir_setup_internal_id),
        }


@command(InviteShamirRecoveryRevealReq)
async def invite_shamir_recovery_reveal(
    client: InvitedClient, req: InviteShamirRecoveryRevealReq
) -> InviteShamirRecoveryRevealRep:
    async with client.backend.db.transaction() as conn:
        inv = await load_invitation(conn, client, for_update=False)
        if inv.type != storage.SHAMIR_RECOVERY:
            return {"status": "bad_invitation_type"}
        assert inv.shamir_setup_internal_id is not None
        data = await shamir_storage.reveal(conn, inv.shamir_setup_internal_id, req.reveal_token)
    if data is None:
        return {"status": "bad_reveal_token"}
    return {"status": "ok", "ciphered_data": data}
