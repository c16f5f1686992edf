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

Sequester webhooks are not called (the official PostgreSQL back end does not either).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from parsec_server.commands.context import AuthenticatedClient
from parsec_server.commands.registry import AUTHENTICATED, HandshakeError, handles
from parsec_server.crypto.ballpark import in_ballpark, timestamp_out_of_ballpark
from parsec_server.protocol.codec import now as utc_now
from parsec_server.storage import vlob as vlob_storage

READ_ITEMS_LIMIT = 1000
# A write retries when a certificate of its realm or organization committed while it ran; more
# than a few in a row would take a flood of certificates.
_STALE_RETRIES = 20

_REALM_NOT_FOUND = {"status": "realm_not_found"}
_REALM_DELETED = {"status": "realm_deleted"}
_REALM_ARCHIVED = {"status": "realm_archived"}
_AUTHOR_NOT_ALLOWED = {"status": "author_not_allowed"}
_VLOB_NOT_FOUND = {"status": "vlob_not_found"}
_BAD_VLOB_VERSION = {"status": "bad_vlob_version"}
_VLOB_ALREADY_EXISTS = {"status": "vlob_already_exists"}
_TOO_MANY_ELEMENTS = {"status": "too_many_elements"}
_OK = {"status": "ok"}
_WRITE_ROLES = frozenset(vlob_storage.WRITE_ROLES)


def _check_author(row: Any) -> None:
    """Handshake-level refusals found inside the command (state changed since authentication)."""
    if row is None:
        raise HandshakeError(404)
    if row["is_expired"]:
        raise HandshakeError(460)
    if row["revoked"]:
        raise HandshakeError(461)


async def _write(
    client: AuthenticatedClient, req: Any, version: int, update: bool
) -> dict[str, Any]:
    now = utc_now()
    ballpark_ok = in_ballpark(req.timestamp, now)
    device = client.device
    db = client.backend.db
    for _ in range(_STALE_RETRIES):
        try:
            async with db.connection() as conn:
                row = await vlob_storage.write(
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
                )
        except asyncpg.UniqueViolationError:
            # A concurrent write of the same version committed first.
            return _BAD_VLOB_VERSION if update else _VLOB_ALREADY_EXISTS
        if row is None or not row["stale"]:
            break
    else:
        raise asyncpg.SerializationError("vlob write kept racing with certificate writes")

    _check_author(row)
    if row["written"]:
        return _OK
    if row["realm"] is None:
        return _REALM_NOT_FOUND
    status = row["status"]
    if status != "AVAILABLE":
        return _REALM_DELETED if status == "DELETED" else _REALM_ARCHIVED
    if row["role"] not in _WRITE_ROLES:
        return _AUTHOR_NOT_ALLOWED
    if row["key_index"] != req.key_index:
        return {"status": "bad_key_index", "last_realm_certificate_timestamp": row["realm_ts"]}
    current = row["current_version"]
    if update:
        if current is None:
            return _VLOB_NOT_FOUND
        if version != current + 1:
            return _BAD_VLOB_VERSION
    if not ballpark_ok:
        return timestamp_out_of_ballpark(req.timestamp, now)
    if req.timestamp <= row["common_ts"]:
        return {"status": "require_greater_timestamp", "strictly_greater_than": row["common_ts"]}
    if req.timestamp <= row["realm_ts"]:
        return {"status": "require_greater_timestamp", "strictly_greater_than": row["realm_ts"]}
    if not update and current is not None:
        return _VLOB_ALREADY_EXISTS
    raise AssertionError(f"vlob write refused for no known reason: {dict(row)!r:.300}")


@handles(AUTHENTICATED, "vlob_create")
async def vlob_create(client: AuthenticatedClient, req: Any) -> dict[str, Any]:
    return await _write(client, req, 1, update=False)


@handles(AUTHENTICATED, "vlob_update")
async def vlob_update(client: AuthenticatedClient, req: Any) -> dict[str, Any]:
    return await _write(client, req, req.version, update=True)


def _read_refusal(row: Any) -> dict[str, Any] | None:
    _check_author(row)
    if row["realm"] is None:
        return _REALM_NOT_FOUND
    if row["status"] == "DELETED":
        return _REALM_DELETED
    if row["role"] is None:
        return _AUTHOR_NOT_ALLOWED
    return None


def _read_reply(row: Any) -> dict[str, Any]:
    refusal = _read_refusal(row)
    if refusal is not None:
        return refusal
    return {
        "status": "ok",
        "items": vlob_storage.items_of(row),
        "needed_common_certificate_timestamp": row["common_ts"],
        "needed_realm_certificate_timestamp": row["realm_ts"],
    }


@handles(AUTHENTICATED, "vlob_read_batch")
async def vlob_read_batch(client: AuthenticatedClient, req: Any) -> dict[str, Any]:
    if len(req.vlobs) > READ_ITEMS_LIMIT:
        return _TOO_MANY_ELEMENTS
    async with client.backend.db.connection() as conn:
        row = await vlob_storage.read_batch(
            conn,
            client.org.internal_id,
            client.device.user_internal_id,
            req.realm_id,
            req.vlobs,
            req.at,
        )
    return _read_reply(row)


@handles(AUTHENTICATED, "vlob_read_versions")
async def vlob_read_versions(client: AuthenticatedClient, req: Any) -> dict[str, Any]:
    if len(req.items) > READ_ITEMS_LIMIT:
        return _TOO_MANY_ELEMENTS
    async with client.backend.db.connection() as conn:
        row = await vlob_storage.read_versions(
            conn, client.org.internal_id, client.device.user_internal_id, req.realm_id, req.items
        )
    return _read_reply(row)


@handles(AUTHENTICATED, "vlob_poll_changes")
async def vlob_poll_changes(client: AuthenticatedClient, req: Any) -> dict[str, Any]:
    """Each vlob changed after `last_checkpoint` once, with its latest version, in order of first
    change; `current_checkpoint`: the last change's checkpoint, or `last_checkpoint` itself when
    nothing changed since (even if it is beyond the realm's last checkpoint, like the official
    server)."""
    async with client.backend.db.connection() as conn:
        rows = await vlob_storage.poll_changes(
            conn,
            client.org.internal_id,
            client.device.user_internal_id,
            req.realm_id,
            req.last_checkpoint,
        )
    row = rows[0] if rows else None
    refusal = _read_refusal(row)
    if refusal is not None:
        return refusal
    assert row is not None
    if row["vlob_ids"] is None:
        return {"status": "ok", "changes": [], "current_checkpoint": req.last_checkpoint}
    return {
        "status": "ok",
        "changes": list(zip(row["vlob_ids"], row["versions"], strict=True)),
        "current_checkpoint": row["last_checkpoint"],
    }
