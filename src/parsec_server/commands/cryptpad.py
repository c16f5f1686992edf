"""cryptpad_register_session (authenticated, API 5.6; docs/compatibility.md "API 5.6").

Registers or returns the CryptPad editing session of a document: the server keeps, per realm and
document, the signed-then-encrypted session keys the first participant proposed (storage/cryptpad.py)
and hands them to every later one, so that all the editors of a document meet in one session.

Refusals, in the official server's order: cryptpad_unavailable (no `--cryptpad-server-url`) ->
realm_not_found -> realm_deleted -> author_not_allowed (not a member; or a reader sending an edit key;
or a writer sending none) -> bad_key_index (only the realm's current key) -> timestamp_out_of_ballpark.

A reader never gets the edit key (`encrypted_edit_key` None); a writer always does: a session a reader
opened (no edit key) is replaced by the writer's candidate. Unlike the official server, which keys
sessions by organization and document id, sessions are kept per realm: a document id claimed in
another realm never reaches this realm's session.
"""

from __future__ import annotations

import datetime

import asyncpg

from parsec_server.commands.context import AuthenticatedClient
from parsec_server.commands.registry import HandshakeError, command
from parsec_server.crypto.ballpark import in_ballpark, timestamp_out_of_ballpark
from parsec_server.protocol.codec import now as utc_now
from parsec_server.protocol.generated.authenticated import (
    CryptpadRegisterSessionRep,
    CryptpadRegisterSessionReq,
)
from parsec_server.storage import cryptpad as cryptpad_storage

# A first registration racing with another one for the same document sees its row only on the next
# statement: one more run is enough, a few more cover a burst.
_RACE_RETRIES = 5
_WRITE_ROLES = frozenset({"OWNER", "MANAGER", "CONTRIBUTOR"})


@command(CryptpadRegisterSessionReq)
async def cryptpad_register_session(
    client: AuthenticatedClient, req: CryptpadRegisterSessionReq
) -> CryptpadRegisterSessionRep:
    if client.backend.config.cryptpad_server_url is None:
        return {"status": "cryptpad_unavailable"}
    now = utc_now()
    ballpark_ok = in_ballpark(req.timestamp, now)
    device = client.device
    for _ in range(_RACE_RETRIES):
        async with client.backend.db.connection() as conn:
            out = await cryptpad_storage.register(
                conn,
                org_internal_id=client.org.internal_id,
                user_internal_id=device.user_internal_id,
                device_internal_id=device.device_internal_id,
                realm_id=req.realm_id,
                document_id=req.document_id,
                key_index=req.key_index,
                timestamp=req.timestamp,
                encrypted_view_key=req.encrypted_candidate_view_key,
                encrypted_edit_key=req.encrypted_candidate_edit_key,
                in_ballpark=ballpark_ok,
            )
        if out is None:
            raise HandshakeError(404)
        facts = out.facts
        if facts.is_expired:
            raise HandshakeError(460)
        if facts.revoked:
            raise HandshakeError(461)
        if not out.accepted:
            return _refusal(facts, req, ballpark_ok, now)
        session = out.session
        if session is None:
            continue
        can_write = facts.role in _WRITE_ROLES
        return {
            "status": "ok",
            "author": session.author,
            "timestamp": session.timestamp,
            "key_index": session.key_index,
            "encrypted_view_key": session.encrypted_view_key,
            "encrypted_edit_key": session.encrypted_edit_key if can_write else None,
            "needed_common_certificate_timestamp": facts.common_ts,
            "needed_realm_certificate_timestamp": _realm_ts(facts),
        }
    raise asyncpg.SerializationError("cryptpad session registration kept racing")


def _realm_ts(facts: cryptpad_storage.SessionFacts) -> datetime.datetime:
    assert facts.realm_ts is not None  # a realm always has its topic
    return facts.realm_ts


def _refusal(
    facts: cryptpad_storage.SessionFacts,
    req: CryptpadRegisterSessionReq,
    ballpark_ok: bool,
    now: datetime.datetime,
) -> CryptpadRegisterSessionRep:
    """The first rule the facts break (the statement wrote nothing)."""
    if not facts.realm_found:
        return {"status": "realm_not_found"}
    if facts.status == "DELETED":
        return {"status": "realm_deleted"}
    if facts.role is None:
        return {"status": "author_not_allowed"}
    if (facts.role in _WRITE_ROLES) != (req.encrypted_candidate_edit_key is not None):
        return {"status": "author_not_allowed"}
    if facts.key_index != req.key_index:
        return {"status": "bad_key_index", "last_realm_certificate_timestamp": _realm_ts(facts)}
    if not ballpark_ok:
        return timestamp_out_of_ballpark(req.timestamp, now)
    raise AssertionError(f"the SQL refused a registration the rules accept: {facts!r}")
