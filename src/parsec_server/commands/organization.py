"""Organizations: organization_bootstrap, organization_info, server_config, and the administration
API back end (called by asgi/admin.py).

organization_bootstrap (protocol.md §4.3): the certificates are checked first (no database access),
then, with the organization row and its common topic locked: expired (460), already bootstrapped,
bootstrap token (NULL-safe: a spontaneous organization is bootstrapped with a nil token). No event
is sent.
"""

from __future__ import annotations

import datetime
import secrets
import uuid
from typing import Any

from parsec_server import webhooks
from parsec_server.commands.checks import InvalidCertificateRep, load_new_user_certificates
from parsec_server.commands.context import AnonymousClient, AuthenticatedClient, Backend
from parsec_server.commands.registry import HandshakeError, command
from parsec_server.config import OpenBaoConfig
from parsec_server.crypto import certificates as certs
from parsec_server.crypto.ballpark import OutOfBallpark, check_ballpark
from parsec_server.events import types as event_types
from parsec_server.events.bus import publish
from parsec_server.protocol.codec import now as utc_now
from parsec_server.protocol.generated.anonymous import (
    OrganizationBootstrapRep,
    OrganizationBootstrapReq,
)
from parsec_server.protocol.generated.anonymous_server import ServerConfigRep, ServerConfigReq
from parsec_server.protocol.generated.authenticated import OrganizationInfoRep, OrganizationInfoReq
from parsec_server.protocol.ids import redacted_email
from parsec_server.storage import organization as org_storage
from parsec_server.storage import user as user_storage

REDACTED_LABEL = "Unknown"  # label kept for a user certified without human handle


# --- organization_bootstrap -----------------------------------------------------------------------


def _validate_bootstrap(
    req: OrganizationBootstrapReq, now: datetime.datetime
) -> org_storage.BootstrapData | InvalidCertificateRep | OutOfBallpark:
    """The certificate checks of protocol.md §4.3, in the official order: the stored data, or the
    reply."""
    root_key = req.root_verify_key
    try:
        new = load_new_user_certificates(req, root_key, expected_author=None)
    except certs.InvalidCertificate:
        return {"status": "invalid_certificate"}
    user, device = new.user, new.device
    if (
        user.profile != "ADMIN"
        or user.timestamp != device.timestamp
        or user.user_id != device.user_id
    ):
        return {"status": "invalid_certificate"}
    late = check_ballpark(user.timestamp, now)
    if late is not None:
        return late
    if not new.redacted_match():
        return {"status": "invalid_certificate"}
    sequester_ts = sequester_key = None
    if req.sequester_authority_certificate is not None:
        try:
            authority = certs.verify_and_load(
                certs.SequesterAuthorityCertificate, req.sequester_authority_certificate, root_key
            )
        except certs.InvalidCertificate:
            return {"status": "invalid_certificate"}
        late = check_ballpark(authority.timestamp, now)
        if late is not None:
            return late
        if authority.timestamp != user.timestamp:
            return {"status": "invalid_certificate"}
        sequester_ts, sequester_key = authority.timestamp, authority.verify_key_der
    email, label = stored_human(user)
    return org_storage.BootstrapData(
        timestamp=user.timestamp,
        root_verify_key=root_key,
        user_id=user.user_id,
        email=email,
        label=label,
        device_id=device.device_id,
        device_label=device.device_label,
        device_purpose=device.purpose or "STANDARD",
        verify_key=device.verify_key,
        user_certificate=req.user_certificate,
        redacted_user_certificate=req.redacted_user_certificate,
        device_certificate=req.device_certificate,
        redacted_device_certificate=req.redacted_device_certificate,
        sequester_authority_certificate=req.sequester_authority_certificate,
        sequester_authority_timestamp=sequester_ts,
        sequester_verify_key_der=sequester_key,
    )


def stored_human(user: certs.UserCertificate) -> tuple[str, str]:
    """(email, label) stored for a user; a certificate without human handle gets its redacted
    email."""
    if user.human_handle is None:
        return redacted_email(user.user_id), REDACTED_LABEL
    return user.human_handle.email, user.human_handle.label


@command(OrganizationBootstrapReq)
async def organization_bootstrap(
    client: AnonymousClient, req: OrganizationBootstrapReq
) -> OrganizationBootstrapRep:
    data = _validate_bootstrap(req, utc_now())
    if isinstance(data, dict):
        return data
    org = client.org
    if org is None:
        raise HandshakeError(404)
    async with client.backend.db.transaction() as conn:
        state = await org_storage.lock_for_bootstrap(conn, org.internal_id)
        if state is None:
            raise HandshakeError(404)
        if state.is_expired:
            raise HandshakeError(460)
        if state.is_bootstrapped:
            return {"status": "organization_already_bootstrapped"}
        if state.bootstrap_token != req.bootstrap_token:
            return {"status": "invalid_bootstrap_token"}
        await org_storage.bootstrap(conn, org.internal_id, data)
    await _bootstrap_webhook(client, data)
    return {"status": "ok"}


async def _bootstrap_webhook(client: AnonymousClient, data: org_storage.BootstrapData) -> None:
    """`--organization-bootstrap-webhook`: told once the bootstrap is committed, within
    `--webhook-timeout`; a failure is logged and changes nothing for the client."""
    config = client.backend.config
    if config.organization_bootstrap_webhook is None:
        return
    payload = webhooks.BootstrapPayload(
        organization_id=client.organization_id,
        device_id=data.device_id,
        device_label=data.device_label,
        human_email=data.email,
        human_label=data.label,
    )
    await webhooks.organization_bootstrap(
        config.organization_bootstrap_webhook, payload, config.webhook_timeout
    )


# --- organization_info, server_config -------------------------------------------------------------


@command(OrganizationInfoReq)
async def organization_info(
    client: AuthenticatedClient, req: OrganizationInfoReq
) -> OrganizationInfoRep:
    async with client.backend.db.connection() as conn:
        metadata, data = await org_storage.usage(conn, client.org.internal_id)
    return {"status": "ok", "total_metadata_bytes": metadata, "total_block_bytes": data}


@command(ServerConfigReq)
async def server_config(client: AnonymousClient, req: ServerConfigReq) -> ServerConfigRep:
    config = client.backend.config
    return {
        "status": "ok",
        "account": config.account.mode,
        "organization_bootstrap": "SPONTANEOUS"
        if config.spontaneous_organization_bootstrap
        else "WITH_BOOTSTRAP_TOKEN",
        "openbao": _openbao(config.openbao),
        "cryptpad": {"type": "DISABLED"}
        if config.cryptpad_server_url is None
        else {"type": "ENABLED", "server_url": config.cryptpad_server_url},
        "advisory_device_file_protection": list(config.advisory_device_file_protection),
    }


def _openbao(openbao: OpenBaoConfig | None) -> dict[str, Any]:
    """server_config `openbao` (docs/scws.md): DISABLED, or where clients find the OpenBao server."""
    if openbao is None:
        return {"type": "DISABLED"}
    return {
        "type": "ENABLED",
        "server_url": openbao.server_url,
        "secret": {"type": "KV2", "mount_path": openbao.secret_mount_path},
        "transit_mount_path": openbao.transit_mount_path,
        "auths": [{"id": auth_id, "mount_path": path} for auth_id, path in openbao.auths],
    }


# --- administration API back end ------------------------------------------------------------------


async def create_organization(
    backend: Backend, organization_id: str, settings: dict[str, Any]
) -> bytes | None:
    """Create an organization (or overwrite a not yet bootstrapped one): its new bootstrap token,
    or None when a bootstrapped organization has that id. Settings left out take the server's
    initial values."""
    base = org_storage.initial_settings(backend.config)
    resolved = org_storage.OrganizationSettings(
        user_profile_outsider_allowed=settings.get(
            "user_profile_outsider_allowed", base.user_profile_outsider_allowed
        ),
        active_users_limit=settings.get("active_users_limit", base.active_users_limit),
        minimum_archiving_period=settings.get(
            "realm_minimum_archiving_period_before_deletion", base.minimum_archiving_period
        ),
        tos=settings.get("tos", base.tos),
    )
    token = secrets.token_bytes(16)
    async with backend.db.transaction() as conn:
        created = await org_storage.create(conn, organization_id, token, resolved, utc_now())
        if created is None:
            return None
        # The overwritten organization may be known to the handshake caches (expired, TOS...).
        await publish(conn, event_types.internal(organization_id, "ORGANIZATION_UPDATED"))
    return token


async def get_organization(backend: Backend, organization_id: str) -> dict[str, Any] | None:
    async with backend.db.connection() as conn:
        return await org_storage.get(conn, organization_id)


async def update_organization(
    backend: Backend, organization_id: str, changes: dict[str, Any]
) -> bool:
    """Administration PATCH; the internal events let every process drop its cached view of the
    organization (and end event streams on expiry or TOS change)."""
    async with backend.db.transaction() as conn:
        if not await org_storage.update(conn, organization_id, changes, utc_now()):
            return False
        if changes.get("is_expired") is True:
            await publish(conn, event_types.internal(organization_id, "ORGANIZATION_EXPIRED"))
        if "tos" in changes:
            await publish(conn, event_types.internal(organization_id, "ORGANIZATION_TOS_UPDATED"))
        await publish(conn, event_types.internal(organization_id, "ORGANIZATION_UPDATED"))
    # This process's cache is dropped now, not when the event comes back: the admin's next request
    # must not see the old state (other processes learn it from the event).
    backend.auth.forget_organization(organization_id)
    return True


async def organization_stats(backend: Backend, organization_id: str) -> dict[str, Any] | None:
    async with backend.db.connection() as conn:
        return await org_storage.stats(conn, organization_id)


async def server_stats(backend: Backend, at: datetime.datetime | None) -> list[dict[str, Any]]:
    async with backend.db.connection() as conn:
        return await org_storage.server_stats(conn, at)


async def list_users(backend: Backend, organization_id: str) -> list[dict[str, Any]] | None:
    async with backend.db.connection() as conn:
        return await user_storage.list_active(conn, organization_id)


async def freeze_user(
    backend: Backend,
    organization_id: str,
    frozen: bool,
    *,
    user_id: uuid.UUID | None = None,
    email: str | None = None,
) -> dict[str, Any] | str:
    """Freeze or unfreeze a user: the user object, or the 404 detail."""
    async with backend.db.transaction() as conn:
        outcome = await user_storage.freeze(
            conn, organization_id, frozen, user_id=user_id, email=email
        )
        if isinstance(outcome, dict):
            kind = "USER_REVOKED_OR_FROZEN" if frozen else "USER_UNFROZEN"
            await publish(
                conn, event_types.internal(organization_id, kind, uuid.UUID(outcome["user_id"]))
            )
    if isinstance(outcome, dict):  # committed: drop this process's cache at once (see above)
        backend.auth.forget_user(organization_id, uuid.UUID(outcome["user_id"]).hex)
    return outcome
