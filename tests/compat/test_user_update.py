"""authenticated user_update (protocol.md §4.4)."""

from __future__ import annotations

import parsec._parsec as p
import pytest
from client import AC, AuthenticatedClient, build_user_certs, now, user_create_req

UU = AC.user_update
PROFILES = [p.UserProfile.ADMIN, p.UserProfile.STANDARD, p.UserProfile.OUTSIDER]


@pytest.mark.parametrize("old", PROFILES)
@pytest.mark.parametrize("new", PROFILES)
def test_user_update_profiles(
    alice: AuthenticatedClient, old: p.UserProfile, new: p.UserProfile
) -> None:
    bob = alice.create_user("bob", old)
    ts = now()
    rep = alice.update_profile(bob.user_id, new, ts)
    if old == new:
        assert isinstance(rep, UU.RepUserNoChanges), rep
        return
    assert isinstance(rep, UU.RepOk), rep
    last = alice.certificates().common_certificates[-1]
    cert = p.UserUpdateCertificate.verify_and_load(last, alice.device.verify_key, alice.device_id)
    assert (cert.user_id, cert.new_profile, cert.timestamp) == (bob.user_id, new, ts)


def test_user_update_promoted_admin_can_act(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    assert isinstance(
        bob.send(AC.list_frozen_users.Req()), AC.list_frozen_users.RepAuthorNotAllowed
    )
    assert isinstance(alice.update_profile(bob.user_id, p.UserProfile.ADMIN), UU.RepOk)
    assert isinstance(bob.send(AC.list_frozen_users.Req()), AC.list_frozen_users.RepOk)


def test_user_update_author_not_allowed(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    carol = alice.create_user("carol")
    rep = bob.update_profile(carol.user_id, p.UserProfile.ADMIN)
    assert isinstance(rep, UU.RepAuthorNotAllowed), rep
    rep = bob.update_profile(bob.user_id, p.UserProfile.ADMIN)
    assert isinstance(rep, UU.RepAuthorNotAllowed), rep


def test_user_update_user_not_found(alice: AuthenticatedClient) -> None:
    rep = alice.update_profile(p.UserID.new(), p.UserProfile.STANDARD)
    assert isinstance(rep, UU.RepUserNotFound), rep


def test_user_update_user_revoked(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    assert isinstance(alice.revoke(bob.user_id), AC.user_revoke.RepOk)
    rep = alice.update_profile(bob.user_id, p.UserProfile.ADMIN)
    assert isinstance(rep, UU.RepUserRevoked), rep


def test_user_update_self(alice: AuthenticatedClient) -> None:
    rep = alice.update_profile(alice.user_id, p.UserProfile.STANDARD)
    assert isinstance(rep, UU.RepInvalidCertificate), rep


def test_user_update_invalid_certificate(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    good = p.UserUpdateCertificate(
        author=alice.device_id,
        timestamp=now(),
        user_id=bob.user_id,
        new_profile=p.UserProfile.ADMIN,
    )
    other_author = p.UserUpdateCertificate(
        author=p.DeviceID.new(),
        timestamp=now(),
        user_id=bob.user_id,
        new_profile=p.UserProfile.ADMIN,
    )
    for raw in (
        good.dump_and_sign(p.SigningKey.generate()),
        other_author.dump_and_sign(alice.device.signing_key),
        b"",
        p.RevokedUserCertificate(
            author=alice.device_id, timestamp=now(), user_id=bob.user_id
        ).dump_and_sign(alice.device.signing_key),
    ):
        rep = alice.send(UU.Req(user_update_certificate=raw))
        assert isinstance(rep, UU.RepInvalidCertificate), rep


@pytest.mark.parametrize("offset", [-3600, 3600])
def test_user_update_timestamp_out_of_ballpark(
    alice: AuthenticatedClient, bob: AuthenticatedClient, offset: int
) -> None:
    ts = now().add(seconds=offset)
    rep = alice.update_profile(bob.user_id, p.UserProfile.ADMIN, ts)
    assert isinstance(rep, UU.RepTimestampOutOfBallpark), rep
    assert rep.client_timestamp == ts


def test_user_update_require_greater_timestamp(alice: AuthenticatedClient) -> None:
    earlier = now()
    later = earlier.add(seconds=1)
    certs = build_user_certs(
        alice.organization_id, alice.device, alice.device.signing_key, name="bob", timestamp=later
    )
    assert isinstance(alice.send(user_create_req(certs)), AC.user_create.RepOk)
    rep = alice.update_profile(certs.device.user_id, p.UserProfile.ADMIN, earlier)
    assert isinstance(rep, UU.RepRequireGreaterTimestamp), rep
    assert rep.strictly_greater_than == later


def test_list_frozen_users_author_not_allowed(
    alice: AuthenticatedClient, bob: AuthenticatedClient, mallory: AuthenticatedClient
) -> None:
    for client in (bob, mallory):
        rep = client.send(AC.list_frozen_users.Req())
        assert isinstance(rep, AC.list_frozen_users.RepAuthorNotAllowed), rep
    rep = alice.send(AC.list_frozen_users.Req())
    assert isinstance(rep, AC.list_frozen_users.RepOk), rep
    assert rep.frozen_users == []
