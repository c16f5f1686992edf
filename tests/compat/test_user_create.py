"""authenticated user_create (protocol.md §4.4)."""

from __future__ import annotations

import dataclasses

import httpx
import parsec._parsec as p
import pytest
from client import (
    AC,
    BALLPARK_EARLY,
    BALLPARK_LATE,
    AdminClient,
    AuthenticatedClient,
    Org,
    UserCerts,
    bootstrap_org,
    build_user_certs,
    device_cert_with,
    human,
    now,
    user_cert_with,
    user_create_req,
)

UC = AC.user_create


def certs_by(author: AuthenticatedClient, **kwargs: object) -> UserCerts:
    kwargs.setdefault("name", "carol")
    return build_user_certs(
        author.organization_id,
        author.device,
        author.device.signing_key,
        **kwargs,  # type: ignore[arg-type]
    )


def test_user_create_ok(alice: AuthenticatedClient) -> None:
    certs = certs_by(alice, profile=p.UserProfile.STANDARD)
    rep = alice.send(user_create_req(certs))
    assert isinstance(rep, UC.RepOk), rep
    carol = AuthenticatedClient(alice.http, certs.device)
    assert carol.ping("hi").pong == "hi"
    got = alice.certificates()
    assert got.common_certificates[-2:] == [certs.user_certificate, certs.device_certificate]


@pytest.mark.parametrize(
    "profile", [p.UserProfile.ADMIN, p.UserProfile.STANDARD, p.UserProfile.OUTSIDER]
)
def test_user_create_each_profile(alice: AuthenticatedClient, profile: p.UserProfile) -> None:
    rep = alice.send(user_create_req(certs_by(alice, profile=profile)))
    assert isinstance(rep, UC.RepOk), rep


def test_user_create_outsider_when_not_allowed_by_org(org: Org, alice: AuthenticatedClient) -> None:
    # user_profile_outsider_allowed is advisory: not enforced by the server
    org.admin.patch_org(org.organization_id, user_profile_outsider_allowed=False)
    rep = alice.send(user_create_req(certs_by(alice, profile=p.UserProfile.OUTSIDER)))
    assert isinstance(rep, UC.RepOk), rep


@pytest.mark.parametrize("profile", [p.UserProfile.STANDARD, p.UserProfile.OUTSIDER])
def test_user_create_author_not_allowed(alice: AuthenticatedClient, profile: p.UserProfile) -> None:
    someone = alice.create_user("someone", profile)
    rep = someone.send(user_create_req(certs_by(someone)))
    assert isinstance(rep, UC.RepAuthorNotAllowed), rep


def test_user_create_author_not_allowed_checked_before_certificates(
    bob: AuthenticatedClient,
) -> None:
    certs = dataclasses.replace(certs_by(bob), user_certificate=b"garbage")
    rep = bob.send(user_create_req(certs))
    assert isinstance(rep, UC.RepAuthorNotAllowed), rep


def test_user_create_by_promoted_admin(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    assert isinstance(alice.update_profile(bob.user_id, p.UserProfile.ADMIN), AC.user_update.RepOk)
    rep = bob.send(user_create_req(certs_by(bob)))
    assert isinstance(rep, UC.RepOk), rep


def test_user_create_by_demoted_admin(alice: AuthenticatedClient) -> None:
    admin2 = alice.create_user("admin2", p.UserProfile.ADMIN)
    assert isinstance(admin2.send(user_create_req(certs_by(admin2, name="x"))), UC.RepOk)
    assert isinstance(
        alice.update_profile(admin2.user_id, p.UserProfile.STANDARD), AC.user_update.RepOk
    )
    rep = admin2.send(user_create_req(certs_by(admin2, name="y")))
    assert isinstance(rep, UC.RepAuthorNotAllowed), rep


def test_user_create_user_already_exists(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    rep = alice.send(user_create_req(certs_by(alice, user_id=bob.user_id)))
    assert isinstance(rep, UC.RepUserAlreadyExists), rep


def test_user_create_device_already_exists(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    rep = alice.send(user_create_req(certs_by(alice, device_id=bob.device_id)))
    assert isinstance(rep, UC.RepUserAlreadyExists), rep


def test_user_create_human_handle_already_taken(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    rep = alice.send(user_create_req(certs_by(alice, human_handle=human("bob"))))
    assert isinstance(rep, UC.RepHumanHandleAlreadyTaken), rep
    # the email is what matters, not the label
    hh = p.HumanHandle(p.EmailAddress("bob@example.com"), "Another Bob")
    rep = alice.send(user_create_req(certs_by(alice, human_handle=hh)))
    assert isinstance(rep, UC.RepHumanHandleAlreadyTaken), rep


def test_user_create_email_of_revoked_user_is_reusable(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    assert isinstance(alice.revoke(bob.user_id), AC.user_revoke.RepOk)
    rep = alice.send(user_create_req(certs_by(alice, human_handle=human("bob"))))
    assert isinstance(rep, UC.RepOk), rep


def test_user_create_active_users_limit_reached(org: Org, alice: AuthenticatedClient) -> None:
    org.admin.patch_org(org.organization_id, active_users_limit=2)
    bob = alice.create_user("bob")
    rep = alice.send(user_create_req(certs_by(alice)))
    assert isinstance(rep, UC.RepActiveUsersLimitReached), rep
    # revoked users do not count
    assert isinstance(alice.revoke(bob.user_id), AC.user_revoke.RepOk)
    rep = alice.send(user_create_req(certs_by(alice)))
    assert isinstance(rep, UC.RepOk), rep


def test_user_create_active_users_limit_set_at_creation(
    http: httpx.Client, admin: AdminClient
) -> None:
    org = bootstrap_org(http, admin, active_users_limit=1)
    rep = org.alice.send(user_create_req(certs_by(org.alice)))
    assert isinstance(rep, UC.RepActiveUsersLimitReached), rep


def test_user_create_timestamp_out_of_ballpark(alice: AuthenticatedClient) -> None:
    ts = now().subtract(seconds=3600)
    rep = alice.send(user_create_req(certs_by(alice, timestamp=ts)))
    assert isinstance(rep, UC.RepTimestampOutOfBallpark), rep
    assert rep.ballpark_client_early_offset == BALLPARK_EARLY
    assert rep.ballpark_client_late_offset == BALLPARK_LATE
    assert rep.client_timestamp == ts
    ts = now().add(seconds=3600)
    rep = alice.send(user_create_req(certs_by(alice, timestamp=ts)))
    assert isinstance(rep, UC.RepTimestampOutOfBallpark), rep


def test_user_create_require_greater_timestamp(alice: AuthenticatedClient) -> None:
    earlier = now()
    later = earlier.add(seconds=1)
    rep = alice.send(user_create_req(certs_by(alice, name="bob", timestamp=later)))
    assert isinstance(rep, UC.RepOk), rep
    rep = alice.send(user_create_req(certs_by(alice, name="carol", timestamp=earlier)))
    assert isinstance(rep, UC.RepRequireGreaterTimestamp), rep
    assert rep.strictly_greater_than == later
    # equal is not enough
    rep = alice.send(user_create_req(certs_by(alice, name="carol", timestamp=later)))
    assert isinstance(rep, UC.RepRequireGreaterTimestamp), rep


def _mutations(author: AuthenticatedClient) -> dict[str, UserCerts]:
    key = author.device.signing_key
    other = p.SigningKey.generate()
    c = certs_by(author)

    def repl(**fields: bytes) -> UserCerts:
        return dataclasses.replace(c, **fields)

    u = lambda **ch: user_cert_with(c.user_certificate, **ch)  # noqa: E731
    ru = lambda **ch: user_cert_with(c.redacted_user_certificate, **ch)  # noqa: E731
    d = lambda **ch: device_cert_with(c.device_certificate, **ch)  # noqa: E731
    rd = lambda **ch: device_cert_with(c.redacted_device_certificate, **ch)  # noqa: E731
    return {
        "user-signed-by-other-key": repl(user_certificate=u().dump_and_sign(other)),
        "device-signed-by-other-key": repl(device_certificate=d().dump_and_sign(other)),
        "redacted-user-signed-by-other-key": repl(
            redacted_user_certificate=ru().dump_and_sign(other)
        ),
        "redacted-device-signed-by-other-key": repl(
            redacted_device_certificate=rd().dump_and_sign(other)
        ),
        "user-author-is-root": repl(user_certificate=u(author=None).dump_and_sign(key)),
        "user-author-other-device": repl(
            user_certificate=u(author=p.DeviceID.new()).dump_and_sign(key)
        ),
        "device-author-other-device": repl(
            device_certificate=d(author=p.DeviceID.new()).dump_and_sign(key)
        ),
        "device-timestamp-differs": certs_by(
            author, device_timestamp=c.timestamp.add(microseconds=1)
        ),
        "device-of-other-user": repl(
            device_certificate=d(user_id=p.UserID.new()).dump_and_sign(key),
            redacted_device_certificate=rd(user_id=p.UserID.new()).dump_and_sign(key),
        ),
        "redacted-user-not-redacted": repl(redacted_user_certificate=c.user_certificate),
        "redacted-device-not-redacted": repl(redacted_device_certificate=c.device_certificate),
        "redacted-user-differs": repl(
            redacted_user_certificate=ru(profile=p.UserProfile.ADMIN).dump_and_sign(key)
        ),
        "redacted-device-differs": repl(
            redacted_device_certificate=rd(device_id=p.DeviceID.new()).dump_and_sign(key)
        ),
        "user-and-device-swapped": repl(
            user_certificate=c.device_certificate, device_certificate=c.user_certificate
        ),
        "user-garbage": repl(user_certificate=b"\x00" * 80),
        "device-empty": repl(device_certificate=b""),
    }


CASES = [
    "user-signed-by-other-key",
    "device-signed-by-other-key",
    "redacted-user-signed-by-other-key",
    "redacted-device-signed-by-other-key",
    "user-author-is-root",
    "user-author-other-device",
    "device-author-other-device",
    "device-timestamp-differs",
    "device-of-other-user",
    "redacted-user-not-redacted",
    "redacted-device-not-redacted",
    "redacted-user-differs",
    "redacted-device-differs",
    "user-and-device-swapped",
    "user-garbage",
    "device-empty",
]


@pytest.mark.parametrize("case", CASES)
def test_user_create_invalid_certificate(alice: AuthenticatedClient, case: str) -> None:
    certs = _mutations(alice)[case]
    rep = alice.send(user_create_req(certs))
    assert isinstance(rep, UC.RepInvalidCertificate), rep
    # nothing was created
    assert len(alice.certificates().common_certificates) == 2


def test_user_create_invalid_certificate_before_ballpark(alice: AuthenticatedClient) -> None:
    c = certs_by(alice, timestamp=now().subtract(seconds=3600))
    certs = dataclasses.replace(
        c,
        user_certificate=user_cert_with(c.user_certificate).dump_and_sign(p.SigningKey.generate()),
    )
    rep = alice.send(user_create_req(certs))
    assert isinstance(rep, UC.RepInvalidCertificate), rep
