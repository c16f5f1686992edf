"""vlob_create, vlob_update, vlob_read_batch, vlob_read_versions, vlob_poll_changes (protocol.md
§4.6).

One statement per command (storage/vlob.py); the handler picks the reply from the facts it returns,
in the official server's order:

* writes: realm_not_found -> realm_archived / realm_deleted -> author_not_allowed (role below
  CONTRIBUTOR) -> bad_key_index -> (update) vlob_not_found -> bad_vlob_version ->
  timestamp_out_of_ballpark -> require_greater_timestamp (common topic first, then realm topic) ->
  (create) vlob_already_exists.
* reads: too_many_elements (before anything) -> realm_not_found -> realm_deleted ->
  author_not_allowed.

Sequestered organizations: a sequester service of webhook type is asked before the write, once
every other check passed (the official in-memory back end's rule; the official PostgreSQL back end
never calls them), with no database connection held while it answers (`--webhook-timeout`). A 400
answer is `rejected_by_sequester_service` (with its reason), any other failure
`sequester_service_unavailable`; the statement then runs again and writes only if every webhook
service accepted (storage/vlob.py). Unlike the in-memory back end, vlob_update checks the version
before asking (the service is never asked about a write that is refused anyway).
"""

from __future__ import annotations

import datetime
from typing import Literal, assert_never

import asyncpg

from parsec_server import webhooks
from parsec_server.commands.context import AuthenticatedClient
from parsec_server.commands.registry import HandshakeError, command
from parsec_server.crypto.ballpark import in_ballpark, timestamp_out_of_ballpark
from parsec_server.protocol.codec import now as utc_now
from parsec_server.protocol.generated.authenticated import (
    VlobCreateRep,
    VlobCreateReq,
    VlobPollChangesRep,
    VlobPollChangesReq,
    VlobReadBatchRep,
    VlobReadBatchRepAuthorNotAllowed,
    VlobReadBatchRepRealmDeleted,
    VlobReadBatchRepRealmNotFound,
    VlobReadBatchReq,
    VlobReadVersionsRep,
    VlobReadVersionsReq,
    VlobUpdateRep,
    VlobUpdateReq,
)
from parsec_server.storage import vlob as vlob_storage
from parsec_server.storage.vlob import ReadFacts, VlobItems
from parsec_server.storage.write_rules import Refusal, WriteFacts, write_refusal

READ_ITEMS_LIMIT = 1000
# A write retries when a certificate of its realm or organization committed while it ran; more
# than a few in a row would take a flood of certificates.
_STALE_RETRIES = 20


def _check_author(is_expired: bool, revoked: bool) -> None:
    """Handshake-level refusals found inside the command (state changed since authentication)."""
    if is_expired:
        raise HandshakeError(460)
    if revoked:
        raise HandshakeError(461)


class _Refused:
    """A write the statement refused: its facts and the first rule they break."""

    __slots__ = ("facts", "now", "refusal")

    def __init__(self, facts: WriteFacts, refusal: Refusal, now: datetime.datetime) -> None:
        self.facts = facts
        self.refusal = refusal
        self.now = now


class _Raced:
    """A concurrent write of the same version committed first (unique index)."""

    __slots__ = ()


# A webhook service refused the write (sequestered organizations).
_Sequestered = webhooks.Rejected | webhooks.Unavailable


async def _write(
    client: AuthenticatedClient, req: VlobCreateReq | VlobUpdateReq, version: int, update: bool
) -> _Refused | _Raced | _Sequestered | None:
    """Run the write statement (again while its snapshot is stale, or once the webhook services
    accepted); None: written."""
    now = utc_now()
    ballpark_ok = in_ballpark(req.timestamp, now)
    device = client.device
    db = client.backend.db
    accepted: list[int] | None = [] if client.org.is_sequestered else None
    for _ in range(_STALE_RETRIES):
        try:
            async with db.connection() as conn:
                out = await vlob_storage.write(
                    conn,
                    org_internal_id=client.org.internal_id,
                    organization_id=client.org.organization_id,
                    user_internal_id=device.user_internal_id,
                    device_internal_id=device.device_internal_id,
                    device_id=device.device_id,
                    realm_id=req.realm_id,
                    vlob_id=req.vlob_id,
                    key_index=req.key_index,
                    timestamp=req.timestamp,
                    blob=req.blob,
                    version=version,
                    update=update,
                    in_ballpark=ballpark_ok,
                    accepted_webhooks=accepted,
                )
        except asyncpg.UniqueViolationError:
            return _Raced()
        if out is None:
            raise HandshakeError(404)
        if out.stale:
            continue
        if not out.webhooks:
            break
        _check_author(out.is_expired, out.revoked)
        expect: int | Literal["create"] = version if update else "create"
        if (
            write_refusal(
                out.facts,
                key_index=req.key_index,
                expect=expect,
                timestamp=req.timestamp,
                in_ballpark=ballpark_ok,
            )
            is not None
        ):
            break  # refused whatever the services say: do not ask them
        assert accepted is not None  # webhooks are only read for sequestered organizations
        verdict = await webhooks.sequester_vlob(
            [(hook.service_id, hook.url) for hook in out.webhooks],
            webhooks.VlobChange(
                client.org.organization_id,
                device.device_id,
                req.realm_id,
                req.vlob_id,
                req.key_index,
                version,
                req.timestamp,
                req.blob,
            ),
            client.backend.config.webhook_timeout,
        )
        if verdict is not None:
            return verdict
        accepted += [hook.internal_id for hook in out.webhooks]
    else:
        raise asyncpg.SerializationError("vlob write kept racing with certificate writes")

    _check_author(out.is_expired, out.revoked)
    if out.written:
        return None
    refusal = write_refusal(
        out.facts,
        key_index=req.key_index,
        expect=version if update else "create",
        timestamp=req.timestamp,
        in_ballpark=ballpark_ok,
    )
    if refusal is None:
        raise AssertionError(f"the SQL refused a vlob write write_refusal accepts: {out!r:.300}")
    return _Refused(out.facts, refusal, now)


@command(VlobCreateReq)
async def vlob_create(client: AuthenticatedClient, req: VlobCreateReq) -> VlobCreateRep:
    out = await _write(client, req, 1, update=False)
    if out is None:
        return {"status": "ok"}
    if isinstance(out, _Raced):
        return {"status": "vlob_already_exists"}
    if isinstance(out, webhooks.Rejected):
        return {
            "status": "rejected_by_sequester_service",
            "service_id": out.service_id,
            "reason": out.reason,
        }
    if isinstance(out, webhooks.Unavailable):
        return {"status": "sequester_service_unavailable", "service_id": out.service_id}
    facts = out.facts
    match out.refusal:
        case Refusal.REALM_NOT_FOUND:
            return {"status": "realm_not_found"}
        case Refusal.REALM_ARCHIVED:
            return {"status": "realm_archived"}
        case Refusal.REALM_DELETED:
            return {"status": "realm_deleted"}
        case Refusal.AUTHOR_NOT_ALLOWED:
            return {"status": "author_not_allowed"}
        case Refusal.BAD_KEY_INDEX:
            assert facts.realm_ts is not None
            return {"status": "bad_key_index", "last_realm_certificate_timestamp": facts.realm_ts}
        case Refusal.TIMESTAMP_OUT_OF_BALLPARK:
            return timestamp_out_of_ballpark(req.timestamp, out.now)
        case Refusal.REQUIRE_GREATER_COMMON_TIMESTAMP:
            assert facts.common_ts is not None
            return {"status": "require_greater_timestamp", "strictly_greater_than": facts.common_ts}
        case Refusal.REQUIRE_GREATER_REALM_TIMESTAMP:
            assert facts.realm_ts is not None
            return {"status": "require_greater_timestamp", "strictly_greater_than": facts.realm_ts}
        case Refusal.ALREADY_EXISTS:
            return {"status": "vlob_already_exists"}
        case Refusal.VLOB_NOT_FOUND | Refusal.BAD_VLOB_VERSION:
            raise AssertionError(f"{out.refusal} for a vlob_create")
        case _:
            assert_never(out.refusal)


@command(VlobUpdateReq)
async def vlob_update(client: AuthenticatedClient, req: VlobUpdateReq) -> VlobUpdateRep:
    out = await _write(client, req, req.version, update=True)
    if out is None:
        return {"status": "ok"}
    if isinstance(out, _Raced):
        return {"status": "bad_vlob_version"}
    if isinstance(out, webhooks.Rejected):
        return {
            "status": "rejected_by_sequester_service",
            "service_id": out.service_id,
            "reason": out.reason,
        }
    if isinstance(out, webhooks.Unavailable):
        return {"status": "sequester_service_unavailable", "service_id": out.service_id}
    facts = out.facts
    match out.refusal:
        case Refusal.REALM_NOT_FOUND:
            return {"status": "realm_not_found"}
        case Refusal.REALM_ARCHIVED:
            return {"status": "realm_archived"}
        case Refusal.REALM_DELETED:
            return {"status": "realm_deleted"}
        case Refusal.AUTHOR_NOT_ALLOWED:
            return {"status": "author_not_allowed"}
        case Refusal.BAD_KEY_INDEX:
            assert facts.realm_ts is not None
            return {"status": "bad_key_index", "last_realm_certificate_timestamp": facts.realm_ts}
        case Refusal.VLOB_NOT_FOUND:
            return {"status": "vlob_not_found"}
        case Refusal.BAD_VLOB_VERSION:
            return {"status": "bad_vlob_version"}
        case Refusal.TIMESTAMP_OUT_OF_BALLPARK:
            return timestamp_out_of_ballpark(req.timestamp, out.now)
        case Refusal.REQUIRE_GREATER_COMMON_TIMESTAMP:
            assert facts.common_ts is not None
            return {"status": "require_greater_timestamp", "strictly_greater_than": facts.common_ts}
        case Refusal.REQUIRE_GREATER_REALM_TIMESTAMP:
            assert facts.realm_ts is not None
            return {"status": "require_greater_timestamp", "strictly_greater_than": facts.realm_ts}
        case Refusal.ALREADY_EXISTS:
            raise AssertionError("already_exists for a vlob_update")
        case _:
            assert_never(out.refusal)


_ReadRefusal = (
    VlobReadBatchRepRealmNotFound | VlobReadBatchRepRealmDeleted | VlobReadBatchRepAuthorNotAllowed
)


def _read_refusal(facts: ReadFacts) -> _ReadRefusal | None:
    _check_author(facts.is_expired, facts.revoked)
    if not facts.realm_found:
        return {"status": "realm_not_found"}
    if facts.status == "DELETED":
        return {"status": "realm_deleted"}
    if facts.role is None:
        return {"status": "author_not_allowed"}
    return None


def _read_reply(out: VlobItems | None) -> VlobReadBatchRep:
    if out is None:
        raise HandshakeError(404)
    facts = out.facts
    refusal = _read_refusal(facts)
    if refusal is not None:
        return refusal
    assert facts.common_ts is not None and facts.realm_ts is not None
    return {
        "status": "ok",
        "items": out.items,
        "needed_common_certificate_timestamp": facts.common_ts,
        "needed_realm_certificate_timestamp": facts.realm_ts,
    }


@command(VlobReadBatchReq)
async def vlob_read_batch(client: AuthenticatedClient, req: VlobReadBatchReq) -> VlobReadBatchRep:
    if len(req.vlobs) > READ_ITEMS_LIMIT:
        return {"status": "too_many_elements"}
    async with client.backend.db.connection() as conn:
        out = await vlob_storage.read_batch(
            conn,
            client.org.internal_id,
            client.device.user_internal_id,
            req.realm_id,
            req.vlobs,
            req.at,
        )
    return _read_reply(out)


@command(VlobReadVersionsReq)
async def vlob_read_versions(
    client: AuthenticatedClient, req: VlobReadVersionsReq
) -> VlobReadVersionsRep:
    if len(req.items) > READ_ITEMS_LIMIT:
        return {"status": "too_many_elements"}
    async with client.backend.db.connection() as conn:
        out = await vlob_storage.read_versions(
            conn, client.org.internal_id, client.device.user_internal_id, req.realm_id, req.items
        )
    return _read_reply(out)


@command(VlobPollChangesReq)
async def vlob_poll_changes(
    client: AuthenticatedClient, req: VlobPollChangesReq
) -> VlobPollChangesRep:
    """Each vlob changed after `last_checkpoint` once, with its latest version, in order of first
    change; `current_checkpoint`: the last change's checkpoint, or `last_checkpoint` itself when
    nothing changed since (even if it is beyond the realm's last checkpoint, like the official
    server)."""
    async with client.backend.db.connection() as conn:
        out = await vlob_storage.poll_changes(
            conn,
            client.org.internal_id,
            client.device.user_internal_id,
            req.realm_id,
            req.last_checkpoint,
        )
    if out is None:
        raise HandshakeError(404)
    refusal = _read_refusal(out.facts)
    if refusal is not None:
        return refusal
    if out.last_checkpoint is None:
        return {"status": "ok", "changes": [], "current_checkpoint": req.last_checkpoint}
    return {"status": "ok", "changes": out.changes, "current_checkpoint": out.last_checkpoint}
