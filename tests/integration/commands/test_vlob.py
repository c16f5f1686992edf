"""Vlob commands (protocol.md §4.6) against our server: the rows written, the VLOB event, values
the official server cannot handle, writes racing with certificates (the statement's stale-snapshot
guard), aborts found inside a command, deleted realms, races.

The replies' order of checks is covered black-box by tests/compat/test_vlob.py and
test_dp_vlob.py."""

from __future__ import annotations

import asyncio
import base64
import datetime
import uuid
from typing import Any

import pytest
from core_helpers import (  # noqa: F401
    Device,
    HttpError,
    Org,
    Server,
    capture_events,
    org,
    realm_role_cert,
    server,
    settle,
)
from test_realm import new_realm, rotate, share, sql

from parsec_server.protocol.codec import datetime_to_us, now

OK = {"status": "ok"}


async def create(
    client: Device,
    realm_id: uuid.UUID,
    vlob_id: uuid.UUID | None = None,
    *,
    blob: bytes = b"v1",
    key_index: int = 1,
    ts: datetime.datetime | None = None,
) -> dict[str, Any]:
    return await client.rpc(
        "vlob_create",
        realm_id=realm_id,
        vlob_id=vlob_id or uuid.uuid4(),
        key_index=key_index,
        timestamp=ts or now(),
        blob=blob,
    )


async def update(
    client: Device,
    realm_id: uuid.UUID,
    vlob_id: uuid.UUID,
    version: int,
    *,
    blob: bytes = b"vn",
    key_index: int = 1,
    ts: datetime.datetime | None = None,
) -> dict[str, Any]:
    return await client.rpc(
        "vlob_update",
        realm_id=realm_id,
        vlob_id=vlob_id,
        key_index=key_index,
        timestamp=ts or now(),
        version=version,
        blob=blob,
    )


async def test_vlob_rows(server: Server, org: Org) -> None:  # noqa: F811
    alice = org.alice
    realm_id = await new_realm(alice)
    a, b = uuid.uuid4(), uuid.uuid4()
    later, earlier = now() + datetime.timedelta(seconds=2), now()
    assert await create(alice, realm_id, a, blob=b"x" * 10, ts=later) == OK
    assert (
        await create(alice, realm_id, b, ts=earlier) == OK
    )  # vlobs are not ordered between themselves
    assert (
        await update(alice, realm_id, a, 2, blob=b"", ts=later + datetime.timedelta(microseconds=1))
        == OK
    )
    [realm] = await sql(server, "SELECT * FROM realm WHERE realm_id = $1", realm_id)
    assert realm["vlob_checkpoint"] == 3
    assert realm["last_vlob_timestamp"] == later + datetime.timedelta(microseconds=1)
    log = await sql(
        server,
        "SELECT checkpoint, vlob_id, version FROM realm_vlob_update WHERE realm = $1 "
        "ORDER BY checkpoint",
        realm["id"],
    )
    assert [tuple(r) for r in log] == [(1, a, 1), (2, b, 1), (3, a, 2)]
    atoms = await sql(
        server,
        "SELECT vlob_id, version, size, key_index FROM vlob_atom WHERE realm = $1 ORDER BY id",
        realm["id"],
    )
    assert [tuple(r) for r in atoms] == [(a, 1, 10, 1), (b, 1, 2, 1), (a, 2, 0, 1)]


async def test_vlob_event(server: Server, org: Org) -> None:  # noqa: F811
    alice = org.alice
    realm_id = await new_realm(alice)
    [topics] = await sql(
        server,
        """
        SELECT tc.last_timestamp AS common, tr.last_timestamp AS realm
        FROM realm r
        JOIN topic_realm tr ON tr.realm = r.id
        JOIN topic_common tc ON tc.organization = r.organization
        WHERE r.realm_id = $1""",
        realm_id,
    )
    await settle(server, org.organization_id)
    vlob_id = uuid.uuid4()
    ts = now()
    with capture_events(server, org.organization_id) as log:
        assert await create(alice, realm_id, vlob_id, blob=b"\x00\xffsmall", ts=ts) == OK
        assert await update(alice, realm_id, vlob_id, 2, blob=b"b" * 4096) == OK
        await log.wait_for("VLOB", 2)
    first, second = log.of_type("VLOB")
    assert {k: v for k, v in first.items() if k != "id"} == {
        "org": org.organization_id,
        "type": "VLOB",
        "realm_id": realm_id.hex,
        "vlob_id": vlob_id.hex,
        "author": alice.device_id.hex,
        "timestamp": datetime_to_us(ts),
        "version": 1,
        "blob": base64.b64encode(b"\x00\xffsmall").decode(),
        "last_common_certificate_timestamp": datetime_to_us(topics["common"]),
        "last_realm_certificate_timestamp": datetime_to_us(topics["realm"]),
    }
    assert (second["version"], second["blob"]) == (2, None)
    assert uuid.UUID(first["id"]) != uuid.UUID(second["id"])


# --- values the official server answers with HTTP 500 ------------------------------------------


async def test_vlob_huge_values(server: Server, org: Org) -> None:  # noqa: F811
    alice = org.alice
    realm_id = await new_realm(alice)
    vlob_id = uuid.uuid4()
    assert await create(alice, realm_id, vlob_id) == OK
    for key_index in (2**31, 2**63, 2**64 - 1):
        assert (await create(alice, realm_id, key_index=key_index))["status"] == "bad_key_index"
    for version in (2**31, 2**32 - 1):
        assert await update(alice, realm_id, vlob_id, version) == {"status": "bad_vlob_version"}
    rep = await alice.rpc(
        "vlob_read_versions", realm_id=realm_id, items=[(vlob_id, 2**32 - 1), (vlob_id, 1)]
    )
    assert [item[3] for item in rep["items"]] == [1]
    for checkpoint in (2**31, 2**63 - 1, 2**63, 2**64 - 1):
        rep = await alice.rpc("vlob_poll_changes", realm_id=realm_id, last_checkpoint=checkpoint)
        assert rep == {"status": "ok", "changes": [], "current_checkpoint": checkpoint}


# --- writes racing with certificates -----------------------------------------------------------


async def _hold_realm_topic(
    server: Server,  # noqa: F811
    realm_id: uuid.UUID,
) -> tuple[Any, Any, int]:
    """A transaction holding the realm topic FOR UPDATE, as a realm certificate command does."""
    cm = server.backend.db.pool.acquire()
    conn = await cm.__aenter__()
    tx = conn.transaction()
    await tx.start()
    realm = await conn.fetchval(
        "SELECT r.id FROM realm r JOIN topic_realm t ON t.realm = r.id WHERE r.realm_id = $1 "
        "FOR UPDATE OF t",
        realm_id,
    )
    return (cm, conn, tx), conn, realm


async def _release(handle: Any, commit: bool = True) -> None:
    cm, _conn, tx = handle
    if commit:
        await tx.commit()
    else:
        await tx.rollback()
    await cm.__aexit__(None, None, None)


async def _blocked(task: asyncio.Task[Any]) -> None:
    await asyncio.sleep(0.3)
    assert not task.done(), "the write should wait for the certificate's transaction"


@pytest.mark.parametrize("change", ["rotation", "archiving", "unsharing"])
async def test_vlob_write_waits_for_realm_certificate(
    server: Server,  # noqa: F811
    org: Org,  # noqa: F811
    change: str,
) -> None:
    """A write that waited for a realm certificate's transaction decides on the state that
    transaction left."""
    alice = org.alice
    bob = await alice.create_user("bob")
    realm_id = await new_realm(alice)
    assert await share(alice, realm_id, bob.user_id, "CONTRIBUTOR") == OK
    handle, conn, realm = await _hold_realm_topic(server, realm_id)
    try:
        task = asyncio.create_task(create(bob, realm_id))
        await _blocked(task)
        later = now()
        await conn.execute(
            "UPDATE topic_realm SET last_timestamp = $2 WHERE realm = $1", realm, later
        )
        if change == "rotation":
            await conn.execute("UPDATE realm SET key_index = 2 WHERE id = $1", realm)
        elif change == "archiving":
            await conn.execute("UPDATE realm SET status = 'ARCHIVED' WHERE id = $1", realm)
        else:
            await conn.execute(
                "UPDATE realm_member SET role = NULL WHERE realm = $1 AND role = 'CONTRIBUTOR'",
                realm,
            )
    finally:
        await _release(handle)
    rep = await asyncio.wait_for(task, 10)
    expected = {
        "rotation": {"status": "bad_key_index", "last_realm_certificate_timestamp": later},
        "archiving": {"status": "realm_archived"},
        "unsharing": {"status": "author_not_allowed"},
    }[change]
    assert rep == expected
    [checkpoint] = await sql(server, "SELECT vlob_checkpoint FROM realm WHERE id = $1", realm)
    assert checkpoint["vlob_checkpoint"] == 0


async def test_vlob_write_after_unrelated_certificate(
    server: Server,  # noqa: F811
    org: Org,  # noqa: F811
) -> None:
    """Only a later timestamp is asked for when the realm certificate changed nothing for the
    write."""
    alice = org.alice
    realm_id = await new_realm(alice)
    handle, conn, realm = await _hold_realm_topic(server, realm_id)
    ts = now()
    try:
        task = asyncio.create_task(create(alice, realm_id, ts=ts))
        await _blocked(task)
        later = ts + datetime.timedelta(seconds=1)
        await conn.execute(
            "UPDATE topic_realm SET last_timestamp = $2 WHERE realm = $1", realm, later
        )
    finally:
        await _release(handle)
    rep = await asyncio.wait_for(task, 10)
    assert rep == {"status": "require_greater_timestamp", "strictly_greater_than": later}
    assert await create(alice, realm_id, ts=later + datetime.timedelta(microseconds=1)) == OK


async def test_vlob_write_waits_for_revocation(server: Server, org: Org) -> None:  # noqa: F811
    alice = org.alice
    bob = await alice.create_user("bob")
    realm_id = await new_realm(alice)
    assert await share(alice, realm_id, bob.user_id, "CONTRIBUTOR") == OK
    async with server.backend.db.pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await conn.execute(
            "SELECT 1 FROM topic_common tc JOIN organization o ON o.id = tc.organization "
            "WHERE o.organization_id = $1 FOR UPDATE OF tc",
            org.organization_id,
        )
        task = asyncio.create_task(create(bob, realm_id))
        await _blocked(task)
        await conn.execute(
            "UPDATE topic_common SET last_timestamp = now() FROM organization o "
            "WHERE o.id = topic_common.organization AND o.organization_id = $1",
            org.organization_id,
        )
        await conn.execute(
            "UPDATE user_ SET revoked_on = now(), revoked_by = (SELECT id FROM device WHERE "
            "device_id = $2) WHERE user_id = $1",
            bob.user_id,
            alice.device_id,
        )
        await tx.commit()
    with pytest.raises(HttpError) as exc:
        await asyncio.wait_for(task, 10)
    assert exc.value.status_code == 461


# --- aborts and deleted realms ----------------------------------------------------------------


async def test_vlob_organization_expired_meanwhile(server: Server, org: Org) -> None:  # noqa: F811
    alice = org.alice
    realm_id = await new_realm(alice)
    await sql(
        server,
        "UPDATE organization SET is_expired = TRUE WHERE organization_id = $1",
        org.organization_id,
    )
    for coro in (
        create(alice, realm_id),
        alice.rpc("vlob_read_batch", realm_id=realm_id, vlobs=[], at=None),
    ):
        with pytest.raises(HttpError) as exc:
            await coro
        assert exc.value.status_code == 460


async def test_vlob_deleted_realm(server: Server, org: Org) -> None:  # noqa: F811
    """A realm deleted by the administrator (status DELETED): realm_deleted everywhere."""
    alice = org.alice
    realm_id = await new_realm(alice)
    vlob_id = uuid.uuid4()
    assert await create(alice, realm_id, vlob_id) == OK
    await sql(server, "UPDATE realm SET status = 'DELETED' WHERE realm_id = $1", realm_id)
    deleted = {"status": "realm_deleted"}
    assert await create(alice, realm_id) == deleted
    assert await update(alice, realm_id, vlob_id, 2) == deleted
    assert (
        await alice.rpc("vlob_read_batch", realm_id=realm_id, vlobs=[vlob_id], at=None) == deleted
    )
    assert await alice.rpc("vlob_read_versions", realm_id=realm_id, items=[(vlob_id, 1)]) == deleted
    assert await alice.rpc("vlob_poll_changes", realm_id=realm_id, last_checkpoint=0) == deleted
    assert (
        await alice.rpc(
            "block_create", block_id=uuid.uuid4(), realm_id=realm_id, key_index=1, block=b""
        )
        == deleted
    )
    assert await alice.rpc("block_read", block_id=uuid.uuid4(), realm_id=realm_id) == deleted
    assert await alice.rpc("realm_get_keys_bundle", realm_id=realm_id, key_index=1) == deleted
    assert (await rotate(alice, realm_id, 2, [alice.user_id]))["status"] == "realm_deleted"


# --- races ------------------------------------------------------------------------------------


async def test_vlob_races(server: Server, org: Org) -> None:  # noqa: F811
    alice = org.alice
    realm_id = await new_realm(alice)
    vlob_id = uuid.uuid4()
    reps = await asyncio.gather(
        *(create(alice, realm_id, vlob_id, blob=bytes([i])) for i in range(10))
    )
    assert sorted(r["status"] for r in reps) == ["ok"] + ["vlob_already_exists"] * 9
    reps = await asyncio.gather(*(update(alice, realm_id, vlob_id, 2) for _ in range(10)))
    assert sorted(r["status"] for r in reps) == ["bad_vlob_version"] * 9 + ["ok"]
    # different vlobs, all at once, with a key rotation in the middle
    writes = [create(alice, realm_id) for _ in range(20)]
    reps = await asyncio.gather(
        *writes[:10], rotate(alice, realm_id, 2, [alice.user_id]), *writes[10:]
    )
    statuses = [r["status"] for r in reps]
    assert statuses[10] == "ok"
    del statuses[10]
    assert set(statuses) <= {"ok", "bad_key_index", "require_greater_timestamp"}
    rep = await alice.rpc("vlob_poll_changes", realm_id=realm_id, last_checkpoint=0)
    assert rep["current_checkpoint"] == 2 + statuses.count("ok")
    assert len(rep["changes"]) == 1 + statuses.count("ok")
