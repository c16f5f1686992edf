"""Terms of service beyond test_tos.py: new terms need a new acceptance, acceptance is per user (all
his devices), the /tos route takes only TOS commands, event streams end when the terms change."""

from __future__ import annotations

import parsec._parsec as p
import pytest
from client import AC, AuthenticatedClient, Org

TOS = p.tos_cmds.latest
PING = AC.ping.Req(ping="x").dump()


def current(org: Org) -> p.DateTime:
    return p.DateTime.from_rfc3339(org.admin.get_org(org.organization_id)["tos"]["updated_on"])


def accept(who: AuthenticatedClient) -> p.DateTime:
    rep = who.tos(TOS.tos_get.Req())
    assert isinstance(rep, TOS.tos_get.RepOk), rep
    assert isinstance(
        who.tos(TOS.tos_accept.Req(tos_updated_on=rep.updated_on)), TOS.tos_accept.RepOk
    )
    return rep.updated_on


def test_new_terms_need_a_new_acceptance(org: Org, alice: AuthenticatedClient) -> None:
    org.admin.patch_org(org.organization_id, tos={"en_US": "https://example.com/v1"})
    first = accept(alice)
    assert alice.post(PING).status_code == 200
    org.admin.patch_org(org.organization_id, tos={"en_US": "https://example.com/v2"})
    assert alice.post(PING).status_code == 463
    rep = alice.tos(TOS.tos_get.Req())
    assert rep.per_locale_urls == {"en_US": "https://example.com/v2"}
    assert rep.updated_on > first and rep.updated_on == current(org)
    # The old date is no longer the current terms.
    assert isinstance(
        alice.tos(TOS.tos_accept.Req(tos_updated_on=first)), TOS.tos_accept.RepTosMismatch
    )
    assert alice.post(PING).status_code == 463
    assert accept(alice) == rep.updated_on
    assert alice.post(PING).status_code == 200


def test_acceptance_is_per_user(
    org: Org, alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    bob2 = bob.create_device("bob-dev2")
    org.admin.patch_org(org.organization_id, tos={"en_US": "https://example.com/tos"})
    for who in (alice, bob, bob2):
        assert who.post(PING).status_code == 463
    accept(bob)
    assert bob.post(PING).status_code == 200
    assert bob2.post(PING).status_code == 200  # the same user
    assert alice.post(PING).status_code == 463
    # A user created afterwards has not accepted anything yet.
    accept(alice)
    carol = alice.create_user("carol")
    assert carol.post(PING).status_code == 463
    accept(carol)
    assert carol.post(PING).status_code == 200


@pytest.mark.parametrize("route", ["tos", "authenticated"])
def test_commands_stay_on_their_route(alice: AuthenticatedClient, route: str) -> None:
    if route == "tos":  # an authenticated command sent to /tos
        r = alice.post(AC.invite_list.Req().dump(), suffix="/tos")
    else:  # a TOS command sent to the authenticated route
        r = alice.post(TOS.tos_get.Req().dump())
    assert r.status_code == 415


def test_revoked_user_on_tos_route(
    org: Org, alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    org.admin.patch_org(org.organization_id, tos={"en_US": "https://example.com/tos"})
    accept(alice)
    assert isinstance(alice.revoke(bob.user_id), AC.user_revoke.RepOk)
    assert bob.post(TOS.tos_get.Req().dump(), suffix="/tos").status_code == 461


def test_event_stream_ends_when_terms_change(org: Org, alice: AuthenticatedClient) -> None:
    with alice.events() as stream:
        stream.next_data()  # organization config
        org.admin.patch_org(org.organization_id, tos={"en_US": "https://example.com/tos"})
        with pytest.raises(EOFError):
            while True:
                ev = stream.next_data()
                assert ev.rep().unit is not None  # nothing else is expected before the end
    with alice.events() as stream:
        assert stream.response.status_code == 463
