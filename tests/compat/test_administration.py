"""Administration REST API (observed-reference.md §3.4, protocol.md §1.10)."""

from __future__ import annotations

import csv
import io
from urllib.parse import urlsplit

import httpx
import parsec._parsec as p
import pytest
from client import (
    AC,
    ANC,
    AdminClient,
    AnonymousClient,
    AuthenticatedClient,
    Org,
    bootstrap_org,
    build_user_certs,
    new_org_id,
    now,
    url_query,
)

DEFAULT_ARCHIVING_PERIOD = 2592000  # 30 days


def bootstrap_with(http: httpx.Client, org_id: str, token: p.AccessToken | None) -> object:
    root_key = p.SigningKey.generate()
    certs = build_user_certs(org_id, None, root_key, name="alice", profile=p.UserProfile.ADMIN)
    return AnonymousClient(http, org_id).bootstrap(certs, root_key, token)


# --- authentication -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", "/organizations"),
        ("GET", "/organizations/{org}"),
        ("PATCH", "/organizations/{org}"),
        ("GET", "/organizations/{org}/stats"),
        ("GET", "/stats"),
        ("GET", "/organizations/{org}/users"),
        ("POST", "/organizations/{org}/users/freeze"),
    ],
)
def test_bad_administration_token(org: Org, admin: AdminClient, method: str, path: str) -> None:
    path = path.format(org=org.organization_id)
    body = {"organization_id": new_org_id()} if method == "POST" else None
    r = admin.request(method, path, token="not-the-token", json=body)
    assert r.status_code == 403
    assert r.json() == {"detail": "Bad authorization token"}
    r = admin.http.request(method, f"/administration{path}", json=body)
    assert r.status_code == 403
    assert r.json() == {"detail": "Not authenticated"}
    r = admin.http.request(
        method,
        f"/administration{path}",
        json=body,
        headers={"Authorization": f"Basic {admin.token}"},
    )
    assert r.status_code == 403


def test_lowercase_bearer_accepted(admin: AdminClient, org: Org) -> None:
    r = admin.http.get(
        f"/administration/organizations/{org.organization_id}",
        headers={"Authorization": f"bearer {admin.token}"},
    )
    assert r.status_code == 200


# --- create -------------------------------------------------------------------------------------


def test_create_organization(admin: AdminClient, server_url: str) -> None:
    org_id = new_org_id()
    r = admin.request("POST", "/organizations", json={"organization_id": org_id})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"bootstrap_url", "bootstrap_url_as_http_redirection"}
    server = urlsplit(server_url)

    url = urlsplit(body["bootstrap_url"])
    assert url.scheme == "parsec3"
    assert (url.hostname, url.port) == (server.hostname, server.port)
    assert url.path == f"/{org_id}"
    q = url_query(body["bootstrap_url"])
    assert q["a"] == ["bootstrap_organization"]
    assert q["no_ssl"] == ["true"]
    assert len(q["p"]) == 1

    redirect = urlsplit(body["bootstrap_url_as_http_redirection"])
    assert redirect.scheme == "http"
    assert (redirect.hostname, redirect.port) == (server.hostname, server.port)
    assert redirect.path == f"/redirect/{org_id}"
    rq = url_query(body["bootstrap_url_as_http_redirection"])
    assert rq["a"] == ["bootstrap_organization"]
    assert rq["p"] == q["p"]

    addr = p.ParsecOrganizationBootstrapAddr.from_url(body["bootstrap_url"])
    assert addr.organization_id.str == org_id
    assert addr.token is not None
    assert addr.use_ssl is False

    assert admin.get_org(org_id) == {
        "is_bootstrapped": False,
        "is_expired": False,
        "user_profile_outsider_allowed": True,
        "active_users_limit": None,
        "realm_minimum_archiving_period_before_deletion": DEFAULT_ARCHIVING_PERIOD,
        "tos": None,
    }


def test_create_organization_with_config(admin: AdminClient) -> None:
    before = now()
    org_id, _ = admin.create_org(
        user_profile_outsider_allowed=False,
        active_users_limit=3,
        realm_minimum_archiving_period_before_deletion=10,
        tos={"en_US": "https://example.com/tos_en", "fr_FR": "https://example.com/tos_fr"},
    )
    info = admin.get_org(org_id)
    tos = info.pop("tos")
    assert info == {
        "is_bootstrapped": False,
        "is_expired": False,
        "user_profile_outsider_allowed": False,
        "active_users_limit": 3,
        "realm_minimum_archiving_period_before_deletion": 10,
    }
    assert tos["per_locale_urls"] == {
        "en_US": "https://example.com/tos_en",
        "fr_FR": "https://example.com/tos_fr",
    }
    updated_on = p.DateTime.from_rfc3339(tos["updated_on"])
    assert before <= updated_on <= now()


def test_create_organization_null_limit_means_no_limit(admin: AdminClient) -> None:
    org_id, _ = admin.create_org(active_users_limit=None)
    assert admin.get_org(org_id)["active_users_limit"] is None


def test_recreate_not_bootstrapped_organization_replaces_token(
    admin: AdminClient, http: httpx.Client
) -> None:
    org_id, token1 = admin.create_org(active_users_limit=5)
    org_id2, token2 = admin.create_org(org_id)
    assert org_id2 == org_id
    assert token1 != token2
    rep = bootstrap_with(http, org_id, token1)
    assert isinstance(rep, ANC.organization_bootstrap.RepInvalidBootstrapToken), rep
    rep = bootstrap_with(http, org_id, token2)
    assert isinstance(rep, ANC.organization_bootstrap.RepOk), rep
    # configuration overwritten by the second creation: back to the defaults
    assert admin.get_org(org_id)["active_users_limit"] is None


def test_recreate_bootstrapped_organization(admin: AdminClient, org: Org) -> None:
    r = admin.request("POST", "/organizations", json={"organization_id": org.organization_id})
    assert r.status_code == 400
    assert r.json() == {"detail": "Organization already exists"}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"organization_id": "bad org"},
        {"organization_id": "a" * 33},
        {"organization_id": 42},
        {"organization_id": "{new}", "active_users_limit": -1},
        {"organization_id": "{new}", "active_users_limit": "many"},
        {"organization_id": "{new}", "user_profile_outsider_allowed": "yes"},
        {"organization_id": "{new}", "realm_minimum_archiving_period_before_deletion": -1},
    ],
)
def test_create_organization_invalid_body(admin: AdminClient, body: dict) -> None:
    if body.get("organization_id") == "{new}":
        body = {**body, "organization_id": new_org_id()}
    r = admin.request("POST", "/organizations", json=body)
    assert r.status_code == 422
    assert "detail" in r.json()


def test_create_organization_not_json(admin: AdminClient) -> None:
    r = admin.request(
        "POST", "/organizations", content=b"not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422


# --- get / patch ------------------------------------------------------------------------------


def test_get_bootstrapped_organization(admin: AdminClient, org: Org) -> None:
    info = admin.get_org(org.organization_id)
    assert info["is_bootstrapped"] is True
    assert info["is_expired"] is False


def test_get_unknown_organization(admin: AdminClient) -> None:
    r = admin.request("GET", f"/organizations/{new_org_id()}")
    assert r.status_code == 404
    assert r.json() == {"detail": "Organization not found"}


@pytest.mark.parametrize("method", ["GET", "PATCH"])
def test_invalid_organization_id_in_path(admin: AdminClient, method: str) -> None:
    r = admin.request(method, "/organizations/bad%20org!", json={"is_expired": True})
    assert r.status_code == 404


def test_patch_organization(admin: AdminClient, org: Org) -> None:
    r = admin.request(
        "PATCH",
        f"/organizations/{org.organization_id}",
        json={
            "user_profile_outsider_allowed": False,
            "active_users_limit": 10,
            "realm_minimum_archiving_period_before_deletion": 3600,
        },
    )
    assert r.status_code == 200
    assert r.json() == {}
    info = admin.get_org(org.organization_id)
    assert info["user_profile_outsider_allowed"] is False
    assert info["active_users_limit"] == 10
    assert info["realm_minimum_archiving_period_before_deletion"] == 3600
    # only the given fields change
    admin.patch_org(org.organization_id, active_users_limit=None)
    info = admin.get_org(org.organization_id)
    assert info["active_users_limit"] is None
    assert info["user_profile_outsider_allowed"] is False
    assert info["realm_minimum_archiving_period_before_deletion"] == 3600


def test_patch_organization_expired(admin: AdminClient, org: Org) -> None:
    admin.patch_org(org.organization_id, is_expired=True)
    assert admin.get_org(org.organization_id)["is_expired"] is True
    admin.patch_org(org.organization_id, is_expired=False)
    assert admin.get_org(org.organization_id)["is_expired"] is False


def test_patch_organization_tos(admin: AdminClient, org: Org) -> None:
    admin.patch_org(org.organization_id, tos={"en_US": "https://example.com/tos"})
    tos = admin.get_org(org.organization_id)["tos"]
    assert tos["per_locale_urls"] == {"en_US": "https://example.com/tos"}
    first = p.DateTime.from_rfc3339(tos["updated_on"])
    admin.patch_org(org.organization_id, tos={"fr_FR": "https://example.com/cgu"})
    tos = admin.get_org(org.organization_id)["tos"]
    assert tos["per_locale_urls"] == {"fr_FR": "https://example.com/cgu"}
    assert p.DateTime.from_rfc3339(tos["updated_on"]) > first
    admin.patch_org(org.organization_id, tos=None)
    assert admin.get_org(org.organization_id)["tos"] is None


def test_patch_unknown_organization(admin: AdminClient) -> None:
    r = admin.request("PATCH", f"/organizations/{new_org_id()}", json={"is_expired": True})
    assert r.status_code == 404
    assert r.json() == {"detail": "Organization not found"}


@pytest.mark.parametrize(
    "body",
    [{"is_expired": "yes"}, {"active_users_limit": -3}, {"user_profile_outsider_allowed": None}],
)
def test_patch_organization_invalid_body(admin: AdminClient, org: Org, body: dict) -> None:
    r = admin.request("PATCH", f"/organizations/{org.organization_id}", json=body)
    assert r.status_code == 422


# --- stats ------------------------------------------------------------------------------------


def populate(org: Org) -> None:
    """alice (ADMIN), bob (STANDARD), revoked mallory (OUTSIDER); one realm, 10 bytes of vlob,
    7 bytes of block."""
    alice = org.alice
    alice.create_user("bob")
    mallory = alice.create_user("mallory", p.UserProfile.OUTSIDER)
    assert isinstance(alice.revoke(mallory.user_id), AC.user_revoke.RepOk)
    realm = alice.new_realm()
    rep = alice.send(
        AC.vlob_create.Req(
            realm_id=realm, vlob_id=p.VlobID.new(), key_index=1, timestamp=now(), blob=b"x" * 10
        )
    )
    assert isinstance(rep, AC.vlob_create.RepOk), rep
    rep = alice.send(
        AC.block_create.Req(block_id=p.BlockID.new(), realm_id=realm, key_index=1, block=b"y" * 7)
    )
    assert isinstance(rep, AC.block_create.RepOk), rep


EXPECTED_STATS = {
    "realms": 1,
    "data_size": 7,
    "metadata_size": 10,
    "users": 3,
    "active_users": 2,
    "users_per_profile_detail": {
        "ADMIN": {"active": 1, "revoked": 0},
        "STANDARD": {"active": 1, "revoked": 0},
        "OUTSIDER": {"active": 0, "revoked": 1},
    },
}


def test_organization_stats(admin: AdminClient, org: Org) -> None:
    populate(org)
    r = admin.request("GET", f"/organizations/{org.organization_id}/stats")
    assert r.status_code == 200
    assert r.json() == EXPECTED_STATS


def test_organization_stats_fresh_org(admin: AdminClient, org: Org) -> None:
    r = admin.request("GET", f"/organizations/{org.organization_id}/stats")
    assert r.json() == {
        "realms": 0,
        "data_size": 0,
        "metadata_size": 0,
        "users": 1,
        "active_users": 1,
        "users_per_profile_detail": {
            "ADMIN": {"active": 1, "revoked": 0},
            "STANDARD": {"active": 0, "revoked": 0},
            "OUTSIDER": {"active": 0, "revoked": 0},
        },
    }


def test_organization_stats_not_bootstrapped(admin: AdminClient) -> None:
    org_id, _ = admin.create_org()
    r = admin.request("GET", f"/organizations/{org_id}/stats")
    assert r.status_code == 200
    assert r.json()["users"] == 0


def test_organization_stats_unknown_org(admin: AdminClient) -> None:
    r = admin.request("GET", f"/organizations/{new_org_id()}/stats")
    assert r.status_code == 404
    assert r.json() == {"detail": "Organization not found"}


def test_server_stats_json(admin: AdminClient, org: Org) -> None:
    populate(org)
    for params in ({}, {"format": "json"}):
        r = admin.request("GET", "/stats", params=params)
        assert r.status_code == 200
        stats = r.json()["stats"]
        mine = [s for s in stats if s["organization_id"] == org.organization_id]
        assert mine == [{"organization_id": org.organization_id, **EXPECTED_STATS}]


def test_server_stats_csv(admin: AdminClient, org: Org) -> None:
    populate(org)
    r = admin.request("GET", "/stats", params={"format": "csv"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == [
        "organization_id",
        "data_size",
        "metadata_size",
        "realms",
        "active_users",
        "admin_users_active",
        "admin_users_revoked",
        "standard_users_active",
        "standard_users_revoked",
        "outsider_users_active",
        "outsider_users_revoked",
    ]
    mine = [row for row in rows[1:] if row[0] == org.organization_id]
    assert mine == [[org.organization_id, "7", "10", "1", "2", "1", "0", "1", "0", "0", "1"]]


def test_server_stats_at(admin: AdminClient, http: httpx.Client) -> None:
    before = now()
    org = bootstrap_org(http, admin)
    r = admin.request("GET", "/stats", params={"at": before.to_rfc3339()})
    assert r.status_code == 200
    assert org.organization_id not in [s["organization_id"] for s in r.json()["stats"]]
    r = admin.request("GET", "/stats", params={"at": now().to_rfc3339()})
    assert org.organization_id in [s["organization_id"] for s in r.json()["stats"]]


def test_server_stats_bad_at(admin: AdminClient) -> None:
    r = admin.request("GET", "/stats", params={"at": "yesterday"})
    assert r.status_code == 400
    assert r.json() == {"detail": "Invalid `at` query argument (expected RFC3339 datetime)"}


def test_server_stats_bad_format(admin: AdminClient) -> None:
    r = admin.request("GET", "/stats", params={"format": "xml"})
    assert r.status_code == 422


# --- users ------------------------------------------------------------------------------------


def test_users_list(admin: AdminClient, org: Org) -> None:
    alice = org.alice
    bob = alice.create_user("bob")
    mallory = alice.create_user("mallory", p.UserProfile.OUTSIDER)
    alice.revoke(mallory.user_id)
    r = admin.request("GET", f"/organizations/{org.organization_id}/users")
    assert r.status_code == 200
    users = sorted(r.json()["users"], key=lambda u: u["user_email"])
    assert users == [
        {
            "user_id": alice.user_id.hex,
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


def test_users_list_unknown_or_not_bootstrapped_org(admin: AdminClient) -> None:
    r = admin.request("GET", f"/organizations/{new_org_id()}/users")
    assert r.status_code == 404
    org_id, _ = admin.create_org()
    r = admin.request("GET", f"/organizations/{org_id}/users")
    assert r.status_code == 404
    assert r.json() == {"detail": "Organization not found"}


def test_freeze_by_user_id_and_email(
    admin: AdminClient, org: Org, bob: AuthenticatedClient
) -> None:
    path = f"/organizations/{org.organization_id}/users/freeze"
    r = admin.request("POST", path, json={"user_id": bob.user_id.hex, "frozen": True})
    assert r.status_code == 200
    assert r.json() == {
        "user_id": bob.user_id.hex,
        "user_email": "bob@example.com",
        "user_name": "Bob",
        "frozen": True,
    }
    users = admin.request("GET", f"/organizations/{org.organization_id}/users").json()["users"]
    assert {u["user_id"]: u["frozen"] for u in users} == {
        org.alice.user_id.hex: False,
        bob.user_id.hex: True,
    }
    # freezing twice is fine
    r = admin.request("POST", path, json={"user_email": "bob@example.com", "frozen": True})
    assert r.status_code == 200
    assert r.json()["frozen"] is True
    r = admin.request("POST", path, json={"user_email": "bob@example.com", "frozen": False})
    assert r.status_code == 200
    assert r.json()["frozen"] is False
    # hyphenated ids are accepted too
    r = admin.request("POST", path, json={"user_id": bob.user_id.hyphenated, "frozen": False})
    assert r.status_code == 200
    assert r.json()["user_id"] == bob.user_id.hex


def test_freeze_errors(admin: AdminClient, org: Org, alice: AuthenticatedClient) -> None:
    mallory = alice.create_user("mallory")
    alice.revoke(mallory.user_id)
    path = f"/organizations/{org.organization_id}/users/freeze"
    cases = [
        ({"frozen": True, "user_id": p.UserID.new().hex}, 404, "User not found"),
        ({"frozen": True, "user_email": "nobody@example.com"}, 404, "User not found"),
        ({"frozen": True, "user_id": mallory.user_id.hex}, 404, "User has been revoked"),
        ({"frozen": True}, 400, "Missing either `user_id` or `user_email` field"),
        (
            {"frozen": True, "user_id": alice.user_id.hex, "user_email": "alice@example.com"},
            400,
            "Both `user_id` and `user_email` fields are provided",
        ),
    ]
    for body, status, detail in cases:
        r = admin.request("POST", path, json=body)
        assert (r.status_code, r.json()) == (status, {"detail": detail}), body
    r = admin.request("POST", path, json={"user_id": alice.user_id.hex})
    assert r.status_code == 422
    r = admin.request(
        "POST",
        f"/organizations/{new_org_id()}/users/freeze",
        json={"frozen": True, "user_email": "a@b.c"},
    )
    assert (r.status_code, r.json()) == (404, {"detail": "Organization not found"})


def test_freeze_shows_in_list_frozen_users(
    admin: AdminClient, org: Org, bob: AuthenticatedClient
) -> None:
    rep = org.alice.send(AC.list_frozen_users.Req())
    assert isinstance(rep, AC.list_frozen_users.RepOk), rep
    assert rep.frozen_users == []
    admin.freeze(org.organization_id, bob.user_id)
    rep = org.alice.send(AC.list_frozen_users.Req())
    assert rep.frozen_users == [bob.user_id]
    admin.freeze(org.organization_id, bob.user_id, frozen=False)
    rep = org.alice.send(AC.list_frozen_users.Req())
    assert rep.frozen_users == []
