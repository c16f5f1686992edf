"""authenticated user_revoke (protocol.md §4.4)."""

from __future__ import annotations

import parsec._parsec as p
import pytest
from client import AC, AuthenticatedClient, build_user_certs, now, user_create_req

UR = AC.user_revoke


def test_user_revoke_ok(alice: AuthenticatedClient) -> None:
    bob = alice.create_user("bob")
    ts = now()
    rep = alice.revoke(bob.user_id, ts)
    assert isinstance(rep, UR.RepOk), rep
    assert bob.post(AC.ping.Req(ping="x").dump()).status_code == 461
    last = alice.certificates().common_certificates[-1]
    revoked = p.RevokedUserCertificate.verify_and_load(
        last, alice.device.verify_key, alice.device_id
    )
    assert (revoked.user_id, revoked.timestamp, revoked.author) == (
        bob.user_id,
        ts,
        alice.device_id,
    )


def test_user_revoke_admin(alice: AuthenticatedClient) -> None:
    admin2 = alice.create_user("admin2", p.UserProfile.ADMIN)
    assert isinstance(admin2.revoke(alice.user_id), UR.RepOk)
    assert alice.post(AC.ping.Req(ping="x").dump()).status_code == 461


@pytest.mark.parametrize("profile", [p.UserProfile.STANDARD, p.UserProfile.OUTSIDER])
def test_user_revoke_author_not_allowed(alice: AuthenticatedClient, profile: p.UserProfile) -> None:
    someone = alice.create_user("someone", profile)
    victim = alice.create_user("victim")
    rep = someone.revoke(victim.user_id)
    assert isinstance(rep, UR.RepAuthorNotAllowed), rep
    rep = someone.revoke(alice.user_id)
    assert isinstance(rep, UR.RepAuthorNotAllowed), rep


def test_user_revoke_user_not_found(alice: AuthenticatedClient) -> None:
    rep = alice.revoke(p.UserID.new())
    assert isinstance(rep, UR.RepUserNotFound), rep


def test_user_revoke_already_revoked(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    ts = now()
    assert isinstance(alice.revoke(bob.user_id, ts), UR.RepOk)
    rep = alice.revoke(bob.user_id)
    assert isinstance(rep, UR.RepUserAlreadyRevoked), rep
    assert rep.last_common_certificate_timestamp == ts


def test_user_revoke_already_revoked_reports_common_topic(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    assert isinstance(alice.revoke(bob.user_id), UR.RepOk)
    carol_ts = now()
    certs = build_user_certs(
        alice.organization_id,
        alice.device,
        alice.device.signing_key,
        name="carol",
        timestamp=carol_ts,
    )
    assert isinstance(alice.send(user_create_req(certs)), AC.user_create.RepOk)
    rep = alice.revoke(bob.user_id)
    assert isinstance(rep, UR.RepUserAlreadyRevoked), rep
    assert rep.last_common_certificate_timestamp == carol_ts


def test_user_revoke_self(alice: AuthenticatedClient) -> None:
    rep = alice.revoke(alice.user_id)
    assert isinstance(rep, UR.RepInvalidCertificate), rep


def test_user_revoke_invalid_certificate(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    cert = p.RevokedUserCertificate(author=alice.device_id, timestamp=now(), user_id=bob.user_id)
    for raw in (
        cert.dump_and_sign(p.SigningKey.generate()),
        p.RevokedUserCertificate(
            author=p.DeviceID.new(), timestamp=now(), user_id=bob.user_id
        ).dump_and_sign(alice.device.signing_key),
        b"garbage",
        # a certificate of another type
        p.UserUpdateCertificate(
            author=alice.device_id,
            timestamp=now(),
            user_id=bob.user_id,
            new_profile=p.UserProfile.ADMIN,
        ).dump_and_sign(alice.device.signing_key),
    ):
        rep = alice.send(UR.Req(revoked_user_certificate=raw))
        assert isinstance(rep, UR.RepInvalidCertificate), rep
    assert bob.ping().pong == "hello"


@pytest.mark.parametrize("offset", [-3600, 3600])
def test_user_revoke_timestamp_out_of_ballpark(
    alice: AuthenticatedClient, bob: AuthenticatedClient, offset: int
) -> None:
    ts = now().add(seconds=offset)
    rep = alice.revoke(bob.user_id, ts)
    assert isinstance(rep, UR.RepTimestampOutOfBallpark), rep
    assert rep.client_timestamp == ts


def test_user_revoke_require_greater_timestamp(alice: AuthenticatedClient) -> None:
    earlier = now()
    bob = alice.create_user("bob")  # common topic moves past `earlier`
    bob_ts = p.UserCertificate.unsecure_load(alice.certificates().common_certificates[-2]).timestamp
    rep = alice.revoke(bob.user_id, earlier)
    assert isinstance(rep, UR.RepRequireGreaterTimestamp), rep
    assert rep.strictly_greater_than == bob_ts


def test_user_revoke_require_greater_than_realm_topic(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    # the revoked user's realms count too
    earlier = now()
    realm = alice.new_realm()
    share_ts = now()
    assert isinstance(
        alice.share(realm, bob.user_id, p.RealmRole.READER, timestamp=share_ts),
        AC.realm_share.RepOk,
    )
    rep = alice.revoke(bob.user_id, earlier)
    assert isinstance(rep, UR.RepRequireGreaterTimestamp), rep
    assert rep.strictly_greater_than == share_ts
