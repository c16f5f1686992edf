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
import uuid
from collections.abc import Sequence
from typing import Literal, TypedDict, TypeVar, assert_never

import asyncpg

from parsec_server.commands.checks import (
    AuthorNotAllowedRep,
    InvalidCertificateRep,
    NewUserCertificatesReq,
    RequireGreaterTimestampRep,
    greater_than,
    load_new_user_certificates,
    lock_common_as_author,
    verified,
)
from parsec_server.commands.context import AuthenticatedClient
from parsec_server.commands.organization import stored_human
from parsec_server.commands.registry import command
from parsec_server.crypto import certificates as certs
from parsec_server.crypto.ballpark import OutOfBallpark, check_ballpark
from parsec_server.events import types as event_types
from parsec_server.events.bus import Event
from parsec_server.protocol.codec import now as utc_now
from parsec_server.protocol.generated.authenticated import (
    DeviceCreateRep,
    DeviceCreateReq,
    ListFrozenUsersRep,
    ListFrozenUsersReq,
    UserCreateRep,
    UserCreateReq,
    UserRevokeRep,
    UserRevokeReq,
    UserUpdateRep,
    UserUpdateReq,
)
from parsec_server.storage import topics
from parsec_server.storage import user as user_storage

# The certificate of user_revoke / user_update (both about another user).
_AdminCert = TypeVar("_AdminCert", certs.RevokedUserCertificate, certs.UserUpdateCertificate)


async def lock_as_admin(
    conn: asyncpg.Connection, client: AuthenticatedClient, *, write: bool
) -> topics.CommonLock | AuthorNotAllowedRep:
    """Common topic locked (FOR UPDATE if `write`), then the author must be an ADMIN
    (author_not_allowed comes before the outcome of the certificate checks): the lock, or the
    reply. Also async_enrollment_accept / _reject."""
    lock = await lock_common_as_author(conn, client, write=write)
    if lock.profile != "ADMIN":
        return {"status": "author_not_allowed"}
    return lock


# --- user_create ----------------------------------------------------------------------------------


def validate_new_user(
    client: AuthenticatedClient, req: NewUserCertificatesReq, now: datetime.datetime
) -> user_storage.NewUser | InvalidCertificateRep | OutOfBallpark:
    """The four certificates of a new user, signed by the requesting device (user_create,
    async_enrollment_accept), checked in the official order: signatures and content, same
    timestamp, ballpark, same user, redacted copies: the user to create, or the reply."""
    try:
        new = load_new_user_certificates(req, client.device.verify_key, client.device.device_id)
    except certs.InvalidCertificate:
        return {"status": "invalid_certificate"}
    user, device = new.user, new.device
    if user.timestamp != device.timestamp:
        return {"status": "invalid_certificate"}
    late = check_ballpark(user.timestamp, now)
    if late is not None:
        return late
    if user.user_id != device.user_id or not new.redacted_match():
        return {"status": "invalid_certificate"}
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


class HumanHandleAlreadyTakenRep(TypedDict):
    status: Literal["human_handle_already_taken"]


class ActiveUsersLimitReachedRep(TypedDict):
    status: Literal["active_users_limit_reached"]


class UserAlreadyExistsRep(TypedDict):
    status: Literal["user_already_exists"]


# The refusals of a new user once the author may create it (user_create, async_enrollment_accept).
NewUserRefusedRep = (
    InvalidCertificateRep
    | OutOfBallpark
    | RequireGreaterTimestampRep
    | HumanHandleAlreadyTakenRep
    | ActiveUsersLimitReachedRep
    | UserAlreadyExistsRep
)


async def create_new_user(
    conn: asyncpg.Connection,
    client: AuthenticatedClient,
    lock: topics.CommonLock,
    new_user: user_storage.NewUser | InvalidCertificateRep | OutOfBallpark,
    more_events: Sequence[Event] = (),
) -> user_storage.NewUser | NewUserRefusedRep:
    """user_create after the author's profile, under the common topic lock: the outcome of the
    certificate checks (`validate_new_user`), require_greater_timestamp, then the insert with its
    COMMON_CERTIFICATE event (and `more_events`): the created user, or the reply."""
    if isinstance(new_user, dict):
        return new_user
    if new_user.timestamp <= lock.last_common:
        return greater_than(lock.last_common)
    events = [
        event_types.common_certificate(client.org.organization_id, new_user.timestamp),
        *more_events,
    ]
    refused = await user_storage.create_user(conn, client.org.internal_id, new_user, events)
    match refused:
        case None:
            return new_user
        case "human_handle_already_taken":
            return {"status": "human_handle_already_taken"}
        case "active_users_limit_reached":
            return {"status": "active_users_limit_reached"}
        case "user_already_exists":
            return {"status": "user_already_exists"}
        case _:
            assert_never(refused)


@command(UserCreateReq)
async def user_create(client: AuthenticatedClient, req: UserCreateReq) -> UserCreateRep:
    new_user = validate_new_user(client, req, utc_now())
    async with client.backend.db.transaction() as conn:
        lock = await lock_as_admin(conn, client, write=True)
        if isinstance(lock, dict):
            return lock
        created = await create_new_user(conn, client, lock, new_user)
    if isinstance(created, dict):
        return created
    return {"status": "ok"}


# --- device_create --------------------------------------------------------------------------------


def _validate_device_create(
    client: AuthenticatedClient, req: DeviceCreateReq, now: datetime.datetime
) -> user_storage.NewDevice | InvalidCertificateRep | OutOfBallpark:
    key, author = client.device.verify_key, client.device.device_id
    try:
        device = certs.verify_and_load(
            certs.DeviceCertificate, req.device_certificate, key, expected_author=author
        )
        r_device = certs.verify_and_load(
            certs.DeviceCertificate, req.redacted_device_certificate, key, expected_author=author
        )
    except certs.InvalidCertificate:
        return {"status": "invalid_certificate"}
    late = check_ballpark(device.timestamp, now)
    if late is not None:
        return late
    if (
        device.user_id != client.device.user_id
        or not certs.is_redacted(r_device)
        or not certs.redacted_compare(device, r_device)
    ):
        return {"status": "invalid_certificate"}
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


@command(DeviceCreateReq)
async def device_create(client: AuthenticatedClient, req: DeviceCreateReq) -> DeviceCreateRep:
    validated = _validate_device_create(client, req, utc_now())
    if isinstance(validated, dict):
        return validated
    async with client.backend.db.transaction() as conn:
        lock = await lock_common_as_author(conn, client, write=True)
        if validated.timestamp <= lock.last_common:
            return greater_than(lock.last_common)
        events = [event_types.common_certificate(client.org.organization_id, validated.timestamp)]
        if not await user_storage.create_device(conn, client.org.internal_id, validated, events):
            return {"status": "device_already_exists"}
    return {"status": "ok"}


# --- user_revoke / user_update --------------------------------------------------------------------


def _validate_admin_certificate(
    client: AuthenticatedClient, cls: type[_AdminCert], raw: bytes, now: datetime.datetime
) -> _AdminCert | InvalidCertificateRep | OutOfBallpark:
    """Revoked-user / user-update certificate: signed by the author device, in the ballpark, about
    another user (self-revocation or self-update: invalid_certificate)."""
    cert = verified(cls, raw, client, now)
    if not isinstance(cert, dict) and cert.user_id == client.device.user_id:
        return {"status": "invalid_certificate"}
    return cert


def _user_changed_events(
    client: AuthenticatedClient, timestamp: datetime.datetime, kind: str, user_id: uuid.UUID
) -> list[Event]:
    """COMMON_CERTIFICATE, and the internal event `kind` about the changed user (each process drops
    it from its handshake cache)."""
    org_id = client.org.organization_id
    return [
        event_types.common_certificate(org_id, timestamp),
        event_types.internal(org_id, kind, user_id),
    ]


@command(UserRevokeReq)
async def user_revoke(client: AuthenticatedClient, req: UserRevokeReq) -> UserRevokeRep:
    cert = _validate_admin_certificate(
        client, certs.RevokedUserCertificate, req.revoked_user_certificate, utc_now()
    )
    async with client.backend.db.transaction() as conn:
        lock = await lock_as_admin(conn, client, write=True)
        if isinstance(lock, dict):
            return lock
        if isinstance(cert, dict):
            return cert
        outcome = await user_storage.revoke_user(
            conn,
            client.org.internal_id,
            cert.user_id,
            cert.timestamp,
            lock.last_common,
            client.device.device_internal_id,
            req.revoked_user_certificate,
            _user_changed_events(client, cert.timestamp, "USER_REVOKED_OR_FROZEN", cert.user_id),
        )
    if outcome.done:
        return {"status": "ok"}
    if not outcome.found:
        return {"status": "user_not_found"}
    if outcome.already_revoked:
        return {
            "status": "user_already_revoked",
            "last_common_certificate_timestamp": lock.last_common,
        }
    return greater_than(outcome.strictly_greater_than)


@command(UserUpdateReq)
async def user_update(client: AuthenticatedClient, req: UserUpdateReq) -> UserUpdateRep:
    cert = _validate_admin_certificate(
        client, certs.UserUpdateCertificate, req.user_update_certificate, utc_now()
    )
    async with client.backend.db.transaction() as conn:
        lock = await lock_as_admin(conn, client, write=True)
        if isinstance(lock, dict):
            return lock
        if isinstance(cert, dict):
            return cert
        refused = await user_storage.update_user(
            conn,
            client.org.internal_id,
            cert.user_id,
            cert.new_profile,
            cert.timestamp,
            cert.timestamp > lock.last_common,
            client.device.device_internal_id,
            req.user_update_certificate,
            _user_changed_events(client, cert.timestamp, "USER_UPDATED", cert.user_id),
        )
    match refused:
        case None:
            return {"status": "ok"}
        case "user_not_found":
            return {"status": "user_not_found"}
        case "user_revoked":
            return {"status": "user_revoked"}
        case "user_no_changes":
            return {"status": "user_no_changes"}
        case "require_greater_timestamp":
            return greater_than(lock.last_common)
        case _:
            assert_never(refused)


# --- list_frozen_users ----------------------------------------------------------------------------


@command(ListFrozenUsersReq)
async def list_frozen_users(
    client: AuthenticatedClient, req: ListFrozenUsersReq
) -> ListFrozenUsersRep:
    async with client.backend.db.connection() as conn:
        profile, frozen = await user_storage.list_frozen(
            conn, client.org.internal_id, client.device.user_internal_id
        )
    if profile != "ADMIN":
        return {"status": "author_not_allowed"}
    return {"status": "ok", "frozen_users": frozen}
