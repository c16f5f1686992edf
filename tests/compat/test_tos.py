"""Terms of service: tos_get / tos_accept on /authenticated/<org>/tos and the 463 gate."""

from __future__ import annotations

import httpx
import parsec._parsec as p
from client import AC, AdminClient, AuthenticatedClient, Org, bootstrap_org

TOS = p.tos_cmds.latest
URLS = {"en_US": "https://example.com/tos_en", "fr_FR": "https://example.com/tos_fr"}


def test_tos_get_no_tos(alice: AuthenticatedClient) -> None:
    rep = alice.tos(TOS.tos_get.Req())
    assert isinstance(rep, TOS.tos_get.RepNoTos), rep
    rep = alice.tos(TOS.tos_accept.Req(tos_updated_on=p.DateTime.now()))
    assert isinstance(rep, TOS.tos_accept.RepNoTos), rep


def test_tos_accept_flow(org: Org, alice: AuthenticatedClient) -> None:
    bob = alice.create_user("bob")  # never authenticated before the TOS exist
    org.admin.patch_org(org.organization_id, tos=URLS)
    updated_on = p.DateTime.from_rfc3339(
        org.admin.get_org(org.organization_id)["tos"]["updated_on"]
    )
    assert bob.post(AC.ping.Req(ping="x").dump()).status_code == 463
    rep = bob.tos(TOS.tos_get.Req())
    assert isinstance(rep, TOS.tos_get.RepOk), rep
    assert rep.per_locale_urls == URLS
    assert rep.updated_on == updated_on
    rep = bob.tos(TOS.tos_accept.Req(tos_updated_on=updated_on.subtract(microseconds=1)))
    assert isinstance(rep, TOS.tos_accept.RepTosMismatch), rep
    assert bob.post(AC.ping.Req(ping="x").dump()).status_code == 463
    rep = bob.tos(TOS.tos_accept.Req(tos_updated_on=updated_on))
    assert isinstance(rep, TOS.tos_accept.RepOk), rep
    assert bob.ping("accepted").pong == "accepted"
    # accepting again is harmless
    assert isinstance(bob.tos(TOS.tos_accept.Req(tos_updated_on=updated_on)), TOS.tos_accept.RepOk)


def test_tos_set_at_org_creation(http: httpx.Client, admin: AdminClient) -> None:
    org = bootstrap_org(http, admin, tos=URLS)
    alice = org.alice
    assert alice.post(AC.ping.Req(ping="x").dump()).status_code == 463
    rep = alice.tos(TOS.tos_get.Req())
    assert isinstance(rep, TOS.tos_get.RepOk), rep
    assert isinstance(
        alice.tos(TOS.tos_accept.Req(tos_updated_on=rep.updated_on)), TOS.tos_accept.RepOk
    )
    assert alice.ping().pong == "hello"


def test_tos_removed(org: Org, alice: AuthenticatedClient) -> None:
    bob = alice.create_user("bob")
    org.admin.patch_org(org.organization_id, tos=URLS)
    assert bob.post(AC.ping.Req(ping="x").dump()).status_code == 463
    org.admin.patch_org(org.organization_id, tos=None)
    assert isinstance(bob.tos(TOS.tos_get.Req()), TOS.tos_get.RepNoTos)
    assert bob.ping().pong == "hello"


def test_tos_route_handshake(alice: AuthenticatedClient) -> None:
    # same handshake as the authenticated route
    headers = alice.headers()
    del headers["Authorization"]
    r = alice.post(TOS.tos_get.Req().dump(), headers=headers, suffix="/tos")
    assert r.status_code == 401
    r = alice.post(
        TOS.tos_get.Req().dump(), headers=alice.headers(**{"Api-Version": "4.0"}), suffix="/tos"
    )
    assert r.status_code == 422
    r = alice.post(b"garbage", suffix="/tos")
    assert r.status_code == 415
