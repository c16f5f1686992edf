"""Administration REST API back end (protocol.md §1.10, observed-reference.md §3.4):
organizations, stats, users, freeze; the internal events that make every handshake cache drop
stale entries."""

# ruff: noqa: F811  (pytest fixtures imported from core_helpers are redefined as arguments)
from __future__ import annotations

import asyncio
import base64
import csv
import io
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import nacl.signing
import pytest
from core_helpers import (  # noqa: F401
    ADMIN_TOKEN,
    Device,
    HttpError,
    Org,
    Server,
    capture_events,
    new_user_certs,
    org,
    server,
    settle,
)

from parsec_server.protocol.codec import now, unpackb

OK = {"status": "ok"}


async def http_status(coro: object) -> int:
    try:
        await coro  # type: ignore[misc]
    except HttpError as exc:
        return exc.status_code
    return 200


async def eventually_status(device: Device, expected: int, within: float = 5.0) -> None:
    """The handshake cache of this process drops its entry once the event arrives."""
    async with asyncio.timeout(within):
        while await http_status(device.rpc("ping", ping="x")) != expected:  # noqa: ASYNC110
            await asyncio.sleep(0.02)


# --- authentication -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", "/organizations"),
        ("GET", "/organizations/X"),
        ("PATCH", "/organizations/X"),
        ("GET", "/stats"),
    ],
)
async def test_admin_token(server: Server, method: str, path: str) -> None:
    r = await server.http.request(
        method, f"/administration{path}", json={}, headers={"Authorization": "Bearer wrong"}
    )
    assert (r.status_code, r.json()) == (403, {"detail": "Bad authorization token"})
    r = await server.http.request(method, f"/administration{path}", json={})
    assert (r.status_code, r.json()) == (403, {"detail": "Not authenticated"})
    r = await server.http.request(
        method, f"/administration{path}", json={}, headers={"Authorization": f"Basic {ADMIN_TOKEN}"}
    )
    assert r.status_code == 403


# --- create / get / patch -------------------------------------------------------------------------


async def test_create_organization(server: Server) -> None:
    r = await server.admin("POST", "/organizations", json={"organization_id": "MyOrg"})
    assert r.status_code == 200
    body = r.json()
    url = urlsplit(body["bootstrap_url"])
    assert (url.scheme, url.netloc, url.path) == ("parsec3", "127.0.0.1:6777", "/MyOrg")
    q = parse_qs(url.query)
    assert q["a"] == ["bootstrap_organization"] and q["no_ssl"] == ["true"]
    p = q["p"][0]
    token = unpackb(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    assert isinstance(token, bytes) and len(token) == 16
    redirect = urlsplit(body["bootstrap_url_as_http_redirection"])
    assert (redirect.scheme, redirect.netloc, redirect.path) == (
        "http",
        "127.0.0.1:6777",
        "/redirect/MyOrg",
    )
    assert parse_qs(redirect.query)["p"] == [p]
    r = await server.admin("GET", "/organizations/MyOrg")
    assert r.json() == {
        "is_bootstrapped": False,
        "is_expired": False,
        "user_profile_outsider_allowed": True,
        "active_users_limit": None,
        "realm_minimum_archiving_period_before_deletion": 2592000,
        "tos": None,
    }


async def test_create_organization_with_settings(server: Server) -> None:
    before = now()
    org_id, _ = await server.create_org(
        user_profile_outsider_allowed=False,
        active_users_limit=3,
        realm_minimum_archiving_period_before_deletion=10,
        tos={"en_US": "https://e.com/en", "fr_FR": "https://e.com/fr"},
    )
    info = (await server.admin("GET", f"/organizations/{org_id}")).json()
    tos = info.pop("tos")
    assert info == {
        "is_bootstrapped": False,
        "is_expired": False,
        "user_profile_outsider_allowed": False,
        "active_users_limit": 3,
        "realm_minimum_archiving_period_before_deletion": 10,
    }
    assert tos["per_locale_urls"] == {"en_US": "https://e.com/en", "fr_FR": "https://e.com/fr"}
    assert before.isoformat()[:19] <= tos["updated_on"][:19]
    assert tos["updated_on"].endswith("Z")


async def test_recreate_not_bootstrapped_replaces_token_and_settings(server: Server) -> None:
    org_id, token1 = await server.create_org(active_users_limit=5)
    await server.admin("PATCH", f"/organizations/{org_id}", json={"is_expired": True})
    _, token2 = await server.create_org(org_id)
    assert token1 != token2
    info = (await server.admin("GET", f"/organizations/{org_id}")).json()
    assert info["active_users_limit"] is None and info["is_expired"] is False
    root = nacl.signing.SigningKey.generate()
    certs = new_user_certs(None, root, profile="ADMIN")
    assert await server.bootstrap_req(org_id, certs, root, token1) == {
        "status": "invalid_bootstrap_token"
    }
    assert await server.bootstrap_req(org_id, certs, root, token2) == OK


async def test_recreate_bootstrapped_organization(server: Server, org: Org) -> None:
    r = await server.admin("POST", "/organizations", json={"organization_id": org.organization_id})
    assert (r.status_code, r.json()) == (400, {"detail": "Organization already exists"})


async def test_concurrent_creations(server: Server) -> None:
    rs = await asyncio.gather(
        *(
            server.admin("POST", "/organizations", json={"organization_id": "Same"})
            for _ in range(5)
        )
    )
    assert [r.status_code for r in rs] == [200] * 5
    async with server.backend.db.connection() as conn:
        assert (
            await conn.fetchval(
                "SELECT COUNT(*) FROM topic_common t JOIN organization o ON o.id = t.organization "
                "WHERE o.organization_id = 'Same'"
            )
            == 1
        )


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"organization_id": "bad org"},
        {"organization_id": 1},
        {"organization_id": "Ok", "active_users_limit": -1},
        {"organization_id": "Ok", "user_profile_outsider_allowed": "yes"},
    ],
)
async def test_create_organization_invalid_body(server: Server, body: dict) -> None:
    assert (await server.admin("POST", "/organizations", json=body)).status_code == 422


async def test_get_patch_unknown_organization(server: Server) -> None:
    for method in ("GET", "PATCH"):
        r = await server.admin(method, "/organizations/Unknown", json={"is_expired": True})
        assert (r.status_code, r.json()) == (404, {"detail": "Organization not found"})


async def test_patch_organization(server: Server, org: Org) -> None:
    path = f"/organizations/{org.organization_id}"
    r = await server.admin(
        "PATCH",
        path,
        json={
            "user_profile_outsider_allowed": False,
            "active_users_limit": 10,
            "realm_minimum_archiving_period_before_deletion": 3600,
        },
    )
    assert (r.status_code, r.json()) == (200, {})
    info = (await server.admin("GET", path)).json()
    assert (
        info["user_profile_outsider_allowed"],
        info["active_users_limit"],
        info["realm_minimum_archiving_period_before_deletion"],
        info["is_bootstrapped"],
    ) == (False, 10, 3600, True)
    await server.admin("PATCH", path, json={"active_users_limit": None})
    info = (await server.admin("GET", path)).json()
    assert (info["active_users_limit"], info["user_profile_outsider_allowed"]) == (None, False)


async def test_patch_expired_drops_cached_handshakes(server: Server, org: Org) -> None:
    path = f"/organizations/{org.organization_id}"
    await org.alice.rpc("ping", ping="warm")
    with capture_events(server, org.organization_id) as log:
        await server.admin("PATCH", path, json={"is_expired": True})
        await log.wait_for("ORGANIZATION_EXPIRED")
    await eventually_status(org.alice, 460)
    assert await http_status(server.anonymous(org.organization_id, "ping", ping="x")) == 460
    await server.admin("PATCH", path, json={"is_expired": False})
    await eventually_status(org.alice, 200)
    async with server.backend.db.connection() as conn:
        assert (
            await conn.fetchval(
                "SELECT expired_on FROM organization WHERE organization_id = $1",
                org.organization_id,
            )
            is None
        )


async def test_patch_tos(server: Server, org: Org) -> None:
    path = f"/organizations/{org.organization_id}"
    await org.alice.rpc("ping", ping="warm")
    with capture_events(server, org.organization_id) as log:
        await server.admin("PATCH", path, json={"tos": {"en_US": "https://e.com/tos"}})
        await log.wait_for("ORGANIZATION_TOS_UPDATED")
    first = (await server.admin("GET", path)).json()["tos"]
    assert first["per_locale_urls"] == {"en_US": "https://e.com/tos"}
    await eventually_status(org.alice, 463)
    await server.admin("PATCH", path, json={"tos": {"fr_FR": "https://e.com/cgu"}})
    second = (await server.admin("GET", path)).json()["tos"]
    assert (
        second["per_locale_urls"] == {"fr_FR": "https://e.com/cgu"}
        and second["updated_on"] > first["updated_on"]
    )
    await server.admin("PATCH", path, json={"tos": None})
    assert (await server.admin("GET", path)).json()["tos"] is None
    await eventually_status(org.alice, 200)


# --- stats ----------------------------------------------------------------------------------------


async def _populate(server: Server, org: Org) -> None:
    """bob STANDARD, revoked mallory OUTSIDER; one realm: 10 + 5 vlob bytes, 7 block bytes."""
    await org.alice.create_user("bob")
    mallory = await org.alice.create_user("mallory", "OUTSIDER")
    assert await org.alice.revoke(mallory.user_id) == OK
    async with server.backend.db.transaction() as conn:
        org_i, dev_i = await conn.fetchrow(
            "SELECT o.id, d.id FROM organization o JOIN device d ON d.organization = o.id "
            "WHERE o.organization_id = $1 AND d.device_id = $2",
            org.organization_id,
            org.alice.device_id,
        )
        realm = await conn.fetchval(
            "INSERT INTO realm (organization, realm_id, created_on, created_by) "
            "VALUES ($1, $2, now(), $3) RETURNING id",
            org_i,
            uuid.uuid4(),
            dev_i,
        )
        for size in (10, 5):
            await conn.execute(
                "INSERT INTO vlob_atom (realm, vlob_id, version, key_index, author, created_on, "
                "size, blob) "
                "VALUES ($1, $2, 1, 1, $3, now(), $4, $5)",
                realm,
                uuid.uuid4(),
                dev_i,
                size,
                b"v" * size,
            )
        await conn.execute(
            "INSERT INTO block (organization, realm, block_id, author, key_index, size, "
            "created_on) VALUES ($4, $1, $2, $3, 1, 7, now())",
            realm,
            uuid.uuid4(),
            dev_i,
            org_i,
        )
        # the totals the server's writes keep (migration 0008), which the stats read
        await conn.execute("UPDATE realm SET vlob_bytes = 15 WHERE id = $1", realm)
        await conn.execute("INSERT INTO realm_block_usage VALUES ($1, 0, 7)", realm)


EXPECTED = {
    "realms": 1,
    "data_size": 7,
    "metadata_size": 15,
    "users": 3,
    "active_users": 2,
    "users_per_profile_detail": {
        "ADMIN": {"active": 1, "revoked": 0},
        "STANDARD": {"active": 1, "revoked": 0},
        "OUTSIDER": {"active": 0, "revoked": 1},
    },
}


async def test_organization_stats(server: Server, org: Org) -> None:
    await _populate(server, org)
    r = await server.admin("GET", f"/organizations/{org.organization_id}/stats")
    assert (r.status_code, r.json()) == (200, EXPECTED)
    # organization_info: the same sizes, for any member
    assert await org.alice.rpc("organization_info") == {
        "status": "ok",
        "total_metadata_bytes": 15,
        "total_block_bytes": 7,
    }


async def test_organization_stats_not_bootstrapped_or_unknown(server: Server) -> None:
    org_id, _ = await server.create_org()
    r = await server.admin("GET", f"/organizations/{org_id}/stats")
    assert r.status_code == 200 and r.json()["users"] == 0 and r.json()["realms"] == 0
    r = await server.admin("GET", "/organizations/Unknown/stats")
    assert (r.status_code, r.json()) == (404, {"detail": "Organization not found"})


async def test_server_stats(server: Server, org: Org) -> None:
    await _populate(server, org)
    other, _ = await server.create_org()
    r = await server.admin("GET", "/stats")
    stats = {s.pop("organization_id"): s for s in r.json()["stats"]}
    assert stats[org.organization_id] == EXPECTED
    assert stats[other]["users"] == 0
    r = await server.admin("GET", "/stats", params={"format": "csv"})
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0][:3] == ["organization_id", "data_size", "metadata_size"]
    assert [row for row in rows if row[0] == org.organization_id] == [
        [org.organization_id, "7", "15", "1", "2", "1", "0", "1", "0", "0", "1"]
    ]


async def test_server_stats_at(server: Server) -> None:
    before = now()
    org = await server.bootstrap_org()
    t0 = now()
    bob = await org.alice.create_user("bob", ts=t0 + timedelta(seconds=1))
    assert await org.alice.update_profile(bob.user_id, "ADMIN", t0 + timedelta(seconds=2)) == OK
    assert await org.alice.revoke(bob.user_id, t0 + timedelta(seconds=3)) == OK

    async def at(ts: object) -> dict | None:
        r = await server.admin("GET", "/stats", params={"at": ts.isoformat()})  # type: ignore[attr-defined]
        assert r.status_code == 200
        return {s["organization_id"]: s for s in r.json()["stats"]}.get(org.organization_id)

    assert await at(before) is None
    s = await at(t0 + timedelta(milliseconds=500))
    assert (s["users"], s["active_users"]) == (1, 1)  # type: ignore[index]
    s = await at(t0 + timedelta(milliseconds=1500))
    assert s["users_per_profile_detail"]["STANDARD"] == {"active": 1, "revoked": 0}  # type: ignore[index]
    s = await at(t0 + timedelta(milliseconds=2500))
    assert s["users_per_profile_detail"]["ADMIN"] == {"active": 2, "revoked": 0}  # type: ignore[index]
    s = await at(t0 + timedelta(seconds=4))
    assert s["users_per_profile_detail"]["ADMIN"] == {"active": 1, "revoked": 1}  # type: ignore[index]
    r = await server.admin("GET", "/stats", params={"at": "yesterday"})
    assert (r.status_code, r.json()) == (
        400,
        {"detail": "Invalid `at` query argument (expected RFC3339 datetime)"},
    )
    assert (await server.admin("GET", "/stats", params={"format": "xml"})).status_code == 422


# --- users, freeze --------------------------------------------------------------------------------


async def test_users_list(server: Server, org: Org) -> None:
    bob = await org.alice.create_user("bob")
    mallory = await org.alice.create_user("mallory")
    assert await org.alice.revoke(mallory.user_id) == OK
    r = await server.admin("GET", f"/organizations/{org.organization_id}/users")
    assert r.json() == {
        "users": [
            {
                "user_id": org.alice.user_id.hex,
                "user_email": "alice@example.com",
                "user_name": "Alice",
                "frozen": False,
            },
            {
                "user_id": bob.user_id.hex,
                "user_email": "bob@example.com",
                "user_name": "Bob",
                "frozen": False,
            },
        ]
    }
    not_bootstrapped, _ = await server.create_org()
    for org_id in (not_bootstrapped, "Unknown"):
        r = await server.admin("GET", f"/organizations/{org_id}/users")
        assert (r.status_code, r.json()) == (404, {"detail": "Organization not found"})


async def test_freeze(server: Server, org: Org) -> None:
    bob = await org.alice.create_user("bob")
    await bob.rpc("ping", ping="warm")
    path = f"/organizations/{org.organization_id}/users/freeze"
    await settle(server, org.organization_id)
    with capture_events(server, org.organization_id) as log:
        r = await server.admin("POST", path, json={"user_id": bob.user_id.hex, "frozen": True})
        assert (r.status_code, r.json()) == (
            200,
            {
                "user_id": bob.user_id.hex,
                "user_email": "bob@example.com",
                "user_name": "Bob",
                "frozen": True,
            },
        )
        events = await log.wait_for("USER_REVOKED_OR_FROZEN")
    assert events[0]["user_id"] == bob.user_id.hex
    await eventually_status(bob, 462)
    users = (await server.admin("GET", f"/organizations/{org.organization_id}/users")).json()[
        "users"
    ]
    assert {u["user_id"]: u["frozen"] for u in users} == {
        org.alice.user_id.hex: False,
        bob.user_id.hex: True,
    }
    with capture_events(server, org.organization_id) as log:
        r = await server.admin(
            "POST", path, json={"user_email": "bob@example.com", "frozen": False}
        )
        assert r.json()["frozen"] is False
        await log.wait_for("USER_UNFROZEN")
    await eventually_status(bob, 200)


async def test_freeze_errors(server: Server, org: Org) -> None:
    mallory = await org.alice.create_user("mallory")
    assert await org.alice.revoke(mallory.user_id) == OK
    path = f"/organizations/{org.organization_id}/users/freeze"
    for body, status, detail in [
        ({"frozen": True, "user_id": uuid.uuid4().hex}, 404, "User not found"),
        ({"frozen": True, "user_email": "nobody@example.com"}, 404, "User not found"),
        ({"frozen": True, "user_email": "mallory@example.com"}, 404, "User not found"),
        ({"frozen": True, "user_id": mallory.user_id.hex}, 404, "User has been revoked"),
        ({"frozen": True}, 400, "Missing either `user_id` or `user_email` field"),
        (
            {"frozen": True, "user_id": org.alice.user_id.hex, "user_email": "alice@example.com"},
            400,
            "Both `user_id` and `user_email` fields are provided",
        ),
    ]:
        r = await server.admin("POST", path, json=body)
        assert (r.status_code, r.json()) == (status, {"detail": detail}), body
    assert (
        await server.admin("POST", path, json={"user_id": org.alice.user_id.hex})
    ).status_code == 422
    r = await server.admin(
        "POST", "/organizations/Unknown/users/freeze", json={"frozen": True, "user_email": "a@b.c"}
    )
    assert (r.status_code, r.json()) == (404, {"detail": "Organization not found"})
