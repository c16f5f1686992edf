"""cryptpad_register_session (API 5.6) against our server on a real PostgreSQL: requests built from
the schema with our own encoder (the 3.10 client library cannot run here), sessions per realm and
document, the refusals in the official order, races of first registrations.
"""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from core_helpers import Device, Org, Server, running_server
from test_realm import new_realm, rotate, share, sql

from parsec_server.protocol.codec import now, packb
from parsec_server.storage import operator as operator_storage

CRYPTPAD_URL = "https://cryptpad.example.com"


@pytest.fixture
async def server(db_url: str) -> AsyncIterator[Server]:
    async with running_server(db_url, cryptpad_server_url=CRYPTPAD_URL) as s:
        yield s


@pytest.fixture
async def org(server: Server) -> Org:
    return await server.bootstrap_org()


async def register(
    client: Device,
    realm_id: uuid.UUID,
    document_id: uuid.UUID,
    *,
    edit: bytes | None = b"edit-key",
    view: bytes = b"view-key",
    key_index: int = 1,
    ts: datetime.datetime | None = None,
) -> dict[str, Any]:
    return await client.rpc(
        "cryptpad_register_session",
        realm_id=realm_id,
        document_id=document_id,
        key_index=key_index,
        timestamp=ts or now(),
        encrypted_candidate_view_key=view,
        encrypted_candidate_edit_key=edit,
    )


async def last_timestamps(server: Server, org: Org, realm_id: uuid.UUID) -> tuple[Any, Any]:
    rows = await sql(
        server,
        "SELECT tc.last_timestamp AS c, tr.last_timestamp AS r FROM realm re "
        "JOIN organization o ON o.id = re.organization "
        "JOIN topic_common tc ON tc.organization = o.id JOIN topic_realm tr ON tr.realm = re.id "
        "WHERE re.realm_id = $1",
        realm_id,
    )
    return rows[0]["c"], rows[0]["r"]


async def test_first_registration_is_the_session_of_everyone(server: Server, org: Org) -> None:
    alice = org.alice
    bob = await alice.create_user("bob")
    realm_id = await new_realm(alice)
    assert (await share(alice, realm_id, bob.user_id, "CONTRIBUTOR"))["status"] == "ok"
    doc = uuid.uuid4()  # a document not synchronized yet: allowed
    ts = now()
    first = await register(alice, realm_id, doc, view=b"alice-view", edit=b"alice-edit", ts=ts)
    common_ts, realm_ts = await last_timestamps(server, org, realm_id)
    assert first == {
        "status": "ok",
        "author": alice.device_id,
        "timestamp": ts,
        "key_index": 1,
        "encrypted_view_key": b"alice-view",
        "encrypted_edit_key": b"alice-edit",
        "needed_common_certificate_timestamp": common_ts,
        "needed_realm_certificate_timestamp": realm_ts,
    }
    # bob's candidate is not taken: he gets alice's session
    second = await register(bob, realm_id, doc, view=b"bob-view", edit=b"bob-edit")
    assert second == first
    rows = await sql(server, "SELECT count(*) AS n FROM cryptpad_session")
    assert rows[0]["n"] == 1


async def test_reader_gets_no_edit_key_and_writer_replaces_a_reader_session(
    server: Server, org: Org
) -> None:
    alice = org.alice
    bob = await alice.create_user("bob")
    realm_id = await new_realm(alice)
    assert (await share(alice, realm_id, bob.user_id, "READER"))["status"] == "ok"
    doc = uuid.uuid4()
    # a reader must not send an edit key
    assert await register(bob, realm_id, doc, edit=b"x") == {"status": "author_not_allowed"}
    opened = await register(bob, realm_id, doc, view=b"bob-view", edit=None)
    assert opened["status"] == "ok"
    assert (opened["author"], opened["encrypted_edit_key"]) == (bob.device_id, None)
    # a writer must send one, and then replaces the read-only session
    assert await register(alice, realm_id, doc, edit=None) == {"status": "author_not_allowed"}
    replaced = await register(alice, realm_id, doc, view=b"alice-view", edit=b"alice-edit")
    assert (replaced["author"], replaced["encrypted_view_key"]) == (alice.device_id, b"alice-view")
    assert replaced["encrypted_edit_key"] == b"alice-edit"
    # the reader now joins the writer's session, without its edit key
    joined = await register(bob, realm_id, doc, view=b"bob-view-2", edit=None)
    assert joined["author"] == alice.device_id
    assert joined["encrypted_view_key"] == b"alice-view"
    assert joined["encrypted_edit_key"] is None
    # and a second writer keeps the editable session
    again = await register(alice, realm_id, doc, view=b"other", edit=b"other")
    assert again["encrypted_view_key"] == b"alice-view"


async def test_sessions_are_per_realm(server: Server, org: Org) -> None:
    alice = org.alice
    bob = await alice.create_user("bob")
    realm_a = await new_realm(alice)
    realm_b = await new_realm(bob)
    doc = uuid.uuid4()
    in_a = await register(alice, realm_a, doc, view=b"a-view", edit=b"a-edit")
    # the same document id in bob's realm does not reach alice's session
    in_b = await register(bob, realm_b, doc, view=b"b-view", edit=b"b-edit")
    assert (in_a["encrypted_view_key"], in_b["encrypted_view_key"]) == (b"a-view", b"b-view")
    # and bob, not a member of realm A, is refused there
    assert await register(bob, realm_a, doc) == {"status": "author_not_allowed"}


async def test_refusals_in_order(server: Server, org: Org) -> None:
    alice = org.alice
    bob = await alice.create_user("bob")
    realm_id = await new_realm(alice)
    doc = uuid.uuid4()
    assert await register(alice, uuid.uuid4(), doc) == {"status": "realm_not_found"}
    assert await register(bob, realm_id, doc) == {"status": "author_not_allowed"}
    # role before key index, key index before ballpark
    _, realm_ts = await last_timestamps(server, org, realm_id)
    far = now() - datetime.timedelta(hours=1)
    assert await register(alice, realm_id, doc, key_index=2, ts=far) == {
        "status": "bad_key_index",
        "last_realm_certificate_timestamp": realm_ts,
    }
    assert await register(alice, realm_id, doc, key_index=2**40) == {
        "status": "bad_key_index",
        "last_realm_certificate_timestamp": realm_ts,
    }
    rep = await register(alice, realm_id, doc, ts=far)
    assert rep["status"] == "timestamp_out_of_ballpark"
    assert rep["client_timestamp"] == far
    assert (rep["ballpark_client_early_offset"], rep["ballpark_client_late_offset"]) == (
        300.0,
        320.0,
    )
    # only the current key: after a rotation key 1 is refused
    assert await rotate(alice, realm_id, 2, [alice.user_id]) == {"status": "ok"}
    assert (await register(alice, realm_id, doc, key_index=1))["status"] == "bad_key_index"
    assert (await register(alice, realm_id, doc, key_index=2))["key_index"] == 2
    # a deleted realm
    await sql(server, "UPDATE realm SET status = 'DELETED' WHERE realm_id = $1", realm_id)
    assert await register(alice, realm_id, doc, key_index=2) == {"status": "realm_deleted"}
    assert (await sql(server, "SELECT count(*) AS n FROM cryptpad_session"))[0]["n"] == 1


async def test_unshared_member_is_refused(server: Server, org: Org) -> None:
    alice = org.alice
    bob = await alice.create_user("bob")
    realm_id = await new_realm(alice)
    assert (await share(alice, realm_id, bob.user_id, "MANAGER"))["status"] == "ok"
    doc = uuid.uuid4()
    assert (await register(bob, realm_id, doc))["status"] == "ok"
    assert (await share(alice, realm_id, bob.user_id, None))["status"] == "ok"
    assert await register(bob, realm_id, doc) == {"status": "author_not_allowed"}


async def test_concurrent_first_registrations_meet_in_one_session(server: Server, org: Org) -> None:
    alice = org.alice
    realm_id = await new_realm(alice)
    for _ in range(5):
        doc = uuid.uuid4()
        reps = await asyncio.gather(
            *(register(alice, realm_id, doc, view=b"v%d" % i, edit=b"e%d" % i) for i in range(8))
        )
        assert all(r["status"] == "ok" for r in reps), reps
        assert len({r["encrypted_view_key"] for r in reps}) == 1, reps


async def test_unavailable_without_cryptpad_server(db_url: str) -> None:
    async with running_server(db_url) as plain:
        org = await plain.bootstrap_org()
        realm_id = await new_realm(org.alice)
        rep = await register(org.alice, realm_id, uuid.uuid4())
        assert rep == {"status": "cryptpad_unavailable"}


async def test_a_5_5_client_is_served_and_told_5_6(server: Server, org: Org) -> None:
    realm_id = await new_realm(org.alice)
    body = packb(
        {
            "cmd": "cryptpad_register_session",
            "realm_id": realm_id,
            "document_id": uuid.uuid4(),
            "key_index": 1,
            "timestamp": now(),
            "encrypted_candidate_view_key": b"v",
            "encrypted_candidate_edit_key": b"e",
        }
    )
    r = await org.alice.post(body)  # the harness speaks Api-Version 5.5
    assert r.status_code == 200
    assert r.headers["api-version"] == "5.6"


async def test_organization_deletion_takes_the_sessions(server: Server, org: Org) -> None:
    realm_id = await new_realm(org.alice)
    assert (await register(org.alice, realm_id, uuid.uuid4()))["status"] == "ok"
    async with server.backend.db.transaction() as conn:
        internal = await operator_storage.organization(conn, org.organization_id)
        assert internal is not None
        await operator_storage.delete_organization(conn, internal.internal_id)
    assert (await sql(server, "SELECT count(*) AS n FROM cryptpad_session"))[0]["n"] == 0


async def test_realm_deletion_takes_its_sessions(server: Server, org: Org) -> None:
    """`delete_realm` (operator) removes the realm's sessions, not the other realm's."""
    doomed, kept = await new_realm(org.alice), await new_realm(org.alice)
    for realm_id in (doomed, kept):
        assert (await register(org.alice, realm_id, uuid.uuid4()))["status"] == "ok"
    async with server.backend.db.transaction() as conn:
        internal = await operator_storage.organization(conn, org.organization_id)
        assert internal is not None
        realm = await operator_storage.realm(conn, internal.internal_id, doomed)
        assert realm is not None
        await operator_storage.delete_realm_metadata(conn, realm.internal_id, now())
    rows = await sql(
        server,
        "SELECT r.realm_id FROM cryptpad_session s JOIN realm r ON r.id = s.realm",
    )
    assert [r["realm_id"] for r in rows] == [kept]
