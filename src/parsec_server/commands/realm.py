"""Realm commands (protocol.md §4.5): realm_create, realm_share, realm_unshare,
realm_self_promote_to_owner, realm_rename, realm_update_archiving, realm_rotate_key,
realm_get_keys_bundle.

Each certificate command checks its certificate first, without the database (signature and author,
then ballpark, then its content), then runs one transaction (storage/realm.py): common topic FOR
SHARE, realm topic FOR UPDATE, the realm's state read under those locks, the checks, the write.
Replies follow the official server's order of checks:

    author aborts (460/461) -> [create/self-promote: author profile] -> certificate
    (invalid_certificate, timestamp_out_of_ballpark) -> realm_not_found -> realm_deleted ->
    author's role -> command checks -> require_greater_timestamp

require_greater_timestamp compares with the common and realm topics, and, for role changes (share,
unshare, self-promotion), with the realm's last vlob too (§4.2).
"""

from __future__ import annotations

import datetime
import uuid
from typing import Literal, TypedDict

import asyncpg

from parsec_server.commands.checks import (
    AuthorNotAllowedRep,
    RequireGreaterTimestampRep,
    greater_than,
    lock_common_as_author,
    verified,
)
from parsec_server.commands.context import AuthenticatedClient
from parsec_server.commands.registry import command
from parsec_server.crypto import certificates as certs
from parsec_server.events import types as event_types
from parsec_server.protocol.codec import now as utc_now
from parsec_server.protocol.generated.authenticated import (
    RealmCreateRep,
    RealmCreateReq,
    RealmGetKeysBundleRep,
    RealmGetKeysBundleReq,
    RealmRenameRep,
    RealmRenameReq,
    RealmRotateKeyRep,
    RealmRotateKeyReq,
    RealmSelfPromoteToOwnerRep,
    RealmSelfPromoteToOwnerReq,
    RealmShareRep,
    RealmShareReq,
    RealmUnshareRep,
    RealmUnshareReq,
    RealmUpdateArchivingRep,
    RealmUpdateArchivingReq,
)
from parsec_server.storage import realm as realm_storage
from parsec_server.storage import topics
from parsec_server.storage.realm import ROLE_PRIORITY, RealmState

_OWNER_OR_MANAGER = frozenset({"OWNER", "MANAGER"})


# --- helpers --------------------------------------------------------------------------------------


class _RealmNotFound(TypedDict):
    status: Literal["realm_not_found"]


class _RealmDeleted(TypedDict):
    status: Literal["realm_deleted"]


async def _lock_realm(
    conn: asyncpg.Connection,
    client: AuthenticatedClient,
    realm_id: uuid.UUID,
    recipient: uuid.UUID | None = None,
) -> RealmState | _RealmNotFound | _RealmDeleted | AuthorNotAllowedRep:
    """Realm topic FOR UPDATE, then its state; realm_not_found / realm_deleted / author_not_allowed
    (the author has no role) as replies."""
    realm = await realm_storage.lock(conn, client.org.internal_id, realm_id)
    if realm is None:
        return {"status": "realm_not_found"}
    state = await realm_storage.state(
        conn, client.org.internal_id, realm, client.device.user_internal_id, recipient
    )
    if state.status == "DELETED":
        return {"status": "realm_deleted"}
    if state.author_role is None:
        return {"status": "author_not_allowed"}
    return state


def _require_greater(
    timestamp: datetime.datetime, *lasts: datetime.datetime | None
) -> RequireGreaterTimestampRep | None:
    """require_greater_timestamp unless `timestamp` is after every known (not None) timestamp."""
    last = max(ts for ts in lasts if ts is not None)
    if timestamp <= last:
        return greater_than(last)
    return None


def _event(
    client: AuthenticatedClient,
    timestamp: datetime.datetime,
    realm_id: uuid.UUID,
    user_id: uuid.UUID,
    role_removed: bool = False,
) -> str:
    event = event_types.realm_certificate(
        client.org.organization_id, timestamp, realm_id, user_id, role_removed=role_removed
    )
    return topics.event_payloads([event])[0]


def _certified(
    client: AuthenticatedClient,
    state: RealmState,
    cert: certs.RealmRoleCertificate
    | certs.RealmNameCertificate
    | certs.RealmArchivingCertificate
    | certs.RealmKeyRotationCertificate,
    raw: bytes,
    event_user_id: uuid.UUID,
    *,
    role_removed: bool = False,
) -> realm_storage.RealmCertificate:
    """What every realm certificate write stores besides its own rows (storage/realm.py)."""
    return realm_storage.RealmCertificate(
        org_internal_id=client.org.internal_id,
        realm_internal_id=state.internal_id,
        timestamp=cert.timestamp,
        author_device_internal_id=client.device.device_internal_id,
        certificate=raw,
        event=_event(client, cert.timestamp, cert.realm_id, event_user_id, role_removed),
    )


# --- realm_create ---------------------------------------------------------------------------------


@command(RealmCreateReq)
async def realm_create(client: AuthenticatedClient, req: RealmCreateReq) -> RealmCreateRep:
    cert = verified(certs.RealmRoleCertificate, req.realm_role_certificate, client, utc_now())
    if not isinstance(cert, dict) and (cert.user_id != client.user_id or cert.role != "OWNER"):
        cert = {"status": "invalid_certificate"}
    org = client.org
    async with client.backend.db.transaction() as conn:
        common = await lock_common_as_author(conn, client, write=False)
        if common.profile == "OUTSIDER":
            return {"status": "author_not_allowed"}
        if isinstance(cert, dict):
            return cert
        refusal = _require_greater(cert.timestamp, common.last_common)
        if refusal is not None:
            return refusal
        created = await realm_storage.create(
            conn,
            org.internal_id,
            cert.realm_id,
            cert.timestamp,
            client.device.device_internal_id,
            common.user_internal_id,
            req.realm_role_certificate,
            _event(client, cert.timestamp, cert.realm_id, cert.user_id),
        )
        if not created:
            last = await realm_storage.last_timestamp(conn, org.internal_id, cert.realm_id)
            assert last is not None
            return {"status": "realm_already_exists", "last_realm_certificate_timestamp": last}
    return {"status": "ok"}


# --- realm_share / realm_unshare / realm_self_promote_to_owner ------------------------------
# A role change must also come after the realm's last vlob (§4.2).


@command(RealmShareReq)
async def realm_share(client: AuthenticatedClient, req: RealmShareReq) -> RealmShareRep:
    cert = verified(certs.RealmRoleCertificate, req.realm_role_certificate, client, utc_now())
    if not isinstance(cert, dict) and (cert.user_id == client.user_id or cert.role is None):
        cert = {"status": "invalid_certificate"}
    async with client.backend.db.transaction() as conn:
        common = await lock_common_as_author(conn, client, write=False)
        if isinstance(cert, dict):
            return cert
        state = await _lock_realm(conn, client, cert.realm_id, cert.user_id)
        if isinstance(state, dict):
            return state
        if state.recipient is None:
            return {"status": "recipient_not_found"}
        if state.recipient_revoked:
            return {"status": "recipient_revoked"}
        # Granting or taking away OWNER/MANAGER needs an OWNER; READER/CONTRIBUTOR an OWNER or a
        # MANAGER.
        if state.recipient_role in _OWNER_OR_MANAGER or cert.role in _OWNER_OR_MANAGER:
            allowed = state.author_role == "OWNER"
        else:
            allowed = state.author_role in _OWNER_OR_MANAGER
        if not allowed:
            return {"status": "author_not_allowed"}
        if state.recipient_profile == "OUTSIDER" and cert.role in _OWNER_OR_MANAGER:
            return {"status": "role_incompatible_with_outsider"}
        if state.recipient_role == cert.role:
            return {
                "status": "role_already_granted",
                "last_realm_certificate_timestamp": state.last_timestamp,
            }
        # The recipient gets an access to the current keys: there must be one.
        if state.keys_bundle is None or req.key_index != state.key_index:
            return {
                "status": "bad_key_index",
                "last_realm_certificate_timestamp": state.last_timestamp,
            }
        refusal = _require_greater(
            cert.timestamp, common.last_common, state.last_timestamp, state.last_vlob_timestamp
        )
        if refusal is not None:
            return refusal
        assert state.recipient is not None
        await realm_storage.set_role(
            conn,
            _certified(client, state, cert, req.realm_role_certificate, cert.user_id),
            user_internal_id=state.recipient,
            role=cert.role,
            keys_bundle=state.keys_bundle,
            keys_bundle_access=req.recipient_keys_bundle_access,
        )
    return {"status": "ok"}


@command(RealmUnshareReq)
async def realm_unshare(client: AuthenticatedClient, req: RealmUnshareReq) -> RealmUnshareRep:
    cert = verified(certs.RealmRoleCertificate, req.realm_role_certificate, client, utc_now())
    if not isinstance(cert, dict) and (cert.user_id == client.user_id or cert.role is not None):
        cert = {"status": "invalid_certificate"}
    async with client.backend.db.transaction() as conn:
        common = await lock_common_as_author(conn, client, write=False)
        if isinstance(cert, dict):
            return cert
        state = await _lock_realm(conn, client, cert.realm_id, cert.user_id)
        if isinstance(state, dict):
            return state
        # A revoked recipient may be unshared (clients watch unsharings to know when to rotate
        # keys).
        if state.recipient is None:
            return {"status": "recipient_not_found"}
        if state.recipient_role is None:
            return {
                "status": "recipient_already_unshared",
                "last_realm_certificate_timestamp": state.last_timestamp,
            }
        if not (
            state.author_role == "OWNER"
            or (state.author_role == "MANAGER" and state.recipient_role not in _OWNER_OR_MANAGER)
        ):
            return {"status": "author_not_allowed"}
        refusal = _require_greater(
            cert.timestamp, common.last_common, state.last_timestamp, state.last_vlob_timestamp
        )
        if refusal is not None:
            return refusal
        await realm_storage.set_role(
            conn,
            _certified(
                client, state, cert, req.realm_role_certificate, cert.user_id, role_removed=True
            ),
            user_internal_id=state.recipient,
            role=None,
        )
    return {"status": "ok"}


@command(RealmSelfPromoteToOwnerReq)
async def realm_self_promote_to_owner(
    client: AuthenticatedClient, req: RealmSelfPromoteToOwnerReq
) -> RealmSelfPromoteToOwnerRep:
    """Take ownership of a realm whose owners are all revoked: allowed to the non-revoked member(s)
    with the highest role."""
    cert = verified(certs.RealmRoleCertificate, req.realm_role_certificate, client, utc_now())
    if not isinstance(cert, dict) and (cert.user_id != client.user_id or cert.role != "OWNER"):
        cert = {"status": "invalid_certificate"}
    async with client.backend.db.transaction() as conn:
        common = await lock_common_as_author(conn, client, write=False)
        if common.profile == "OUTSIDER":
            return {"status": "author_is_outsider"}
        if isinstance(cert, dict):
            return cert
        state = await _lock_realm(conn, client, cert.realm_id)
        if isinstance(state, dict):
            return state
        if state.has_active_owner:
            return {
                "status": "active_owner_already_exists",
                "last_realm_certificate_timestamp": state.last_timestamp,
            }
        assert state.author_role is not None
        if ROLE_PRIORITY[state.author_role] < state.max_active_priority:
            return {"status": "author_not_allowed"}
        refusal = _require_greater(
            cert.timestamp, common.last_common, state.last_timestamp, state.last_vlob_timestamp
        )
        if refusal is not None:
            return refusal
        await realm_storage.set_role(
            conn,
            _certified(client, state, cert, req.realm_role_certificate, cert.user_id),
            user_internal_id=common.user_internal_id,
            role="OWNER",
        )
    return {"status": "ok"}


# --- realm_rename / realm_update_archiving --------------------------------------------------


@command(RealmRenameReq)
async def realm_rename(client: AuthenticatedClient, req: RealmRenameReq) -> RealmRenameRep:
    cert = verified(certs.RealmNameCertificate, req.realm_name_certificate, client, utc_now())
    async with client.backend.db.transaction() as conn:
        common = await lock_common_as_author(conn, client, write=False)
        if isinstance(cert, dict):
            return cert
        state = await _lock_realm(conn, client, cert.realm_id)
        if isinstance(state, dict):
            return state
        if state.author_role != "OWNER":
            return {"status": "author_not_allowed"}
        if cert.key_index != state.key_index:
            return {
                "status": "bad_key_index",
                "last_realm_certificate_timestamp": state.last_timestamp,
            }
        if req.initial_name_or_fail and state.has_name:
            return {
                "status": "initial_name_already_exists",
                "last_realm_certificate_timestamp": state.last_timestamp,
            }
        refusal = _require_greater(cert.timestamp, common.last_common, state.last_timestamp)
        if refusal is not None:
            return refusal
        await realm_storage.rename(
            conn,
            _certified(client, state, cert, req.realm_name_certificate, client.user_id),
            key_index=cert.key_index,
        )
    return {"status": "ok"}


@command(RealmUpdateArchivingReq)
async def realm_update_archiving(
    client: AuthenticatedClient, req: RealmUpdateArchivingReq
) -> RealmUpdateArchivingRep:
    """ARCHIVED and DELETION_PLANNED make the realm read-only, AVAILABLE writable again; a deletion
    date must leave the organization's minimum archiving period."""
    cert = verified(certs.RealmArchivingCertificate, req.archiving_certificate, client, utc_now())
    async with client.backend.db.transaction() as conn:
        common = await lock_common_as_author(conn, client, write=False)
        if isinstance(cert, dict):
            return cert
        state = await _lock_realm(conn, client, cert.realm_id)
        if isinstance(state, dict):
            return state
        if state.author_role != "OWNER":
            return {"status": "author_not_allowed"}
        configuration = cert.configuration["type"]
        deletion_date = cert.configuration.get("deletion_date")
        if deletion_date is not None and deletion_date < cert.timestamp + datetime.timedelta(
            seconds=state.minimum_archiving_period
        ):
            return {"status": "archiving_period_too_short"}
        refusal = _require_greater(cert.timestamp, common.last_common, state.last_timestamp)
        if refusal is not None:
            return refusal
        await realm_storage.update_archiving(
            conn,
            _certified(client, state, cert, req.archiving_certificate, client.user_id),
            configuration=configuration,
            deletion_date=deletion_date,
        )
    return {"status": "ok"}


# --- realm_rotate_key / realm_get_keys_bundle -----------------------------------------------


@command(RealmRotateKeyReq)
async def realm_rotate_key(
    client: AuthenticatedClient, req: RealmRotateKeyReq
) -> RealmRotateKeyRep:
    """A new key for the realm: index current + 1 (the first rotation gives 1), an access for every
    user whose current role is not None (revoked ones included), and for every active sequester
    service of a sequestered organization."""
    cert = verified(
        certs.RealmKeyRotationCertificate, req.realm_key_rotation_certificate, client, utc_now()
    )
    org = client.org
    async with client.backend.db.transaction() as conn:
        common = await lock_common_as_author(conn, client, write=False)
        if isinstance(cert, dict):
            return cert
        # lock order (storage/topics.py): common, sequester, then realm topics
        last_sequester = (
            await topics.lock_sequester(conn, org.internal_id, write=False)
            if org.is_sequestered
            else None
        )
        state = await _lock_realm(conn, client, cert.realm_id)
        if isinstance(state, dict):
            return state
        if state.author_role != "OWNER":
            return {"status": "author_not_allowed"}
        if cert.key_index != state.key_index + 1:
            return {
                "status": "bad_key_index",
                "last_realm_certificate_timestamp": state.last_timestamp,
            }
        refusal = _require_greater(cert.timestamp, common.last_common, state.last_timestamp)
        if refusal is not None:
            return refusal
        participants = await realm_storage.participants(conn, state.internal_id)
        if req.per_participant_keys_bundle_access.keys() != participants.keys():
            return {
                "status": "participant_mismatch",
                "last_realm_certificate_timestamp": state.last_timestamp,
            }
        sequester_accesses: dict[int, bytes] = {}
        per_service = req.per_sequester_service_keys_bundle_access
        if not org.is_sequestered:
            if per_service is not None:
                return {"status": "organization_not_sequestered"}
        else:
            services = await realm_storage.active_sequester_services(conn, org.internal_id)
            if per_service is None or per_service.keys() != services.keys():
                assert last_sequester is not None
                return {
                    "status": "sequester_service_mismatch",
                    "last_sequester_certificate_timestamp": last_sequester,
                }
            sequester_accesses = {services[sid]: access for sid, access in per_service.items()}
        await realm_storage.rotate_key(
            conn,
            _certified(client, state, cert, req.realm_key_rotation_certificate, client.user_id),
            key_index=cert.key_index,
            key_canary=cert.key_canary,
            keys_bundle=req.keys_bundle,
            accesses={
                participants[uid]: access
                for uid, access in req.per_participant_keys_bundle_access.items()
            },
            sequester_accesses=sequester_accesses,
        )
    return {"status": "ok"}


@command(RealmGetKeysBundleReq)
async def realm_get_keys_bundle(
    client: AuthenticatedClient, req: RealmGetKeysBundleReq
) -> RealmGetKeysBundleRep:
    """The keys bundle of a key index and the requester's newest access to it (from the rotation,
    or from a later sharing). Needs a current role; an unknown realm also answers
    author_not_allowed."""
    if req.key_index == 0:
        return {"status": "bad_key_index"}
    async with client.backend.db.connection() as conn:
        row = await realm_storage.get_keys_bundle(
            conn,
            client.org.internal_id,
            client.device.user_internal_id,
            req.realm_id,
            req.key_index,
        )
    if row["realm"] is None or not row["member"]:
        return {"status": "author_not_allowed"}
    if row["status"] == "DELETED":
        return {"status": "realm_deleted"}
    if row["role"] is None:
        return {"status": "author_not_allowed"}
    if row["keys_bundle_id"] is None:
        return {"status": "bad_key_index"}
    if row["access"] is None:
        return {"status": "access_not_available_for_author"}
    return {"status": "ok", "keys_bundle_access": row["access"], "keys_bundle": row["keys_bundle"]}
