"""TOTP multi-factor (docs/totp.md), as the official server 3.9.3 serves it.

Authenticated: totp_setup_get_secret (created on first call, the same until confirmed),
totp_setup_confirm (a right code completes the setup), totp_create_opaque_key (a random 32-byte
key the server keeps for the device). Anonymous (organization route, no authentication):
totp_fetch_opaque_key hands the key out against a right code, with wrong codes throttled per key
(crypto/totp.py); totp_setup_get_secret/totp_setup_confirm set TOTP up again with the token of an
administration reset (`reset`, POST /administration/organizations/<org>/users/reset_totp), which
e-mails the user a `parsec3://…?a=totp_reset` link.

The anonymous commands tell nothing about users: an unknown, revoked or frozen user, a key of
another user, or a setup not done answer like a wrong token (bad_token) or a wrong code
(invalid_one_time_password), as the official server does.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Literal, NamedTuple

from parsec_server import email
from parsec_server.commands.context import AnonymousClient, AuthenticatedClient, Backend
from parsec_server.commands.registry import HandshakeError, command
from parsec_server.crypto import totp
from parsec_server.email.totp import totp_reset_message
from parsec_server.protocol.addr import ServerAddr, encode_payload
from parsec_server.protocol.codec import now
from parsec_server.protocol.generated import anonymous as anon
from parsec_server.protocol.generated import authenticated as auth
from parsec_server.storage import totp as storage

OPAQUE_KEY_SIZE = 32  # a SecretKey (XSalsa20-Poly1305 key) for the client
RESET_TOKEN_SIZE = 16  # an AccessToken
RESET_ACTION = "totp_reset"  # URL action of the reset link


# --- authenticated ---------------------------------------------------------------------------


@command(auth.TotpSetupGetSecretReq)
async def totp_setup_get_secret(
    client: AuthenticatedClient, req: auth.TotpSetupGetSecretReq
) -> auth.TotpSetupGetSecretRep:
    async with client.backend.db.transaction() as conn:
        found = await storage.get_or_create_secret(
            conn, client.device.user_internal_id, totp.new_secret()
        )
    if found.setup_completed:
        return {"status": "already_setup"}
    return {"status": "ok", "totp_secret": found.secret}


@command(auth.TotpSetupConfirmReq)
async def totp_setup_confirm(
    client: AuthenticatedClient, req: auth.TotpSetupConfirmReq
) -> auth.TotpSetupConfirmRep:
    async with client.backend.db.transaction() as conn:
        setup = await storage.lock_setup(conn, client.device.user_internal_id)
        if setup is not None and setup.setup_completed:
            return {"status": "already_setup"}
        if setup is None or not totp.verify(setup.secret, req.one_time_password, now()):
            return {"status": "invalid_one_time_password"}
        await storage.complete_setup(conn, client.device.user_internal_id)
    return {"status": "ok"}


@command(auth.TotpCreateOpaqueKeyReq)
async def totp_create_opaque_key(
    client: AuthenticatedClient, req: auth.TotpCreateOpaqueKeyReq
) -> auth.TotpCreateOpaqueKeyRep:
    key_id = uuid.uuid4()
    key = secrets.token_bytes(OPAQUE_KEY_SIZE)
    async with client.backend.db.transaction() as conn:
        await storage.create_opaque_key(conn, client.device.user_internal_id, key_id, key)
    return {"status": "ok", "opaque_key_id": key_id, "opaque_key": key}


# --- anonymous ---------------------------------------------------------------------------------


def _org_internal_id(client: AnonymousClient) -> int:
    # The official server only knows bootstrapped organizations here (404 otherwise).
    if client.org is None or not client.org.is_bootstrapped:
        raise HandshakeError(404)
    return client.org.internal_id


@command(anon.TotpSetupGetSecretReq)
async def anonymous_totp_setup_get_secret(
    client: AnonymousClient, req: anon.TotpSetupGetSecretReq
) -> anon.TotpSetupGetSecretRep:
    org = _org_internal_id(client)
    async with client.backend.db.transaction() as conn:
        secret = await storage.get_or_create_secret_with_token(
            conn, org, req.user_id, req.token, totp.new_secret()
        )
    if secret is None:
        return {"status": "bad_token"}
    return {"status": "ok", "totp_secret": secret}


@command(anon.TotpSetupConfirmReq)
async def anonymous_totp_setup_confirm(
    client: AnonymousClient, req: anon.TotpSetupConfirmReq
) -> anon.TotpSetupConfirmRep:
    org = _org_internal_id(client)
    async with client.backend.db.transaction() as conn:
        setup = await storage.lock_setup_with_token(conn, org, req.user_id, req.token)
        if setup is None:
            return {"status": "bad_token"}
        if setup.secret is None or not totp.verify(setup.secret, req.one_time_password, now()):
            return {"status": "invalid_one_time_password"}
        await storage.complete_setup(conn, setup.user_internal_id)
    return {"status": "ok"}


@command(anon.TotpFetchOpaqueKeyReq)
async def totp_fetch_opaque_key(
    client: AnonymousClient, req: anon.TotpFetchOpaqueKeyReq
) -> anon.TotpFetchOpaqueKeyRep:
    org = _org_internal_id(client)
    at = now()
    async with client.backend.db.transaction() as conn:
        key = await storage.lock_fetchable_key(conn, org, req.user_id, req.opaque_key_id)
        if key is None:
            return {"status": "invalid_one_time_password"}
        wait_until = totp.wait_until(key.failed_attempts, key.last_failed_attempt)
        if wait_until is not None and at <= wait_until:
            return {"status": "throttled", "wait_until": wait_until}
        if not totp.verify(key.secret, req.one_time_password, at):
            await storage.record_failure(conn, key.internal_id, at)
            return {"status": "invalid_one_time_password"}
        if key.failed_attempts:
            await storage.clear_throttle(conn, key.internal_id)
    return {"status": "ok", "opaque_key": key.opaque_key}


# --- administration ----------------------------------------------------------------------------

EmailSentStatus = Literal[
    "SENT_AS_REQUESTED", "NOT_SENT_AS_REQUESTED", "RECIPIENT_REFUSED", "SERVER_UNAVAILABLE"
]


class ResetDone(NamedTuple):
    user_id: uuid.UUID
    user_email: str
    totp_reset_url: str
    totp_reset_url_as_http_redirection: str
    email_sent_status: EmailSentStatus


ResetOutcome = ResetDone | Literal["organization_not_found", "user_not_found", "user_revoked"]


def reset_urls(
    server: ServerAddr, organization_id: str, user_id: uuid.UUID, token: bytes
) -> tuple[str, str]:
    """The reset link (parsec3://) and its http(s) redirection: payload msgpack([user_id, token])."""
    payload = encode_payload([user_id, token])
    return (
        server.action_url(organization_id, RESET_ACTION, payload),
        server.action_redirection_url(organization_id, RESET_ACTION, payload),
    )


async def reset(
    backend: Backend,
    organization_id: str,
    *,
    user_id: uuid.UUID | None = None,
    user_email: str | None = None,
    send_email: bool = False,
) -> ResetOutcome:
    """The administration reset: the user's TOTP is forgotten (committed first), then the reset
    link is e-mailed if asked (a slow SMTP server holds no lock)."""
    token = secrets.token_bytes(RESET_TOKEN_SIZE)
    async with backend.db.transaction() as conn:
        done = await storage.reset(conn, organization_id, token, user_id=user_id, email=user_email)
    if isinstance(done, str):
        return done
    config = backend.config
    server = ServerAddr.parse(config.server_addr)
    url, http_url = reset_urls(server, organization_id, done.user_id, token)
    status: EmailSentStatus = "NOT_SENT_AS_REQUESTED"
    if send_email:
        message = totp_reset_message(
            config.email,
            to=done.email,
            organization_id=organization_id,
            totp_reset_url=http_url,
            server_url=server.to_http_url(),
        )
        sent = await email.send(config.email, message)
        if sent == email.RECIPIENT_REFUSED:
            status = "RECIPIENT_REFUSED"
        elif sent == email.SERVER_UNAVAILABLE:
            status = "SERVER_UNAVAILABLE"
        else:
            status = "SENT_AS_REQUESTED"
    return ResetDone(done.user_id, done.email, url, http_url, status)
