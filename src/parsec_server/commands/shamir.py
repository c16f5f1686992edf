"""Shamir recovery setup and deletion (protocol.md §4.8).

shamir_recovery_setup, in the official server's order: an active setup already exists -> brief
certificate (signature, author) -> ballpark -> brief is about the author -> one share certificate
per recipient -> each share (signature, timestamp of the brief, recipient in the brief, no
duplicate, not the author) -> recipients exist and are not revoked -> causality (strictly after the
common and shamir topics).

shamir_recovery_delete: deletion certificate (signature, author) -> ballpark -> about the author ->
the setup it names exists (by its timestamp) -> same recipients -> not already deleted -> causality.
Deleting a setup also cancels its pending recovery invitations.

No SSE event is sent for shamir certificates (like the official server).
"""

from __future__ import annotations

import datetime
import uuid
from typing import assert_never

import asyncpg

from parsec_server.commands.checks import RequireGreaterTimestampRep, greater_than
from parsec_server.commands.context import AuthenticatedClient
from parsec_server.commands.invite import greeters_of, publish_invitation_event
from parsec_server.commands.registry import HandshakeError, command
from parsec_server.crypto import certificates as certs
from parsec_server.crypto.ballpark import check_ballpark
from parsec_server.protocol.codec import now
from parsec_server.protocol.generated.authenticated import (
    ShamirRecoveryDeleteRep,
    ShamirRecoveryDeleteReq,
    ShamirRecoverySetupRep,
    ShamirRecoverySetupReq,
)
from parsec_server.storage import invite as invite_storage
from parsec_server.storage import shamir as storage
from parsec_server.storage import topics


async def _lock(
    conn: asyncpg.Connection, client: AuthenticatedClient
) -> tuple[topics.CommonLock, storage.Topics]:
    lock = await topics.lock_common(
        conn, client.org.internal_id, client.device.device_internal_id, write=False
    )
    if lock is None or lock.revoked:
        raise HandshakeError(461)
    if lock.org_expired:
        raise HandshakeError(460)
    return lock, await storage.lock_for_write(conn, client.org.internal_id)


def _require_greater(
    timestamp: datetime.datetime, topic: storage.Topics
) -> RequireGreaterTimestampRep | None:
    if timestamp <= topic.last:
        return greater_than(topic.last)
    return None


def _validate_setup(
    client: AuthenticatedClient, req: ShamirRecoverySetupReq, server_now: datetime.datetime
) -> (
    tuple[
        certs.ShamirRecoveryBriefCertificate,
        list[tuple[certs.ShamirRecoveryShareCertificate, bytes]],
    ]
    | ShamirRecoverySetupRep
):
    device = client.device
    try:
        brief = certs.verify_and_load(
            certs.ShamirRecoveryBriefCertificate,
            req.shamir_recovery_brief_certificate,
            device.verify_key,
            expected_author=device.device_id,
        )
    except certs.InvalidCertificate:
        return {"status": "invalid_certificate_brief_corrupted"}
    if (late := check_ballpark(brief.timestamp, server_now)) is not None:
        return late
    if brief.user_id != device.user_id:
        return {"status": "invalid_certificate_user_id_must_be_self"}
    if len(brief.per_recipient_shares) != len(req.shamir_recovery_share_certificates):
        return {"status": "invalid_certificate_missing_share_for_recipient"}
    shares: dict[uuid.UUID, tuple[certs.ShamirRecoveryShareCertificate, bytes]] = {}
    for raw in req.shamir_recovery_share_certificates:
        try:
            share = certs.verify_and_load(
                certs.ShamirRecoveryShareCertificate,
                raw,
                device.verify_key,
                expected_author=device.device_id,
            )
        except certs.InvalidCertificate:
            return {"status": "invalid_certificate_share_corrupted"}
        if share.timestamp != brief.timestamp:
            return {"status": "invalid_certificate_share_inconsistent_timestamp"}
        if share.recipient not in brief.per_recipient_shares:
            return {"status": "invalid_certificate_share_recipient_not_in_brief"}
        if share.recipient in shares:
            return {"status": "invalid_certificate_duplicate_share_for_recipient"}
        if share.recipient == device.user_id:
            return {"status": "invalid_certificate_author_included_as_recipient"}
        shares[share.recipient] = (share, raw)
    return brief, list(shares.values())


@command(ShamirRecoverySetupReq)
async def shamir_recovery_setup(
    client: AuthenticatedClient, req: ShamirRecoverySetupReq
) -> ShamirRecoverySetupRep:
    org = client.org
    async with client.backend.db.transaction() as conn:
        lock, topic = await _lock(conn, client)
        if await storage.active_setup(conn, lock.user_internal_id) is not None:
            return {
                "status": "shamir_recovery_already_exists",
                # An active setup has its brief certificate: the shamir topic exists.
                "last_shamir_certificate_timestamp": topic.last_shamir or topic.last_common,
            }
        validated = _validate_setup(client, req, now())
        if isinstance(validated, dict):
            return validated
        brief, shares = validated
        users = await storage.find_users(conn, org.internal_id, list(brief.per_recipient_shares))
        for share, _ in shares:
            recipient = users.get(share.recipient)
            if recipient is None:
                return {"status": "recipient_not_found"}
            if recipient.revoked:
                return {
                    "status": "revoked_recipient",
                    "last_common_certificate_timestamp": topic.last_common,
                }
        if (refused := _require_greater(brief.timestamp, topic)) is not None:
            return refused
        inserted = await storage.insert_setup(
            conn,
            org_internal_id=org.internal_id,
            user_internal_id=lock.user_internal_id,
            author_device_internal_id=client.device.device_internal_id,
            created_on=brief.timestamp,
            threshold=brief.threshold,
            ciphered_data=req.ciphered_data,
            reveal_token=req.reveal_token,
            brief_certificate=req.shamir_recovery_brief_certificate,
            shares=[
                (users[share.recipient], brief.per_recipient_shares[share.recipient], raw)
                for share, raw in shares
            ],
        )
    match inserted:
        case "ok":
            return {"status": "ok"}
        case "reveal_token_already_used":
            # No status says "reveal token already used" (a client bug or a replay: tokens are
            # random): the closest is a conflict with an existing setup.
            return {
                "status": "shamir_recovery_already_exists",
                "last_shamir_certificate_timestamp": topic.last_shamir or topic.last_common,
            }
        case _:
            assert_never(inserted)


@command(ShamirRecoveryDeleteReq)
async def shamir_recovery_delete(
    client: AuthenticatedClient, req: ShamirRecoveryDeleteReq
) -> ShamirRecoveryDeleteRep:
    org = client.org
    device = client.device
    async with client.backend.db.transaction() as conn:
        lock, topic = await _lock(conn, client)
        server_now = now()
        try:
            deletion = certs.verify_and_load(
                certs.ShamirRecoveryDeletionCertificate,
                req.shamir_recovery_deletion_certificate,
                device.verify_key,
                expected_author=device.device_id,
            )
        except certs.InvalidCertificate:
            return {"status": "invalid_certificate_corrupted"}
        if (late := check_ballpark(deletion.timestamp, server_now)) is not None:
            return late
        if deletion.setup_to_delete_user_id != device.user_id:
            return {"status": "invalid_certificate_user_id_must_be_self"}
        setup = await storage.setup_created_on(
            conn, lock.user_internal_id, deletion.setup_to_delete_timestamp
        )
        if setup is None:
            return {"status": "shamir_recovery_not_found"}
        if await storage.recipient_ids(conn, setup.internal_id) != set(deletion.share_recipients):
            return {"status": "recipients_mismatch"}
        if setup.deleted_on is not None:
            return {
                "status": "shamir_recovery_already_deleted",
                "last_shamir_certificate_timestamp": topic.last_shamir or setup.deleted_on,
            }
        if (refused := _require_greater(deletion.timestamp, topic)) is not None:
            return refused
        await storage.delete_setup(
            conn,
            org_internal_id=org.internal_id,
            setup_internal_id=setup.internal_id,
            author_device_internal_id=device.device_internal_id,
            deleted_on=deletion.timestamp,
            deletion_certificate=req.shamir_recovery_deletion_certificate,
        )
        for token in await invite_storage.cancel_for_shamir_setup(
            conn, setup.internal_id, server_now
        ):
            inv = await invite_storage.get_for_claimer(conn, org.internal_id, token)
            assert inv is not None
            await publish_invitation_event(
                conn,
                org.organization_id,
                token,
                invite_storage.CANCELLED,
                await greeters_of(conn, inv),
            )
    return {"status": "ok"}
