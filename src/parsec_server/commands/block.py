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
from typing import assert_never

import asyncpg

from parsec_server.blockstore.base import BlockstoreUnavailable
from parsec_server.commands.context import AuthenticatedClient, Backend
from parsec_server.commands.registry import HandshakeError, command
from parsec_server.log import get_logger
from parsec_server.protocol.codec import now as utc_now
from parsec_server.protocol.generated.authenticated import (
    BlockCreateRep,
    BlockCreateReq,
    BlockReadRep,
    BlockReadRepAuthorNotAllowed,
    BlockReadRepBlockNotFound,
    BlockReadRepRealmDeleted,
    BlockReadRepRealmNotFound,
    BlockReadReq,
)
from parsec_server.storage import block as block_storage
from parsec_server.storage.block import BlockData, BlockFacts
from parsec_server.storage.db import Pool
from parsec_server.storage.write_rules import Refusal, write_refusal

log = get_logger("parsec_server.block")


def _check_author(facts: BlockFacts | None) -> BlockFacts:
    if facts is None:
        raise HandshakeError(404)
    if facts.is_expired:
        raise HandshakeError(460)
    if facts.revoked:
        raise HandshakeError(461)
    return facts


def _create_refusal(facts: BlockFacts, key_index: int) -> BlockCreateRep | None:
    """The reply of a refused create (the rules: storage/write_rules.py), None if it may go on."""
    refusal = write_refusal(
        facts.write,
        key_index=key_index,
        expect="create",
        timestamp=None,
        in_ballpark=True,
        key_index_first=True,
    )
    match refusal:
        case None:
            return None
        case Refusal.REALM_NOT_FOUND:
            return {"status": "realm_not_found"}
        case Refusal.REALM_ARCHIVED:
            return {"status": "realm_archived"}
        case Refusal.REALM_DELETED:
            return {"status": "realm_deleted"}
        case Refusal.BAD_KEY_INDEX:
            assert facts.write.realm_ts is not None
            return {
                "status": "bad_key_index",
                "last_realm_certificate_timestamp": facts.write.realm_ts,
            }
        case Refusal.AUTHOR_NOT_ALLOWED:
            return {"status": "author_not_allowed"}
        case Refusal.ALREADY_EXISTS:
            return {"status": "block_already_exists"}
        case (
            Refusal.VLOB_NOT_FOUND
            | Refusal.BAD_VLOB_VERSION
            | Refusal.TIMESTAMP_OUT_OF_BALLPARK
            | Refusal.REQUIRE_GREATER_COMMON_TIMESTAMP
            | Refusal.REQUIRE_GREATER_REALM_TIMESTAMP
        ):
            raise AssertionError(f"{refusal} for a block_create")
        case _:
            assert_never(refusal)


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


@command(BlockCreateReq)
async def block_create(client: AuthenticatedClient, req: BlockCreateReq) -> BlockCreateRep:
    backend = client.backend
    device = client.device
    now = utc_now()
    try:
        if backend.blockstore.in_server_database:
            async with backend.db.connection() as conn:
                out = await block_storage.create_with_data(
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
            if out is not None and out.written:
                return {"status": "ok"}
            facts = _check_author(None if out is None else out.facts)
            refusal = _create_refusal(facts, req.key_index)
            if refusal is None:
                raise AssertionError(
                    f"the SQL refused a block write write_refusal accepts: {out!r:.300}"
                )
            return refusal

        async with _writer_slot(backend), backend.db.transaction() as conn:
            facts = _check_author(
                await block_storage.check(
                    conn,
                    client.org.internal_id,
                    device.user_internal_id,
                    req.realm_id,
                    req.block_id,
                )
            )
            refusal = _create_refusal(facts, req.key_index)
            if refusal is not None:
                return refusal
            assert facts.realm is not None
            await block_storage.insert(
                conn,
                client.org.internal_id,
                facts.realm,
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
        return {"status": "ok"}
    except _DataWriteFailed:
        return {"status": "store_unavailable"}
    except asyncpg.UniqueViolationError:
        # A concurrent create of the same block id (in any realm) committed first.
        return {"status": "block_already_exists"}


_ReadRefusal = (
    BlockReadRepRealmNotFound
    | BlockReadRepRealmDeleted
    | BlockReadRepBlockNotFound
    | BlockReadRepAuthorNotAllowed
)


def _read_refusal(facts: BlockFacts) -> _ReadRefusal | None:
    if facts.realm is None:
        return {"status": "realm_not_found"}
    if facts.write.status == "DELETED":
        return {"status": "realm_deleted"}
    if facts.block is None:
        return {"status": "block_not_found"}
    if facts.write.role is None:
        return {"status": "author_not_allowed"}
    return None


@command(BlockReadReq)
async def block_read(client: AuthenticatedClient, req: BlockReadReq) -> BlockReadRep:
    backend = client.backend
    org = client.org
    user = client.device.user_internal_id
    data: bytes | None
    if backend.blockstore.in_server_database:
        async with backend.db.connection() as conn:
            out = await block_storage.read_with_data(
                conn, org.internal_id, org.organization_id, user, req.realm_id, req.block_id
            )
        if type(out) is BlockData:
            return {
                "status": "ok",
                "block": out.data,
                "key_index": out.key_index,
                "needed_realm_certificate_timestamp": out.realm_ts,
            }
        assert not isinstance(out, BlockData)
        facts = _check_author(None if out is None else out.facts)
        refusal = _read_refusal(facts)
        if refusal is not None:
            return refusal
        assert out is not None
        data = out.data
        if data is None:
            log.warning(
                "block_data_missing", organization=org.organization_id, block_id=req.block_id.hex
            )
            return {"status": "store_unavailable"}
    else:
        async with backend.db.connection() as conn:
            facts = _check_author(
                await block_storage.check(conn, org.internal_id, user, req.realm_id, req.block_id)
            )
        refusal = _read_refusal(facts)
        if refusal is not None:
            return refusal
        try:
            data = await backend.blockstore.read(org.organization_id, req.block_id)
        except BlockstoreUnavailable as exc:  # BlockNotFound included
            log.warning("blockstore_read_failed", block_id=req.block_id.hex, error=str(exc))
            return {"status": "store_unavailable"}
    assert facts.block_key_index is not None and facts.write.realm_ts is not None
    return {
        "status": "ok",
        "block": data,
        "key_index": facts.block_key_index,
        "needed_realm_certificate_timestamp": facts.write.realm_ts,
    }
