"""Users and devices: user_create, device_create, user_revoke, user_update, list_frozen_users
(protocol.md §4.4).

Each command is one transaction that starts by locking the common topic FOR UPDATE together with
the author's row (storage.topics.lock_common): author revoked meanwhile -> 461, organization
expired -> 460. The certificates are verified before the transaction (pure computation, no lock
held), but their outcome is reported in the protocol's order: author_not_allowed (current profile,
read under the lock) first, then invalid_certificate / timestamp_out_of_ballpark, then the checks
against stored state, then require_greater_timestamp against the common topic (user_revoke: also
the realms of the revoked user).
"""

from __future__ import annotations

import datetime
from typing import Any

import asyncpg

from parsec_server.commands.context import AuthenticatedClient
from parsec_server.commands.organization import INVALID_CERTIFICATE, OK, stored_human
from parsec_server.commands.registry import AUTHENTICATED, HandshakeError, handles
from parsec_server.crypto import certificates as certs
from parsec_server.crypto.ballpark import check_ballpark
from parsec_server.events import types as event_types
from parsec_server.protocol.codec import now as utc_now
from parsec_server.storage import topics
from parsec_server.storage import user as user_storage

AUTHOR_NOT_ALLOWED: dict[str, Any] = {"status": "author_not_allowed"}


def require_greater_timestamp(ts: datetime.datetime) -> dict[str, Any]:
    return {"status": "require_greater_timestamp", "strictly_greater_than": ts}


async def lock_common_as_author(
    conn: asyncpg.Connection, client: AuthenticatedClient, *, write: bool
) -> topics.CommonLock:
    """Lock the common topic and re-check the author (protocol.md §4.1 step 1)."""
    lock = await topics.lock_common(
        conn, client.org.internal_id, client.device.device_internal_id, write=write
    )
    if lock is None:
        raise HandshakeError(404)
    if lock.org_expired:
        raise HandshakeError(460)
    if lock.revoked:
        raise HandshakeError(461)
    return lock


# --- user_create ----------------------------------------------------------------------------------


def _validate_user_create(
    client: AuthenticatedClient, req: Any, now: datetime.datetime
) -> user_storage.NewUser | dict[str, Any]:
    key, author = client.device.verify_key, client.device.device_id
    try:
        device = certs.verify_and_load(
            certs.DeviceCertificate, req.device_certificate, key, expected_author=author
        )
        user = certs.verify_and_load(
            certs.UserCertificate, req.user_certificate, key, expected_author=author
        )
        r_user = certs.verify_and_load(
            certs.UserCertificate, req.redacted_user_certificate, key, expected_author=author
        )
        r_device = certs.verify_and_load(
            certs.DeviceCertificate, req.redacted_device_certificate, key, expected_author=author
        )
    except certs.InvalidCertificate:
        return INVALID_CERTIFICATE
    if user.timestamp != device.timestamp:
        return INVALID_CERTIFICATE
    late = check_ballpark(user.timestamp, now)
    if late is not None:
        return late
    if (
        user.user_id != device.user_id
        or not certs.is_redacted(r_user)
        or not certs.is_redacted(r_device)
        or not certs.redacted_compare(user, r_user)
        or not certs.redacted_compare(device, r_device)
    ):
        return INVALID_CERTIFICATE
    email, label = stored_human(user)
    return user_storage.NewUser(
        timestamp=user.timestamp,
        author_device_internal_id=client.device.device_internal_id,
        user_id=user.user_id,
        email=email,
        label=label,
        profile=user.profile,
        device_id=device.device_id,
        device_label=device.device_label,
        device_purpose=device.purpose or "STANDARD",
        verify_key=device.verify_key,
        user_certificate=req.user_certificate,
        redacted_user_certificate=req.redacted_user_certificate,
        device_certificate=req.device_certificate,
        redacted_device_certificate=req.redacted_device_certificate,
    )


@handles(AUTHENTICATED, "user_create")
async def user_create(client: AuthenticatedClient, req: Any) -> dict[str, Any]:
    validated = _validate_user_create(client, req, utc_now())
    async with client.backend.db.transaction() as conn:
        lock = await lock_common_as_author(conn, client, write=True)
        if lock.profile != "ADMIN":
            return AUTHOR_NOT_ALLOWED
        if isinstance(validated, dict):
            return validated
        if validated.timestamp <= lock.last_common:
            return require_greater_timestamp(lock.last_common)
        events = [event_types.common_certificate(client.org.organization_id, validated.timestamp)]
        refused = await user_storage.create_user(conn, client.org.internal_id, validated, events)
    return OK if refused is None else {"status": refused}


# --- device_create --------------------------------------------------------------------------------


def _validate_device_create(
    client: AuthenticatedClient, req: Any, now: datetime.datetime
) -> user_storage.NewDevice | dict[str, Any]:
    key, author = client.device.verify_key, client.device.device_id
    try:
        device = certs.verify_and_load(
            certs.DeviceCertificate, req.device_certificate, key, expected_author=author
        )
        r_device = certs.verify_and_load(
            certs.DeviceCertificate, req.redacted_device_certificate, key, expected_author=author
        )
    except certs.InvalidCertificate:
        return INVALID_CERTIFICATE
    late = check_ballpark(device.timestamp, now)
    if late is not None:
        return late
    if (
        device.user_id != client.device.user_id
        or not certs.is_redacted(r_device)
        or not certs.redacted_compare(device, r_device)
    ):
        return INVALID_CERTIFICATE
    return user_storage.NewDevice(
        timestamp=device.timestamp,
        author_device_internal_id=client.device.device_internal_id,
        user_internal_id=client.device.user_internal_id,
        device_id=device.device_id,
        device_label=device.device_label,
        device_purpose=device.purpose or "STANDARD",
        verify_key=device.verify_key,
        device_certificate=req.device_certificate,
        redacted_device_certificate=req.redacted_device_certificate,
    )


@handles(AUTHENTICATED, "device_create")
async def device_create(client: AuthenticatedClient, req: Any) -> dict[str, Any]:
    validated = _validate_device_create(client, req, utc_now())
    if isinstance(validated, dict):
        return validated
    async with client.backend.db.transaction() as conn:
        lock = await lock_common_as_author(conn, client, write=True)
        if validated.timestamp <= lock.last_common:
            return require_greater_timestamp(lock.last_common)
        events = [event_types.common_certificate(client.org.organization_id, validated.timestamp)]
        if not await user_storage.create_device(conn, client.org.internal_id, validated, events):
            return {"status": "device_already_exists"}
    return OK


# --- user_revoke / user_update --------------------------------------------------------------------


def _validate_admin_certificate(
    client: AuthenticatedClient, cls: type[certs.C], raw: bytes, now: datetime.datetime
) -> certs.C | dict[str, Any]:
    """Revoked-user / user-update certificate: signed by the author device, in the ballpark, about
    another user (self-revocation or self-update: invalid_certificate)."""
    try:
        cert = certs.verify_and_load(
            cls, raw, client.device.verify_key, expected_author=client.device.device_id
        )
    except certs.InvalidCertificate:
        return INVALID_CERTIFICATE
    late = check_ballpark(cert.timestamp, now)  # type: ignore[attr-defined]
    if late is not None:
        return late
    if cert.user_id == client.device.user_id:  # type: ignore[attr-defined]
        return INVALID_CERTIFICATE
    return cert


@handles(AUTHENTICATED, "user_revoke")
async def user_revoke(client: AuthenticatedClient, req: Any) -> dict[str, Any]:
    cert = _validate_admin_certificate(
        client, certs.RevokedUserCertificate, req.revoked_user_certificate, utc_now()
    )
    org_id = client.org.organization_id
    async with client.backend.db.transaction() as conn:
        lock = await lock_common_as_author(conn, client, write=True)
        if lock.profile != "ADMIN":
            return AUTHOR_NOT_ALLOWED
        if isinstance(cert, dict):
            return cert
        events = [
            event_types.common_certificate(org_id, cert.timestamp),
            event_types.internal(org_id, "USER_REVOKED_OR_FROZEN", cert.user_id),
        ]
        outcome = await user_storage.revoke_user(
            conn,
            client.org.internal_id,
            cert.user_id,
            cert.timestamp,
            lock.last_common,
            client.device.device_internal_id,
            req.revoked_user_certificate,
            events,
        )
    if outcome.done:
        return OK
    if not outcome.found:
        return {"status": "user_not_found"}
    if outcome.already_revoked:
        return {
            "status": "user_already_revoked",
            "last_common_certificate_timestamp": lock.last_common,
        }
    return require_greater_timestamp(outcome.strictly_greater_than)


@handles(AUTHENTICATED, "user_update")
async def user_update(client: AuthenticatedClient, req: Any) -> dict[str, Any]:
    cert = _validate_admin_certificate(
        client, certs.UserUpdateCertificate, req.user_update_certificate, utc_now()
    )
    org_id = client.org.organization_id
    async with client.backend.db.transaction() as conn:
        lock = await lock_common_as_author(conn, client, write=True)
        if lock.profile != "ADMIN":
            return AUTHOR_NOT_ALLOWED
        if isinstance(cert, dict):
            return cert
        events = [
            event_types.common_certificate(org_id, cert.timestamp),
            event_types.internal(org_id, "USER_UPDATED", cert.user_id),
        ]
        refused = await user_storage.update_user(
            conn,
            client.org.internal_id,
            cert.user_id,
            cert.new_profile,
            cert.timestamp,
            cert.timestamp > lock.last_common,
            client.device.device_internal_id,
            req.user_update_certificate,
            events,
        )
    if refused is None:
        return OK
    if refused == "require_greater_timestamp":
        return require_greater_timestamp(lock.last_common)
    return {"status": refused}


# --- list_frozen_users ----------------------------------------------------------------------------


@handles(AUTHENTICATED, "list_frozen_users")
async def list_frozen_users(client: AuthenticatedClient, req: Any) -> dict[str, Any]:
    async with client.backend.db.connection() as conn:
        profile, frozen = await user_storage.list_frozen(
            conn, client.org.internal_id, client.device.user_internal_id
        )
    if profile != "ADMIN":
        return AUTHOR_NOT_ALLOWED
    return {"status": "ok", "frozen_users": frozen}
