"""HTTP transport and handshake of the RPC routes (observed-reference.md §3.1-3.2).

Operational outcomes are HTTP 200 + a msgpack status; the handshake layer answers with bare HTTP
codes and a JSON `{"detail": ...}` body, checked in this order: Api-Version, organization id
syntax, Content-Type/Accept, Authorization syntax, organization/user/token lookup, body decode.
"""

from __future__ import annotations

import base64

import httpx
import parsec._parsec as p
import pytest
from client import (
    AC,
    ANC,
    API_VERSION,
    IC,
    MSGPACK,
    SERVER_API_VERSION,
    AdminClient,
    AnonymousClient,
    AuthenticatedClient,
    Device,
    InvitedClient,
    Org,
    auth_token,
    bootstrap_org,
    mp_map,
    mp_str,
    new_org_id,
)

PING_BODY = AC.ping.Req(ping="hello").dump()


def invite_user(alice: AuthenticatedClient, email: str = "zack@example.com") -> p.AccessToken:
    rep = alice.send(AC.invite_new_user.Req(claimer_email=p.EmailAddress(email), send_email=False))
    assert isinstance(rep, AC.invite_new_user.RepOk), rep
    return rep.token


def clients(org: Org, family: str) -> AnonymousClient | AuthenticatedClient | InvitedClient:
    if family == "anonymous":
        return org.anonymous
    if family == "authenticated":
        return org.alice
    return InvitedClient(org.http, org.organization_id, invite_user(org.alice))


def ping_req(family: str) -> bytes:
    mod = {"anonymous": ANC, "authenticated": AC, "invited": IC}[family]
    return mod.ping.Req(ping="hello").dump()


def assert_handshake_error(r: httpx.Response, status: int, detail: str | None = None) -> None:
    assert r.status_code == status, (r.status_code, r.content[:200])
    if detail is not None:
        assert r.json() == {"detail": detail}
    # Past the API version check every reply announces the settled version.
    if status not in (413, 422):
        assert r.headers.get("api-version") == SERVER_API_VERSION


FAMILIES = ["anonymous", "authenticated", "invited"]


# --- anonymous probe ----------------------------------------------------------------------------


def test_anonymous_get_probe(org: Org) -> None:
    r = org.http.get(
        f"/anonymous/{org.organization_id}",
        headers={"Api-Version": API_VERSION, "Content-Type": MSGPACK},
    )
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["api-version"] == SERVER_API_VERSION


def test_anonymous_get_probe_unknown_org(http: httpx.Client) -> None:
    r = http.get(
        f"/anonymous/{new_org_id()}", headers={"Api-Version": API_VERSION, "Content-Type": MSGPACK}
    )
    assert_handshake_error(r, 404, "Organization not found")


def test_anonymous_get_probe_requires_msgpack_content_type(org: Org) -> None:
    r = org.http.get(f"/anonymous/{org.organization_id}", headers={"Api-Version": API_VERSION})
    assert_handshake_error(r, 415)


def test_anonymous_probe_on_not_bootstrapped_org(http: httpx.Client, admin: AdminClient) -> None:
    org_id, _ = admin.create_org()
    r = http.get(
        f"/anonymous/{org_id}", headers={"Api-Version": API_VERSION, "Content-Type": MSGPACK}
    )
    assert r.status_code == 200


# --- Api-Version handshake --------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("version", ["5.0", "5.5", "5.99"])
def test_api_version_accepted(org: Org, family: str, version: str) -> None:
    client = clients(org, family)
    r = client.post(ping_req(family), headers=client.headers(**{"Api-Version": version}))
    assert r.status_code == 200, r.content
    assert r.headers["api-version"] == SERVER_API_VERSION
    assert r.headers["content-type"] == MSGPACK
    rep = {"anonymous": ANC, "authenticated": AC, "invited": IC}[family].ping.Rep.load(r.content)
    assert rep.pong == "hello"


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("version", ["4.0", "6.0", "5", "5.5.1", "abc", "", None])
def test_api_version_rejected(org: Org, family: str, version: str | None) -> None:
    client = clients(org, family)
    headers = client.headers()
    if version is None:
        del headers["Api-Version"]
    else:
        headers["Api-Version"] = version
    r = client.post(ping_req(family), headers=headers)
    assert r.status_code == 422, r.content
    assert r.headers["supported-api-versions"] == SERVER_API_VERSION
    assert "api-version" not in r.headers


def test_api_version_rejected_on_sse(alice: AuthenticatedClient) -> None:
    with alice.events(**{"Api-Version": "4.0"}) as stream:
        assert stream.response.status_code == 422
        assert stream.response.headers["supported-api-versions"] == SERVER_API_VERSION


def test_api_version_checked_before_organization(http: httpx.Client) -> None:
    r = http.post(
        "/authenticated/bad org!",
        content=PING_BODY,
        headers={"Api-Version": "4.0", "Content-Type": "text/plain"},
    )
    assert r.status_code == 422


def test_anonymous_server_route(http: httpx.Client) -> None:
    body = p.anonymous_server_cmds.latest.ping.Req(ping="srv").dump()
    r = http.post(
        "/anonymous_server",
        content=body,
        headers={"Api-Version": API_VERSION, "Content-Type": MSGPACK},
    )
    assert r.status_code == 200
    rep = p.anonymous_server_cmds.latest.ping.Rep.load(r.content)
    assert rep.pong == "srv"
    r = http.post(
        "/anonymous_server", content=body, headers={"Api-Version": "6.1", "Content-Type": MSGPACK}
    )
    assert r.status_code == 422


def test_anonymous_server_config(http: httpx.Client) -> None:
    asc = p.anonymous_server_cmds.latest.server_config
    r = http.post(
        "/anonymous_server",
        content=asc.Req().dump(),
        headers={"Api-Version": API_VERSION, "Content-Type": MSGPACK},
    )
    assert r.status_code == 200
    rep = asc.Rep.load(r.content)
    assert isinstance(rep, asc.RepOk), rep
    # the suite's servers run with the default configuration, but for accounts (scripts/compat.sh)
    assert rep.account == asc.AccountConfig.ENABLED_WITH_VAULT
    assert rep.organization_bootstrap == asc.OrganizationBootstrapConfig.WITH_BOOTSTRAP_TOKEN
    assert isinstance(rep.openbao, asc.OpenBaoConfigDisabled)
    assert isinstance(rep.cryptpad, asc.CryptPadConfigDisabled)
    assert rep.advisory_device_file_protection == []


# --- organization id ----------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_unknown_organization(org: Org, family: str) -> None:
    client = clients(org, family)
    client.organization_id = new_org_id("Nope")
    assert_handshake_error(client.post(ping_req(family)), 404, "Organization not found")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("bad_id", ["bad%20org!", "a" * 33, "%C3%A9t%C3%A9%3F"])
def test_invalid_organization_id(org: Org, family: str, bad_id: str) -> None:
    client = clients(org, family)
    client.organization_id = bad_id
    assert_handshake_error(client.post(ping_req(family)), 404, "Organization not found")


def test_invalid_organization_id_checked_before_content_type_and_auth(http: httpx.Client) -> None:
    r = http.post(
        "/authenticated/bad%20org!",
        content=b"garbage",
        headers={"Api-Version": API_VERSION, "Content-Type": "text/plain"},
    )
    assert_handshake_error(r, 404)


def test_unknown_org_with_missing_auth_is_401(http: httpx.Client) -> None:
    # The organization is looked up with the credentials: syntax of Authorization comes first.
    r = http.post(
        f"/authenticated/{new_org_id()}",
        content=PING_BODY,
        headers={"Api-Version": API_VERSION, "Content-Type": MSGPACK},
    )
    assert_handshake_error(r, 401, "Missing authentication info")


def test_authenticated_on_not_bootstrapped_org(http: httpx.Client, admin: AdminClient) -> None:
    org_id, _ = admin.create_org()
    client = AuthenticatedClient(
        http,
        Device(
            org_id,
            p.UserID.new(),
            p.DeviceID.new(),
            p.SigningKey.generate(),
            p.PrivateKey.generate(),
            p.HumanHandle(p.EmailAddress("x@example.com"), "X"),
            p.DeviceLabel("x"),
            p.UserProfile.ADMIN,
        ),
    )
    # PostgreSQL reference: 404; in-memory reference: 403.
    assert client.post(PING_BODY).status_code in (403, 404)


# --- content type and body ----------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    "content_type", ["application/json", "application/msgpack; charset=utf-8", "text/plain", None]
)
def test_bad_content_type(org: Org, family: str, content_type: str | None) -> None:
    client = clients(org, family)
    headers = client.headers()
    if content_type is None:
        del headers["Content-Type"]
    else:
        headers["Content-Type"] = content_type
    assert_handshake_error(
        client.post(ping_req(family), headers=headers),
        415,
        "Bad content type or invalid body or unknown command",
    )


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    "body",
    [
        b"garbage",
        b"",
        b"\x91\xa4ping",  # an array, not a map
        mp_map({"cmd": mp_str("no_such_command")}),
        mp_map({"ping": mp_str("no cmd")}),
        mp_map({"cmd": mp_str("ping")}),  # missing field
        mp_map({"cmd": mp_str("ping"), "ping": b"\x2a"}),  # wrong field type
    ],
    ids=["garbage", "empty", "array", "unknown-cmd", "no-cmd", "missing-field", "bad-field-type"],
)
def test_invalid_body(org: Org, family: str, body: bytes) -> None:
    assert_handshake_error(
        clients(org, family).post(body), 415, "Bad content type or invalid body or unknown command"
    )


def test_command_of_another_family(org: Org) -> None:
    # authenticated command on the anonymous route, and the other way round
    r = org.anonymous.post(AC.organization_info.Req().dump())
    assert_handshake_error(r, 415)
    r = org.alice.post(
        ANC.organization_bootstrap.Req(
            bootstrap_token=None,
            root_verify_key=p.SigningKey.generate().verify_key,
            user_certificate=b"",
            device_certificate=b"",
            redacted_user_certificate=b"",
            redacted_device_certificate=b"",
            sequester_authority_certificate=None,
        ).dump()
    )
    assert_handshake_error(r, 415)
    # tos commands only live on /authenticated/<org>/tos
    r = org.alice.post(p.tos_cmds.latest.tos_get.Req().dump())
    assert_handshake_error(r, 415)
    r = org.alice.post(AC.organization_info.Req().dump(), suffix="/tos")
    assert_handshake_error(r, 415)


def test_unknown_extra_fields_are_ignored(alice: AuthenticatedClient) -> None:
    body = mp_map({"cmd": mp_str("ping"), "ping": mp_str("x"), "extra_field": mp_str("ignored")})
    r = alice.post(body)
    assert r.status_code == 200
    assert AC.ping.Rep.load(r.content).pong == "x"


def test_body_too_large(alice: AuthenticatedClient) -> None:
    r = alice.post(b"\x00" * (1024 * 1024 + 1))
    assert r.status_code == 413


def test_body_of_exactly_one_mib_is_read(alice: AuthenticatedClient) -> None:
    # At the limit the body is read and decoded: garbage, hence 415 (not 413).
    r = alice.post(b"\x00" * (1024 * 1024))
    assert_handshake_error(r, 415)


def test_get_on_rpc_route_not_allowed(alice: AuthenticatedClient) -> None:
    r = alice.http.get(alice.url(), headers=alice.headers())
    assert r.status_code == 405


# --- authentication -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer PARSEC-SIGN-ED25519.nothex.123.AAAA",
        "Bearer PARSEC-SIGN-ED25519",
        "Bearer a b",
        "{token} extra",
        "Token {token}",
        "Bearer PARSEC-SIGN-RSA.{rest}",
        "Bearer {token_bad_b64}",
        "Bearer {token_no_ts}",
    ],
)
def test_authenticated_malformed_authorization(
    alice: AuthenticatedClient, authorization: str | None
) -> None:
    token = alice.token()
    head, _, _ = token.rpartition(".")
    fmt = {
        "token": token,
        "rest": token.split(".", 1)[1],
        "token_bad_b64": f"{head}.!!not-base64!!",
        "token_no_ts": token.replace(f".{head.split('.')[2]}.", ".", 1),
    }
    headers = alice.headers()
    if authorization is None:
        del headers["Authorization"]
    else:
        headers["Authorization"] = authorization.format(**fmt)
    assert_handshake_error(
        alice.post(PING_BODY, headers=headers), 401, "Missing authentication info"
    )


def test_authenticated_lowercase_bearer_accepted(alice: AuthenticatedClient) -> None:
    r = alice.post(PING_BODY, headers=alice.headers(Authorization=f"bearer {alice.token()}"))
    assert r.status_code == 200


def test_authenticated_bad_signature(alice: AuthenticatedClient) -> None:
    forged = auth_token(alice.device_id, p.SigningKey.generate())
    r = alice.post(PING_BODY, headers=alice.headers(Authorization=f"Bearer {forged}"))
    assert_handshake_error(r, 403, "Bad authentication info")


def test_authenticated_signature_of_other_timestamp(alice: AuthenticatedClient) -> None:
    # signature valid for another timestamp than the one in the token
    ts = p.DateTime.now().as_timestamp_seconds()
    sig = alice.token(ts - 1).rpartition(".")[2]
    token = f"PARSEC-SIGN-ED25519.{alice.device_id.hex}.{ts}.{sig}"
    r = alice.post(PING_BODY, headers=alice.headers(Authorization=f"Bearer {token}"))
    assert_handshake_error(r, 403, "Bad authentication info")


def test_authenticated_unknown_device(alice: AuthenticatedClient) -> None:
    key = p.SigningKey.generate()
    token = auth_token(p.DeviceID.new(), key)
    r = alice.post(PING_BODY, headers=alice.headers(Authorization=f"Bearer {token}"))
    assert_handshake_error(r, 403, "Bad authentication info")


def test_authenticated_device_of_other_org(
    http: httpx.Client, admin: AdminClient, alice: AuthenticatedClient
) -> None:
    other = bootstrap_org(http, admin)
    r = alice.post(PING_BODY, headers=alice.headers(Authorization=f"Bearer {other.alice.token()}"))
    assert_handshake_error(r, 403, "Bad authentication info")


def test_authenticated_hyphenated_device_id_accepted(alice: AuthenticatedClient) -> None:
    ts = p.DateTime.now().as_timestamp_seconds()
    signed = f"PARSEC-SIGN-ED25519.{alice.device_id.hyphenated}.{ts}"
    sig = alice.device.signing_key.sign_only_signature(signed.encode())
    token = f"{signed}.{base64.urlsafe_b64encode(sig).decode()}"
    r = alice.post(PING_BODY, headers=alice.headers(Authorization=f"Bearer {token}"))
    assert r.status_code == 200


@pytest.mark.parametrize("offset", [-400, -330, 310, 400, 3600])
def test_authenticated_token_out_of_ballpark(alice: AuthenticatedClient, offset: int) -> None:
    # offset = client - server; accepted iff -300 < server - client < 320
    ts = p.DateTime.now().as_timestamp_seconds() + offset
    r = alice.post(PING_BODY, headers=alice.headers(Authorization=f"Bearer {alice.token(ts)}"))
    assert_handshake_error(r, 498, "Token expired")


@pytest.mark.parametrize("offset", [-290, -60, 0, 60, 290])
def test_authenticated_token_in_ballpark(alice: AuthenticatedClient, offset: int) -> None:
    ts = p.DateTime.now().as_timestamp_seconds() + offset
    r = alice.post(PING_BODY, headers=alice.headers(Authorization=f"Bearer {alice.token(ts)}"))
    assert r.status_code == 200


def test_authenticated_signature_checked_before_ballpark(alice: AuthenticatedClient) -> None:
    ts = p.DateTime.now().as_timestamp_seconds() - 3600
    forged = auth_token(alice.device_id, p.SigningKey.generate(), ts)
    r = alice.post(PING_BODY, headers=alice.headers(Authorization=f"Bearer {forged}"))
    assert_handshake_error(r, 403)


def test_authenticated_auth_checked_before_body(alice: AuthenticatedClient) -> None:
    headers = alice.headers()
    del headers["Authorization"]
    assert_handshake_error(alice.post(b"garbage", headers=headers), 401)
    forged = auth_token(alice.device_id, p.SigningKey.generate())
    r = alice.post(b"garbage", headers=alice.headers(Authorization=f"Bearer {forged}"))
    assert_handshake_error(r, 403)


def test_content_type_checked_before_auth(alice: AuthenticatedClient) -> None:
    headers = alice.headers(**{"Content-Type": "application/json"})
    del headers["Authorization"]
    assert_handshake_error(alice.post(PING_BODY, headers=headers), 415)


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer not-hex", "Bearer 0123", "Basic {token}", "Bearer {token}x"],
)
def test_invited_malformed_authorization(org: Org, authorization: str | None) -> None:
    client = clients(org, "invited")
    assert isinstance(client, InvitedClient)
    headers = client.headers()
    if authorization is None:
        del headers["Authorization"]
    else:
        headers["Authorization"] = authorization.format(token=client.token.hex)
    assert_handshake_error(client.post(ping_req("invited"), headers=headers), 401)


def test_invited_unknown_token(org: Org) -> None:
    client = InvitedClient(org.http, org.organization_id, p.AccessToken.new())
    assert_handshake_error(client.post(ping_req("invited")), 403, "Bad authentication info")


def test_invited_token_of_other_org(http: httpx.Client, admin: AdminClient, org: Org) -> None:
    other = bootstrap_org(http, admin)
    client = InvitedClient(http, org.organization_id, invite_user(other.alice))
    assert_handshake_error(client.post(ping_req("invited")), 403)


def test_invited_cancelled_invitation(org: Org) -> None:
    token = invite_user(org.alice)
    client = InvitedClient(org.http, org.organization_id, token)
    assert client.post(ping_req("invited")).status_code == 200
    rep = org.alice.send(AC.invite_cancel.Req(token=token))
    assert isinstance(rep, AC.invite_cancel.RepOk), rep
    assert_handshake_error(
        client.post(ping_req("invited")), 410, "Invitation already used or deleted"
    )


def test_invited_completed_invitation(org: Org) -> None:
    token = invite_user(org.alice)
    client = InvitedClient(org.http, org.organization_id, token)
    rep = org.alice.send(AC.invite_complete.Req(token=token))
    assert isinstance(rep, AC.invite_complete.RepOk), rep
    assert_handshake_error(client.post(ping_req("invited")), 410)


def test_invited_uppercase_hex_token(org: Org) -> None:
    client = clients(org, "invited")
    assert isinstance(client, InvitedClient)
    r = client.post(
        ping_req("invited"),
        headers=client.headers(Authorization=f"Bearer {client.token.hex.upper()}"),
    )
    assert r.status_code == 200


def test_anonymous_ignores_authorization(org: Org) -> None:
    r = org.anonymous.post(
        ping_req("anonymous"), headers=org.anonymous.headers(Authorization="Bearer junk")
    )
    assert r.status_code == 200


# --- SSE handshake ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "accept", [None, "application/json", "text/event-stream; charset=utf-8", "*/*"]
)
def test_sse_bad_accept(alice: AuthenticatedClient, accept: str | None) -> None:
    headers = {"Api-Version": API_VERSION, "Authorization": f"Bearer {alice.token()}"}
    if accept is not None:
        headers["Accept"] = accept
    r = alice.http.get(alice.url("/events"), headers=headers)
    assert_handshake_error(r, 406, "Bad accept type")


def test_sse_missing_auth(alice: AuthenticatedClient) -> None:
    r = alice.http.get(
        alice.url("/events"), headers={"Api-Version": API_VERSION, "Accept": "text/event-stream"}
    )
    assert_handshake_error(r, 401)


def test_sse_bad_signature(alice: AuthenticatedClient) -> None:
    forged = auth_token(alice.device_id, p.SigningKey.generate())
    with alice.events(Authorization=f"Bearer {forged}") as stream:
        assert stream.response.status_code == 403


def test_sse_unknown_org(alice: AuthenticatedClient) -> None:
    alice.organization_id = new_org_id()
    with alice.events() as stream:
        assert stream.response.status_code == 404


def test_sse_token_out_of_ballpark(alice: AuthenticatedClient) -> None:
    old = p.DateTime.now().as_timestamp_seconds() - 3600
    with alice.events(Authorization=f"Bearer {alice.token(old)}") as stream:
        assert stream.response.status_code == 498


def test_sse_post_not_allowed(alice: AuthenticatedClient) -> None:
    r = alice.http.post(alice.url("/events"), headers=alice.headers(Accept="text/event-stream"))
    assert r.status_code == 405


# --- organization expired, user revoked / frozen ---------------------------------------------
# The official server caches successful authentications per device and drops the cache entry
# asynchronously (through PostgreSQL NOTIFY) on revocation/freeze/TOS change. The devices checked
# below therefore never authenticated before the change, so the outcome does not depend on that
# cache's timing.


def test_expired_organization(org: Org, alice: AuthenticatedClient) -> None:
    invited = clients(org, "invited")
    bob = alice.create_user("bob")
    org.admin.patch_org(org.organization_id, is_expired=True)
    assert_handshake_error(org.anonymous.post(ping_req("anonymous")), 460, "Organization expired")
    assert_handshake_error(bob.post(PING_BODY), 460, "Organization expired")
    assert_handshake_error(invited.post(ping_req("invited")), 460, "Organization expired")
    assert_handshake_error(bob.post(p.tos_cmds.latest.tos_get.Req().dump(), suffix="/tos"), 460)
    with bob.events() as stream:
        assert stream.response.status_code == 460
    r = org.http.get(
        f"/anonymous/{org.organization_id}",
        headers={"Api-Version": API_VERSION, "Content-Type": MSGPACK},
    )
    assert r.status_code == 460
    # and back
    org.admin.patch_org(org.organization_id, is_expired=False)
    assert bob.post(PING_BODY).status_code == 200
    assert org.anonymous.post(ping_req("anonymous")).status_code == 200
    assert invited.post(ping_req("invited")).status_code == 200


def test_expired_org_checked_before_device(org: Org) -> None:
    org.admin.patch_org(org.organization_id, is_expired=True)
    token = auth_token(p.DeviceID.new(), p.SigningKey.generate())
    r = org.alice.post(PING_BODY, headers=org.alice.headers(Authorization=f"Bearer {token}"))
    assert_handshake_error(r, 460)


def test_revoked_user(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    bob2 = bob.create_device()  # bob authenticates here, bob2 never does
    rep = alice.revoke(bob.user_id)
    assert isinstance(rep, AC.user_revoke.RepOk), rep
    assert_handshake_error(bob2.post(PING_BODY), 461, "User revoked")
    assert_handshake_error(bob2.post(p.tos_cmds.latest.tos_get.Req().dump(), suffix="/tos"), 461)
    with bob2.events() as stream:
        assert stream.response.status_code == 461
    # other users are unaffected
    assert alice.post(PING_BODY).status_code == 200


def test_revoked_user_checked_before_signature(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    alice.revoke(bob.user_id)
    forged = auth_token(bob.device_id, p.SigningKey.generate())
    r = bob.post(PING_BODY, headers=bob.headers(Authorization=f"Bearer {forged}"))
    assert_handshake_error(r, 461)


def test_frozen_user(org: Org, alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    org.admin.freeze(org.organization_id, bob.user_id, True)
    assert_handshake_error(bob.post(PING_BODY), 462, "User frozen")
    assert_handshake_error(bob.post(p.tos_cmds.latest.tos_get.Req().dump(), suffix="/tos"), 462)
    with bob.events() as stream:
        assert stream.response.status_code == 462
    assert alice.post(PING_BODY).status_code == 200
    org.admin.freeze(org.organization_id, bob.user_id, False)
    assert bob.post(PING_BODY).status_code == 200


def test_user_must_accept_tos(org: Org, alice: AuthenticatedClient) -> None:
    bob = alice.create_user("bob")
    org.admin.patch_org(org.organization_id, tos={"en_US": "https://example.com/tos"})
    assert_handshake_error(bob.post(PING_BODY), 463, "User must accept tos")
    with bob.events() as stream:
        assert stream.response.status_code == 463
    # the /tos route still works
    rep = bob.tos(p.tos_cmds.latest.tos_get.Req())
    assert isinstance(rep, p.tos_cmds.latest.tos_get.RepOk), rep
