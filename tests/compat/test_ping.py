"""ping in every family (the reference only has it with --debug) and organization_info."""

from __future__ import annotations

import parsec._parsec as p
import pytest
from client import AC, IC, AuthenticatedClient, InvitedClient, Org, now


# Not longer: the reference forwards the PINGED event through PostgreSQL NOTIFY (8000-byte payload
# limit) and answers 500 for a ~10 kB ping.
@pytest.mark.parametrize("value", ["hello", "", "é" * 100, "x" * 1000])
def test_authenticated_ping(alice: AuthenticatedClient, value: str) -> None:
    rep = alice.ping(value)
    assert isinstance(rep, AC.ping.RepOk), rep
    assert rep.pong == value


def test_authenticated_ping_any_profile(
    bob: AuthenticatedClient, mallory: AuthenticatedClient
) -> None:
    assert bob.ping("b").pong == "b"
    assert mallory.ping("m").pong == "m"


def test_anonymous_ping(org: Org) -> None:
    assert org.anonymous.ping("anon").pong == "anon"


def test_invited_ping(org: Org, alice: AuthenticatedClient) -> None:
    rep = alice.send(
        AC.invite_new_user.Req(claimer_email=p.EmailAddress("zack@example.com"), send_email=False)
    )
    assert isinstance(rep, AC.invite_new_user.RepOk), rep
    invited = InvitedClient(org.http, org.organization_id, rep.token)
    rep = invited.ping("inv")
    assert isinstance(rep, IC.ping.RepOk), rep
    assert rep.pong == "inv"


def test_organization_info(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    rep = alice.send(AC.organization_info.Req())
    assert isinstance(rep, AC.organization_info.RepOk), rep
    assert (rep.total_metadata_bytes, rep.total_block_bytes) == (0, 0)
    realm = alice.new_realm()
    for size in (10, 5):
        rep = alice.send(
            AC.vlob_create.Req(
                realm_id=realm,
                vlob_id=p.VlobID.new(),
                key_index=1,
                timestamp=now(),
                blob=b"m" * size,
            )
        )
        assert isinstance(rep, AC.vlob_create.RepOk), rep
    rep = alice.send(
        AC.block_create.Req(block_id=p.BlockID.new(), realm_id=realm, key_index=1, block=b"b" * 7)
    )
    assert isinstance(rep, AC.block_create.RepOk), rep
    # any member of the organization sees the totals
    rep = bob.send(AC.organization_info.Req())
    assert isinstance(rep, AC.organization_info.RepOk), rep
    assert (rep.total_metadata_bytes, rep.total_block_bytes) == (15, 7)
