"""authenticated user_revoke (protocol.md §4.4, causality §4.2): every reply status, events."""

# ruff: noqa: F811  (pytest fixtures imported from core_helpers are redefined as arguments)
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import nacl.signing
import pytest
from core_helpers import (  # noqa: F401
    Device,
    HttpError,
    Org,
    Server,
    capture_events,
    org,
    revoked_user_cert,
    server,
    settle,
    sign,
    user_update_cert,
)

from parsec_server.protocol.codec import datetime_to_us, now

OK = {"status": "ok"}


async def test_user_revoke_ok(server: Server, org: Org) -> None:
    bob = await org.alice.create_user("bob")
    await bob.rpc("ping", ping="cached")  # bob's device now sits in the handshake cache
    await settle(server, org.organization_id)  # earlier events are delivered
    ts = now()
    with capture_events(server, org.organization_id) as log:
        assert await org.alice.revoke(bob.user_id, ts) == OK
        await log.wait_for("USER_REVOKED_OR_FROZEN")
    assert [e["type"] for e in log.events][:2] == ["COMMON_CERTIFICATE", "USER_REVOKED_OR_FROZEN"]
    assert log.of_type("COMMON_CERTIFICATE")[0]["timestamp"] == datetime_to_us(ts)
    assert log.of_type("USER_REVOKED_OR_FROZEN")[0]["user_id"] == bob.user_id.hex
    with pytest.raises(HttpError) as exc:
        await bob.rpc("ping", ping="x")
    assert exc.value.status_code == 461
    last = (await org.alice.certificates())["common_certificates"][-1]
    assert last == sign(
        org.alice.signing_key, revoked_user_cert(org.alice.device_id, ts, bob.user_id)
    )


async def test_user_revoke_an_admin(org: Org) -> None:
    admin2 = await org.alice.create_user("admin2", "ADMIN")
    assert await admin2.revoke(org.alice.user_id) == OK
    with pytest.raises(HttpError) as exc:
        await org.alice.rpc("ping", ping="x")
    assert exc.value.status_code == 461


@pytest.mark.parametrize("profile", ["STANDARD", "OUTSIDER"])
async def test_user_revoke_author_not_allowed(org: Org, profile: str) -> None:
    someone = await org.alice.create_user("someone", profile)
    victim = await org.alice.create_user("victim")
    assert await someone.revoke(victim.user_id) == {"status": "author_not_allowed"}
    # before the certificate checks
    rep = await someone.rpc("user_revoke", revoked_user_certificate=b"garbage")
    assert rep == {"status": "author_not_allowed"}


async def test_user_revoke_user_not_found(org: Org) -> None:
    assert await org.alice.revoke(uuid.uuid4()) == {"status": "user_not_found"}


async def test_user_revoke_user_already_revoked(org: Org) -> None:
    bob = await org.alice.create_user("bob")
    ts = now()
    assert await org.alice.revoke(bob.user_id, ts) == OK
    assert await org.alice.revoke(bob.user_id) == {
        "status": "user_already_revoked",
        "last_common_certificate_timestamp": ts,
    }
    carol = await org.alice.create_user("carol")
    carol_ts = (await org.alice.certificates())["common_certificates"]
    rep = await org.alice.revoke(bob.user_id)
    assert rep["status"] == "user_already_revoked"
    assert rep["last_common_certificate_timestamp"] > ts  # the common topic, not the revocation
    del carol, carol_ts


async def test_user_revoke_invalid_certificate(org: Org) -> None:
    bob = await org.alice.create_user("bob")
    alice = org.alice
    for raw in (
        sign(
            nacl.signing.SigningKey.generate(),
            revoked_user_cert(alice.device_id, now(), bob.user_id),
        ),
        sign(alice.signing_key, revoked_user_cert(uuid.uuid4(), now(), bob.user_id)),
        sign(
            alice.signing_key, revoked_user_cert(alice.device_id, now(), alice.user_id)
        ),  # self-revocation
        sign(
            alice.signing_key, user_update_cert(alice.device_id, now(), bob.user_id, "ADMIN")
        ),  # other type
        b"garbage",
    ):
        assert await alice.rpc("user_revoke", revoked_user_certificate=raw) == {
            "status": "invalid_certificate"
        }
    assert (await bob.rpc("ping", ping="still here"))["status"] == "ok"


async def test_user_revoke_timestamp_out_of_ballpark(org: Org) -> None:
    bob = await org.alice.create_user("bob")
    ts = now() + timedelta(hours=1)
    rep = await org.alice.revoke(bob.user_id, ts)
    assert rep["status"] == "timestamp_out_of_ballpark"
    assert rep["client_timestamp"] == ts


async def test_user_revoke_require_greater_timestamp_common(org: Org) -> None:
    earlier = now()
    later = earlier + timedelta(seconds=1)
    bob = await org.alice.create_user("bob", ts=later)
    rep = await org.alice.revoke(bob.user_id, earlier)
    assert rep == {"status": "require_greater_timestamp", "strictly_greater_than": later}


async def _add_realm(
    server: Server,
    org: Org,
    member: Device,
    topic_ts: datetime,
    vlob_ts: datetime | None,
    role: str | None = "READER",
) -> None:
    """A realm where `member` has `role`, as the realm commands would have stored it."""
    async with server.backend.db.transaction() as conn:
        org_internal = await conn.fetchval(
            "SELECT id FROM organization WHERE organization_id = $1", org.organization_id
        )
        alice_dev, member_user = await conn.fetchrow(
            "SELECT (SELECT id FROM device WHERE device_id = $1), (SELECT id FROM user_ WHERE "
            "user_id = $2)",
            org.alice.device_id,
            member.user_id,
        )
        realm = await conn.fetchval(
            "INSERT INTO realm (organization, realm_id, created_on, created_by, "
            "last_vlob_timestamp) "
            "VALUES ($1, $2, $3, $4, $5) RETURNING id",
            org_internal,
            uuid.uuid4(),
            topic_ts,
            alice_dev,
            vlob_ts,
        )
        await conn.execute(
            "INSERT INTO topic_realm (realm, last_timestamp) VALUES ($1, $2)", realm, topic_ts
        )
        await conn.execute(
            "INSERT INTO realm_member (realm, user_, role, role_certified_on) VALUES ($1, $2, $3, "
            "$4)",
            realm,
            member_user,
            role,
            topic_ts,
        )


async def test_user_revoke_require_greater_timestamp_realms(server: Server, org: Org) -> None:
    bob = await org.alice.create_user("bob")
    t0 = now()
    # a realm bob is a member of: its topic counts, and so does its last vlob
    await _add_realm(server, org, bob, t0 + timedelta(seconds=1), t0 + timedelta(seconds=2))
    # a realm bob left: ignored
    await _add_realm(
        server, org, bob, t0 + timedelta(seconds=5), t0 + timedelta(seconds=6), role=None
    )
    rep = await org.alice.revoke(bob.user_id, t0 + timedelta(seconds=1))
    assert rep == {
        "status": "require_greater_timestamp",
        "strictly_greater_than": t0 + timedelta(seconds=2),
    }
    await _add_realm(server, org, bob, t0 + timedelta(seconds=3), None)
    rep = await org.alice.revoke(bob.user_id, t0 + timedelta(seconds=2))
    assert rep == {
        "status": "require_greater_timestamp",
        "strictly_greater_than": t0 + timedelta(seconds=3),
    }
    assert await org.alice.revoke(bob.user_id, t0 + timedelta(seconds=4)) == OK


async def test_user_revoke_race(org: Org) -> None:
    bob = await org.alice.create_user("bob")
    admin2 = await org.alice.create_user("admin2", "ADMIN")
    base = now()
    reps = await asyncio.gather(
        org.alice.revoke(bob.user_id, base + timedelta(microseconds=1)),
        admin2.revoke(bob.user_id, base + timedelta(microseconds=2)),
        org.alice.revoke(bob.user_id, base + timedelta(microseconds=3)),
    )
    statuses = [r["status"] for r in reps]
    assert statuses.count("ok") == 1, statuses
    assert set(statuses) <= {"ok", "user_already_revoked", "require_greater_timestamp"}
