"""authenticated user_update and list_frozen_users (protocol.md §4.4): every reply status,
events."""

# ruff: noqa: F811  (pytest fixtures imported from core_helpers are redefined as arguments)
from __future__ import annotations

import uuid
from datetime import timedelta

import nacl.signing
import pytest
from core_helpers import (  # noqa: F401
    Org,
    Server,
    capture_events,
    new_user_certs,
    org,
    revoked_user_cert,
    server,
    settle,
    sign,
    user_update_cert,
)

from parsec_server.protocol.codec import datetime_to_us, now

OK = {"status": "ok"}
PROFILES = ["ADMIN", "STANDARD", "OUTSIDER"]


@pytest.mark.parametrize("old", PROFILES)
@pytest.mark.parametrize("new", PROFILES)
async def test_user_update_profiles(server: Server, org: Org, old: str, new: str) -> None:
    bob = await org.alice.create_user("bob", old)
    await settle(server, org.organization_id)  # earlier events are delivered
    ts = now()
    with capture_events(server, org.organization_id) as log:
        rep = await org.alice.update_profile(bob.user_id, new, ts)
        if old == new:
            assert rep == {"status": "user_no_changes"}
            return
        assert rep == OK
        await log.wait_for("USER_UPDATED")
    assert log.of_type("COMMON_CERTIFICATE")[0]["timestamp"] == datetime_to_us(ts)
    assert log.of_type("USER_UPDATED")[0]["user_id"] == bob.user_id.hex
    last = (await org.alice.certificates())["common_certificates"][-1]
    assert last == sign(
        org.alice.signing_key, user_update_cert(org.alice.device_id, ts, bob.user_id, new)
    )
    async with server.backend.db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT u.initial_profile, u.current_profile, p.profile, p.certified_on FROM user_ u "
            "JOIN user_profile_update p ON p.user_ = u.id WHERE u.user_id = $1",
            bob.user_id,
        )
    assert tuple(row) == (old, new, new, ts)


async def test_user_update_promotion_takes_effect(org: Org) -> None:
    bob = await org.alice.create_user("bob")
    await bob.rpc("ping", ping="warm cache")
    assert await bob.rpc("list_frozen_users") == {"status": "author_not_allowed"}
    assert await org.alice.update_profile(bob.user_id, "ADMIN") == OK
    assert await bob.rpc("list_frozen_users") == {"status": "ok", "frozen_users": []}
    certs = new_user_certs(bob.device_id, bob.signing_key, "carol")
    assert await bob.rpc("user_create", **certs.req()) == OK


async def test_user_update_author_not_allowed(org: Org) -> None:
    bob = await org.alice.create_user("bob")
    carol = await org.alice.create_user("carol")
    assert await bob.update_profile(carol.user_id, "ADMIN") == {"status": "author_not_allowed"}
    assert await bob.update_profile(bob.user_id, "ADMIN") == {"status": "author_not_allowed"}


async def test_user_update_user_not_found(org: Org) -> None:
    assert await org.alice.update_profile(uuid.uuid4(), "ADMIN") == {"status": "user_not_found"}


async def test_user_update_user_revoked(org: Org) -> None:
    bob = await org.alice.create_user("bob")
    assert await org.alice.revoke(bob.user_id) == OK
    assert await org.alice.update_profile(bob.user_id, "ADMIN") == {"status": "user_revoked"}


async def test_user_update_invalid_certificate(org: Org) -> None:
    bob = await org.alice.create_user("bob")
    alice = org.alice
    for raw in (
        sign(
            nacl.signing.SigningKey.generate(),
            user_update_cert(alice.device_id, now(), bob.user_id, "ADMIN"),
        ),
        sign(alice.signing_key, user_update_cert(uuid.uuid4(), now(), bob.user_id, "ADMIN")),
        sign(
            alice.signing_key, user_update_cert(alice.device_id, now(), alice.user_id, "STANDARD")
        ),  # self
        sign(alice.signing_key, revoked_user_cert(alice.device_id, now(), bob.user_id)),
        b"",
    ):
        assert await alice.rpc("user_update", user_update_certificate=raw) == {
            "status": "invalid_certificate"
        }


async def test_user_update_timestamp_out_of_ballpark(org: Org) -> None:
    bob = await org.alice.create_user("bob")
    ts = now() - timedelta(hours=1)
    rep = await org.alice.update_profile(bob.user_id, "ADMIN", ts)
    assert rep["status"] == "timestamp_out_of_ballpark"
    assert rep["client_timestamp"] == ts


async def test_user_update_require_greater_timestamp(org: Org) -> None:
    earlier = now()
    later = earlier + timedelta(seconds=1)
    bob = await org.alice.create_user("bob", ts=later)
    rep = await org.alice.update_profile(bob.user_id, "ADMIN", earlier)
    assert rep == {"status": "require_greater_timestamp", "strictly_greater_than": later}
    # reported after the other checks
    assert await org.alice.update_profile(bob.user_id, "STANDARD", earlier) == {
        "status": "user_no_changes"
    }


# --- list_frozen_users --------------------------------------------------------------------------


async def test_list_frozen_users(server: Server, org: Org) -> None:
    bob = await org.alice.create_user("bob")
    assert await org.alice.rpc("list_frozen_users") == {"status": "ok", "frozen_users": []}
    r = await server.admin(
        "POST",
        f"/organizations/{org.organization_id}/users/freeze",
        json={"user_id": bob.user_id.hex, "frozen": True},
    )
    assert r.status_code == 200
    assert await org.alice.rpc("list_frozen_users") == {
        "status": "ok",
        "frozen_users": [bob.user_id],
    }


@pytest.mark.parametrize("profile", ["STANDARD", "OUTSIDER"])
async def test_list_frozen_users_author_not_allowed(org: Org, profile: str) -> None:
    someone = await org.alice.create_user("someone", profile)
    assert await someone.rpc("list_frozen_users") == {"status": "author_not_allowed"}
