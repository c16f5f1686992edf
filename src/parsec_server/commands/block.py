"""block_create and block_read (protocol.md §4.6), in the official server's order of checks:

* block_create: realm_not_found -> realm_archived / realm_deleted -> bad_key_index ->
  author_not_allowed (role below CONTRIBUTOR) -> block_already_exists -> store_unavailable.
* block_read: realm_not_found -> realm_deleted -> block_not_found -> author_not_allowed ->
  store_unavailable (store failed, or has no data for a block the database knows).

A block id is unique per organization (storage/block.py): block_already_exists also when another
realm of the organization holds the id, and block_read finds a block only through its own realm.
With a blockstore in the server's database (POSTGRESQL) each command is a single statement; with
another one, block_create inserts the metadata row in a transaction that stays open while the data
are written, so the loser of a race never writes its data over the winner's. At most half of the
database pool's connections are held that way at once (the other half serves everything else, and
a RAID group with POSTGRESQL members takes its data connections from there).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from parsec_server.blockstore.base import BlockstoreUnavailable
from parsec_server.commands.context import AuthenticatedClient, Backend
from parsec_server.commands.registry import AUTHENTICATED, HandshakeError, handles
from parsec_server.log import get_logger
from parsec_server.protocol.codec import now as utc_now
from parsec_server.storage import block as block_storage
from parsec_server.storage.db import Pool

log = get_logger("parsec_server.block")

_WRITE_ROLES = frozenset({"OWNER", "MANAGER", "CONTRIBUTOR"})
_OK = {"status": "ok"}
_REALM_NOT_FOUND = {"status": "realm_not_found"}
_REALM_DELETED = {"status": "realm_deleted"}
_REALM_ARCHIVED = {"status": "realm_archived"}
_AUTHOR_NOT_ALLOWED = {"status": "author_not_allowed"}
_BLOCK_ALREADY_EXISTS = {"status": "block_already_exists"}
_BLOCK_NOT_FOUND = {"status": "block_not_found"}
_STORE_UNAVAILABLE = {"status": "store_unavailable"}


def _check_author(row: Any) -> None:
    if row is None:
        raise HandshakeError(404)
    if row["is_expired"]:
        raise HandshakeError(460)
    if row["revoked"]:
        raise HandshakeError(461)


def _create_refusal(row: Any, key_index: int) -> dict[str, Any] | None:
    _check_author(row)
    if row["realm"] is None:
        return _REALM_NOT_FOUND
    status = row["status"]
    if status != "AVAILABLE":
        return _REALM_DELETED if status == "DELETED" else _REALM_ARCHIVED
    if row["key_index"] != key_index:
        return {"status": "bad_key_index", "last_realm_certificate_timestamp": row["realm_ts"]}
    if row["role"] not in _WRITE_ROLES:
        return _AUTHOR_NOT_ALLOWED
    if row["block_id_taken"]:
        return _BLOCK_ALREADY_EXISTS
    return None


class _DataWriteFailed(Exception):
    """Rolls back the metadata row of a block whose data could not be written."""


_writers: weakref.WeakKeyDictionary[Pool, asyncio.Semaphore] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def _writer_slot(backend: Backend) -> AsyncIterator[None]:
    """A turn to hold a connection across a data write: at most half of the pool's connections at
    once. The wait for a turn is bounded by the blockstore timeout too (`_DataWriteFailed`), so
    that a dead store makes queued creates fail within it rather than one after the other."""
    pool = backend.db.pool
    slots = _writers.get(pool)
    if slots is None:
        slots = _writers[pool] = asyncio.Semaphore(max(1, pool.max_size // 2))
    try:
        async with asyncio.timeout(backend.config.blockstore.timeout):
            await slots.acquire()
    except TimeoutError:
        log.warning("blockstore_create_no_turn", timeout=backend.config.blockstore.timeout)
        raise _DataWriteFailed from None
    try:
        yield
    finally:
        slots.release()


@handles(AUTHENTICATED, "block_create")
async def block_create(client: AuthenticatedClient, req: Any) -> dict[str, Any]:
    backend = client.backend
    device = client.device
    now = utc_now()
    try:
        if backend.blockstore.in_server_database:
            async with backend.db.connection() as conn:
                row = await block_storage.create_with_data(
                    conn,
                    org_internal_id=client.org.internal_id,
                    organization_id=client.org.organization_id,
                    user_internal_id=device.user_internal_id,
                    device_internal_id=device.device_internal_id,
                    realm_id=req.realm_id,
                    block_id=req.block_id,
                    key_index=req.key_index,
                    data=req.block,
                    now=now,
                )
            if row is not None and row["written"]:
                return _OK
            refusal = _create_refusal(row, req.key_index)
            assert refusal is not None, "block create refused for no known reason"
            return refusal

        async with _writer_slot(backend), backend.db.transaction() as conn:
            row = await block_storage.check(
                conn, client.org.internal_id, device.user_internal_id, req.realm_id, req.block_id
            )
            refusal = _create_refusal(row, req.key_index)
            if refusal is not None:
                return refusal
            assert row is not None
            await block_storage.insert(
                conn,
                client.org.internal_id,
                row["realm"],
                req.block_id,
                device.device_internal_id,
                req.key_index,
                len(req.block),
                now,
            )
            try:
                await backend.blockstore.create(client.org.organization_id, req.block_id, req.block)
            except BlockstoreUnavailable as exc:
                log.warning("blockstore_create_failed", block_id=req.block_id.hex, error=str(exc))
                raise _DataWriteFailed from exc
        return _OK
    except _DataWriteFailed:
        return _STORE_UNAVAILABLE
    except asyncpg.UniqueViolationError:
        # A concurrent create of the same block id (in any realm) committed first.
        return _BLOCK_ALREADY_EXISTS


def _read_refusal(row: Any) -> dict[str, Any] | None:
    _check_author(row)
    if row["realm"] is None:
        return _REALM_NOT_FOUND
    if row["status"] == "DELETED":
        return _REALM_DELETED
    if row["block"] is None:
        return _BLOCK_NOT_FOUND
    if row["role"] is None:
        return _AUTHOR_NOT_ALLOWED
    return None


@handles(AUTHENTICATED, "block_read")
async def block_read(client: AuthenticatedClient, req: Any) -> dict[str, Any]:
    backend = client.backend
    org = client.org
    user = client.device.user_internal_id
    if backend.blockstore.in_server_database:
        async with backend.db.connection() as conn:
            row = await block_storage.read_with_data(
                conn, org.internal_id, org.organization_id, user, req.realm_id, req.block_id
            )
        refusal = _read_refusal(row)
        if refusal is not None:
            return refusal
        assert row is not None
        data = row["data"]
        if data is None:
            log.warning(
                "block_data_missing", organization=org.organization_id, block_id=req.block_id.hex
            )
            return _STORE_UNAVAILABLE
    else:
        async with backend.db.connection() as conn:
            row = await block_storage.check(conn, org.internal_id, user, req.realm_id, req.block_id)
        refusal = _read_refusal(row)
        if refusal is not None:
            return refusal
        assert row is not None
        try:
            data = await backend.blockstore.read(org.organization_id, req.block_id)
        except BlockstoreUnavailable as exc:  # BlockNotFound included
            log.warning("blockstore_read_failed", block_id=req.block_id.hex, error=str(exc))
            return _STORE_UNAVAILABLE
    return {
        "status": "ok",
        "block": data,
        "key_index": row["block_key_index"],
        "needed_realm_certificate_timestamp": row["realm_ts"],
    }
