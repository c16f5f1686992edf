"""Realm commands (protocol.md §4.5) against our server: what the database holds afterwards, the
events, values the official server cannot handle, sequester services, aborts found inside a command,
races.

The replies' order of checks is covered black-box by tests/compat/test_realm.py and test_dp_realm.py
(run against the official server too)."""

from __future__ import annotations

import asyncio
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

from parsec_server.protocol.codec import datetime_to_us, now

OK = {"status": "ok"}


# --- helpers ------------------------------------------------------------------------------------


def rotation_cert(
    author: Device, realm_id: uuid.UUID, key_index: int, ts: datetime.datetime | None = None
) -> bytes:
    return author.sign(
        {
            "type": "realm_key_rotation_certificate",
            "author": author.device_id,
            "timestamp": ts or now(),
            "realm_id": realm_id,
            "key_index": key_index,
            "encryption_algorithm": "BLAKE2_XSALSA20_POLY1305",
            "hash_algorithm": "SHA256",
            "key_canary": b"canary%d" % key_index,
        }
    )


async def realm_create(
    author: Device, realm_id: uuid.UUID | None = None, ts: datetime.datetime | None = None
) -> uuid.UUID:
    realm_id = realm_id or uuid.uuid4()
    cert = author.sign(
        realm_role_cert(author.device_id, ts or now(), realm_id, author.user_id, "OWNER")
    )
    rep = await author.rpc("realm_create", realm_role_certificate=cert)
    assert rep == OK, rep
    return realm_id


async def rotate(
    author: Device,
    realm_id: uuid.UUID,
    key_index: int,
    participants: list[uuid.UUID],
    ts: datetime.datetime | None = None,
    sequester: dict[uuid.UUID, bytes] | None = None,
) -> dict[str, Any]:
    return await author.rpc(
        "realm_rotate_key",
        realm_key_rotation_certificate=rotation_cert(author, realm_id, key_index, ts),
        per_participant_keys_bundle_access={u: b"access-" + u.bytes for u in participants},
        per_sequester_service_keys_bundle_access=sequester,
        keys_bundle=b"bundle%d" % key_index,
    )


async def new_realm(author: Device) -> uuid.UUID:
    """A realm of `author` with its first key (key index 1)."""
    realm_id = await realm_create(author)
    assert await rotate(author, realm_id, 1, [author.user_id]) == OK
    return realm_id


async def share(
    author: Device,
    realm_id: uuid.UUID,
    user_id: uuid.UUID,
    role: str | None,
    key_index: int = 1,
    ts: datetime.datetime | None = None,
    access: bytes | None = None,
) -> dict[str, Any]:
    cert = author.sign(realm_role_cert(author.device_id, ts or now(), realm_id, user_id, role))
    if role is None:
        return await author.rpc("realm_unshare", realm_role_certificate=cert)
    return await author.rpc(
        "realm_share",
        realm_role_certificate=cert,
        key_index=key_index,
        recipient_keys_bundle_access=access or b"share-" + user_id.bytes,
    )


async def sql(server: Server, query: str, *args: Any) -> list[Any]:  # noqa: F811
    async with server.backend.db.connection() as conn:
        return list(await conn.fetch(query, *args))


# --- storage ----------------------------------------------------------------------------------


async def test_realm_rows_and_certificates(server: Server, org: Org) -> None:  # noqa: F811
    alice = org.alice
    bob = await alice.create_user("bob")
    realm_id = await new_realm(alice)
    assert await share(alice, realm_id, bob.user_id, "CONTRIBUTOR") == OK
    name_cert = alice.sign(
        {
            "type": "realm_name_certificate",
            "author": alice.device_id,
            "timestamp": now(),
            "realm_id": realm_id,
            "key_index": 1,
            "encrypted_name": b"n",
        }
    )
    assert (
        await alice.rpc("realm_rename", realm_name_certificate=name_cert, initial_name_or_fail=True)
        == OK
    )
    assert await share(alice, realm_id, bob.user_id, None) == OK
    [realm] = await sql(server, "SELECT * FROM realm WHERE realm_id = $1", realm_id)
    assert (realm["key_index"], realm["status"], realm["vlob_checkpoint"]) == (1, "AVAILABLE", 0)
    kinds = [
        r["kind"]
        for r in await sql(
            server,
            "SELECT kind FROM certificate WHERE realm = $1 ORDER BY certified_on",
            realm["id"],
        )
    ]
    assert kinds == [
        "realm_role_certificate",
        "realm_key_rotation_certificate",
        "realm_role_certificate",
        "realm_name_certificate",
        "realm_role_certificate",
    ]
    members = {
        r["role"]
        for r in await sql(server, "SELECT role FROM realm_member WHERE realm = $1", realm["id"])
    }
    assert members == {"OWNER", None}
    [topic] = await sql(
        server, "SELECT last_timestamp FROM topic_realm WHERE realm = $1", realm["id"]
    )
    [last] = await sql(
        server, "SELECT max(certified_on) AS m FROM certificate WHERE realm = $1", realm["id"]
    )
    assert topic["last_timestamp"] == last["m"]


async def test_realm_events(server: Server, org: Org) -> None:  # noqa: F811
    alice = org.alice
    bob = await alice.create_user("bob")
    realm_id = await new_realm(alice)
    await settle(server, org.organization_id)
    with capture_events(server, org.organization_id) as log:
        ts = now()
        assert await share(alice, realm_id, bob.user_id, "READER", ts=ts) == OK
        assert await share(alice, realm_id, bob.user_id, None) == OK
        await log.wait_for("REALM_CERTIFICATE", 2)
    shared, unshared = log.of_type("REALM_CERTIFICATE")
    assert shared["timestamp"] == datetime_to_us(ts)
    assert (shared["realm_id"], shared["user_id"], shared["role_removed"]) == (
        realm_id.hex,
        bob.user_id.hex,
        False,
    )
    assert (unshared["user_id"], unshared["role_removed"]) == (bob.user_id.hex, True)


# --- values the official server answers with HTTP 500 ------------------------------------------


@pytest.mark.parametrize("key_index", [2**31, 2**63, 2**64 - 1])
async def test_realm_huge_key_indexes(
    server: Server,  # noqa: F811
    org: Org,  # noqa: F811
    key_index: int,
) -> None:
    alice = org.alice
    bob = await alice.create_user("bob")
    realm_id = await new_realm(alice)
    rep = await rotate(alice, realm_id, key_index, [alice.user_id])
    assert rep["status"] == "bad_key_index", rep
    rep = await share(alice, realm_id, bob.user_id, "READER", key_index=key_index)
    assert rep["status"] == "bad_key_index", rep
    assert await alice.rpc("realm_get_keys_bundle", realm_id=realm_id, key_index=key_index) == {
        "status": "bad_key_index"
    }
    name_cert = alice.sign(
        {
            "type": "realm_name_certificate",
            "author": alice.device_id,
            "timestamp": now(),
            "realm_id": realm_id,
            "key_index": key_index,
            "encrypted_name": b"n",
        }
    )
    rep = await alice.rpc(
        "realm_rename", realm_name_certificate=name_cert, initial_name_or_fail=False
    )
    assert rep["status"] == "bad_key_index", rep


# --- sequester services -----------------------------------------------------------------------


async def _sequestered(server: Server, org: Org) -> None:  # noqa: F811
    """Make the organization sequestered, as a bootstrap with an authority certificate would."""
    [o] = await sql(
        server, "SELECT id FROM organization WHERE organization_id = $1", org.organization_id
    )
    async with server.backend.db.connection() as conn:
        await conn.execute(
            "UPDATE organization SET sequester_authority_verify_key_der = '\\x00' WHERE id = $1",
            o["id"],
        )
        await conn.execute(
            "INSERT INTO topic_sequester (organization, last_timestamp) VALUES ($1, $2)",
            o["id"],
            datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC),
        )
    server.backend.auth.clear()


async def _add_service(server: Server, org: Org, revoked: bool = False) -> uuid.UUID:  # noqa: F811
    service_id = uuid.uuid4()
    async with server.backend.db.connection() as conn:
        await conn.execute(
            """INSERT INTO sequester_service (
                   organization, service_id, service_label, encryption_key_der, created_on,
                   revoked_on
               )
               SELECT id, $2, 'svc', '\\x00', now(), CASE WHEN $3 THEN now() END
               FROM organization WHERE organization_id = $1""",
            org.organization_id,
            service_id,
            revoked,
        )
    return service_id


async def test_realm_rotate_key_sequester_services(server: Server, org: Org) -> None:  # noqa: F811
    alice = org.alice
    realm_id = await realm_create(alice)
    await _sequestered(server, org)
    s1 = await _add_service(server, org)
    await _add_service(server, org, revoked=True)  # revoked services get no access
    rep = await rotate(alice, realm_id, 1, [alice.user_id], sequester={})
    assert rep == {
        "status": "sequester_service_mismatch",
        "last_sequester_certificate_timestamp": datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC),
    }
    assert (await rotate(alice, realm_id, 1, [alice.user_id]))[
        "status"
    ] == "sequester_service_mismatch"
    assert await rotate(alice, realm_id, 1, [alice.user_id], sequester={s1: b"for-s1"}) == OK
    rows = await sql(
        server,
        """
        SELECT s.service_id, a.access FROM realm_sequester_keys_bundle_access a
        JOIN sequester_service s ON s.id = a.sequester_service""",
    )
    assert [(r["service_id"], r["access"]) for r in rows] == [(s1, b"for-s1")]


async def test_realm_rotate_key_not_sequestered(server: Server, org: Org) -> None:  # noqa: F811
    realm_id = await realm_create(org.alice)
    rep = await rotate(org.alice, realm_id, 1, [org.alice.user_id], sequester={uuid.uuid4(): b"x"})
    assert rep == {"status": "organization_not_sequestered"}


# --- aborts found inside the command --------------------------------------------------------------


async def test_realm_author_revoked_meanwhile(server: Server, org: Org) -> None:  # noqa: F811
    """The handshake cache still knows the author as valid; the transaction finds him revoked:
    HTTP 461."""
    alice = org.alice
    bob = await alice.create_user("bob")
    realm_id = await new_realm(bob)
    await bob.rpc(
        "certificate_get",
        common_after=None,
        sequester_after=None,
        shamir_recovery_after=None,
        realm_after={},
    )  # bob is in the handshake cache
    async with server.backend.db.connection() as conn:  # revoked behind the server's back: no event
        await conn.execute(
            "UPDATE user_ SET revoked_on = now(), "
            "revoked_by = (SELECT id FROM device WHERE device_id = $2) WHERE user_id = $1",
            bob.user_id,
            alice.device_id,
        )
    with pytest.raises(HttpError) as exc:
        await rotate(bob, realm_id, 2, [bob.user_id])
    assert exc.value.status_code == 461
    with pytest.raises(HttpError) as exc:
        await realm_create(bob)
    assert exc.value.status_code == 461


# --- races ------------------------------------------------------------------------------------


async def test_realm_races(server: Server, org: Org) -> None:  # noqa: F811
    alice = org.alice
    devices = [alice] + [await alice.create_device(f"d{i}") for i in range(4)]
    realm_id = uuid.uuid4()
    reps = await asyncio.gather(
        *(
            d.rpc(
                "realm_create",
                realm_role_certificate=d.sign(
                    realm_role_cert(d.device_id, now(), realm_id, d.user_id, "OWNER")
                ),
            )
            for d in devices
        )
    )
    assert sorted(r["status"] for r in reps) == ["ok"] + ["realm_already_exists"] * 4
    reps = await asyncio.gather(*(rotate(d, realm_id, 1, [alice.user_id]) for d in devices))
    assert sorted(r["status"] for r in reps) == ["bad_key_index"] * 4 + ["ok"]
    users = [await alice.create_user(f"u{i}") for i in range(5)]
    reps = await asyncio.gather(
        *(share(d, realm_id, u.user_id, "READER") for d, u in zip(devices, users, strict=True))
    )
    assert {r["status"] for r in reps} <= {"ok", "require_greater_timestamp"}
    accepted = sum(r["status"] == "ok" for r in reps)
    rows = await sql(
        server,
        """SELECT count(*) AS n FROM realm_member m JOIN realm r ON r.id = m.realm
                                WHERE r.realm_id = $1 AND m.role = 'READER'""",
        realm_id,
    )
    assert rows[0]["n"] == accepted
    accesses = await sql(
        server, "SELECT count(*) AS n FROM realm_keys_bundle_access WHERE from_sharing IS NOT NULL"
    )
    assert accesses[0]["n"] == accepted


async def test_realm_keys_bundle_access_payloads(server: Server, org: Org) -> None:  # noqa: F811
    alice = org.alice
    bob = await alice.create_user("bob")
    realm_id = await new_realm(alice)
    assert await share(alice, realm_id, bob.user_id, "READER", access=b"first") == OK
    assert await share(alice, realm_id, bob.user_id, "CONTRIBUTOR", access=b"second") == OK
    rep = await bob.rpc("realm_get_keys_bundle", realm_id=realm_id, key_index=1)
    assert rep == {"status": "ok", "keys_bundle_access": b"second", "keys_bundle": b"bundle1"}
