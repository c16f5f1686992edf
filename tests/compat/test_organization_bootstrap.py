"""anonymous organization_bootstrap (protocol.md §4.3) and the anonymous family basics."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import httpx
import parsec._parsec as p
import pytest
from client import (
    AC,
    ANC,
    BALLPARK_EARLY,
    BALLPARK_LATE,
    AdminClient,
    AnonymousClient,
    AuthenticatedClient,
    UserCerts,
    build_user_certs,
    device_cert_with,
    now,
    user_cert_with,
)

BOOT = ANC.organization_bootstrap


@dataclasses.dataclass
class Fresh:
    """A created, not yet bootstrapped organization and the material to bootstrap it."""

    http: httpx.Client
    admin: AdminClient
    org_id: str
    token: p.AccessToken | None
    root_key: p.SigningKey

    @property
    def anonymous(self) -> AnonymousClient:
        return AnonymousClient(self.http, self.org_id)

    def certs(self, **kwargs: object) -> UserCerts:
        kwargs.setdefault("profile", p.UserProfile.ADMIN)
        return build_user_certs(self.org_id, None, self.root_key, **kwargs)  # type: ignore[arg-type]

    def bootstrap(
        self,
        certs: UserCerts | None = None,
        token: object = "default",
        root_verify_key: p.VerifyKey | None = None,
    ) -> object:
        certs = certs or self.certs()
        req = BOOT.Req(
            bootstrap_token=self.token if token == "default" else token,
            root_verify_key=root_verify_key or self.root_key.verify_key,
            user_certificate=certs.user_certificate,
            device_certificate=certs.device_certificate,
            redacted_user_certificate=certs.redacted_user_certificate,
            redacted_device_certificate=certs.redacted_device_certificate,
            sequester_authority_certificate=None,
        )
        return self.anonymous.send(req)


@pytest.fixture
def fresh(http: httpx.Client, admin: AdminClient) -> Fresh:
    org_id, token = admin.create_org()
    assert token is not None
    return Fresh(http, admin, org_id, token, p.SigningKey.generate())


def test_bootstrap_ok(fresh: Fresh) -> None:
    certs = fresh.certs()
    rep = fresh.bootstrap(certs)
    assert isinstance(rep, BOOT.RepOk), rep
    assert fresh.admin.get_org(fresh.org_id)["is_bootstrapped"] is True
    # the new device can talk, and finds its certificates, exactly as sent
    alice = AuthenticatedClient(fresh.http, certs.device)
    got = alice.certificates()
    assert got.common_certificates == [certs.user_certificate, certs.device_certificate]
    assert got.sequester_certificates == []
    assert got.shamir_recovery_certificates == []
    assert got.realm_certificates == {}
    rep = alice.send(AC.organization_info.Req())
    assert isinstance(rep, AC.organization_info.RepOk), rep
    assert (rep.total_block_bytes, rep.total_metadata_bytes) == (0, 0)


def test_bootstrap_invalid_token(fresh: Fresh) -> None:
    rep = fresh.bootstrap(token=p.AccessToken.new())
    assert isinstance(rep, BOOT.RepInvalidBootstrapToken), rep
    rep = fresh.bootstrap(token=None)
    assert isinstance(rep, BOOT.RepInvalidBootstrapToken), rep
    assert fresh.admin.get_org(fresh.org_id)["is_bootstrapped"] is False
    # still bootstrappable with the right token
    assert isinstance(fresh.bootstrap(), BOOT.RepOk)


def test_bootstrap_already_bootstrapped(fresh: Fresh) -> None:
    first = fresh.certs()
    assert isinstance(fresh.bootstrap(first), BOOT.RepOk)
    rep = fresh.bootstrap(fresh.certs(name="eve"))
    assert isinstance(rep, BOOT.RepOrganizationAlreadyBootstrapped), rep
    rep = fresh.bootstrap(fresh.certs(name="eve"), token=p.AccessToken.new())
    assert isinstance(rep, BOOT.RepOrganizationAlreadyBootstrapped), rep
    # another root key does not help either
    other_root = p.SigningKey.generate()
    certs = build_user_certs(
        fresh.org_id, None, other_root, name="eve", profile=p.UserProfile.ADMIN
    )
    rep = fresh.bootstrap(certs, root_verify_key=other_root.verify_key)
    assert isinstance(rep, BOOT.RepOrganizationAlreadyBootstrapped), rep
    # PostgreSQL reference: already bootstrapped; in-memory reference: invalid token
    rep = fresh.bootstrap(fresh.certs(name="eve"), token=None)
    assert isinstance(
        rep, BOOT.RepOrganizationAlreadyBootstrapped | BOOT.RepInvalidBootstrapToken
    ), rep
    # the first user is still the only one
    got = AuthenticatedClient(fresh.http, first.device).certificates()
    assert len(got.common_certificates) == 2


def test_bootstrap_expired_organization(fresh: Fresh) -> None:
    fresh.admin.patch_org(fresh.org_id, is_expired=True)
    certs = fresh.certs()
    req = BOOT.Req(
        bootstrap_token=fresh.token,
        root_verify_key=fresh.root_key.verify_key,
        user_certificate=certs.user_certificate,
        device_certificate=certs.device_certificate,
        redacted_user_certificate=certs.redacted_user_certificate,
        redacted_device_certificate=certs.redacted_device_certificate,
        sequester_authority_certificate=None,
    )
    r = fresh.anonymous.post(req.dump())
    assert r.status_code == 460


@pytest.mark.parametrize("offset", [-3600, -330, 310, 3600])
def test_bootstrap_timestamp_out_of_ballpark(fresh: Fresh, offset: int) -> None:
    ts = now().add(seconds=offset)
    before = now()
    rep = fresh.bootstrap(fresh.certs(timestamp=ts))
    after = now()
    assert isinstance(rep, BOOT.RepTimestampOutOfBallpark), rep
    assert rep.ballpark_client_early_offset == BALLPARK_EARLY
    assert rep.ballpark_client_late_offset == BALLPARK_LATE
    assert rep.client_timestamp == ts
    assert before <= rep.server_timestamp <= after
    assert fresh.admin.get_org(fresh.org_id)["is_bootstrapped"] is False


def test_bootstrap_timestamp_in_ballpark(fresh: Fresh) -> None:
    rep = fresh.bootstrap(fresh.certs(timestamp=now().subtract(seconds=250)))
    assert isinstance(rep, BOOT.RepOk), rep


# --- invalid certificates -----------------------------------------------------------------------


def _user(certs: UserCerts, **changes: object) -> p.UserCertificate:
    return user_cert_with(certs.user_certificate, **changes)


def _device(certs: UserCerts, **changes: object) -> p.DeviceCertificate:
    return device_cert_with(certs.device_certificate, **changes)


def _wrong_key() -> p.SigningKey:
    return p.SigningKey.generate()


Mutator = Callable[[Fresh, UserCerts], UserCerts]


def _replace(certs: UserCerts, **fields: bytes) -> UserCerts:
    return dataclasses.replace(certs, **fields)


INVALID: dict[str, Mutator] = {
    "user-signed-by-other-key": lambda f, c: _replace(
        c, user_certificate=_user(c).dump_and_sign(_wrong_key())
    ),
    "device-signed-by-other-key": lambda f, c: _replace(
        c, device_certificate=_device(c).dump_and_sign(_wrong_key())
    ),
    "redacted-user-signed-by-other-key": lambda f, c: _replace(
        c, redacted_user_certificate=_user(c, human_handle=None).dump_and_sign(_wrong_key())
    ),
    "redacted-device-signed-by-other-key": lambda f, c: _replace(
        c, redacted_device_certificate=_device(c, label=None).dump_and_sign(_wrong_key())
    ),
    "user-with-author": lambda f, c: _replace(
        c, user_certificate=_user(c, author=c.device.device_id).dump_and_sign(f.root_key)
    ),
    "device-with-author": lambda f, c: _replace(
        c, device_certificate=_device(c, author=c.device.device_id).dump_and_sign(f.root_key)
    ),
    "user-not-admin": lambda f, c: f.certs(profile=p.UserProfile.STANDARD),
    "outsider": lambda f, c: f.certs(profile=p.UserProfile.OUTSIDER),
    "device-timestamp-differs": lambda f, c: f.certs(
        device_timestamp=c.timestamp.add(microseconds=1)
    ),
    "device-of-other-user": lambda f, c: _replace(
        c,
        device_certificate=_device(c, user_id=p.UserID.new()).dump_and_sign(f.root_key),
        redacted_device_certificate=_device(c, user_id=p.UserID.new(), label=None).dump_and_sign(
            f.root_key
        ),
    ),
    "redacted-user-not-redacted": lambda f, c: _replace(
        c, redacted_user_certificate=c.user_certificate
    ),
    "redacted-device-not-redacted": lambda f, c: _replace(
        c, redacted_device_certificate=c.device_certificate
    ),
    # Not listed: a redacted certificate given as the main one (the reference accepts it).
    "redacted-user-differs": lambda f, c: _replace(
        c,
        redacted_user_certificate=_user(
            c, human_handle=None, public_key=p.PrivateKey.generate().public_key
        ).dump_and_sign(f.root_key),
    ),
    "redacted-user-other-profile": lambda f, c: _replace(
        c,
        redacted_user_certificate=_user(
            c, human_handle=None, profile=p.UserProfile.STANDARD
        ).dump_and_sign(f.root_key),
    ),
    "redacted-device-differs": lambda f, c: _replace(
        c,
        redacted_device_certificate=_device(
            c, label=None, verify_key=p.SigningKey.generate().verify_key
        ).dump_and_sign(f.root_key),
    ),
    "redacted-device-other-timestamp": lambda f, c: _replace(
        c,
        redacted_device_certificate=_device(
            c, label=None, timestamp=c.timestamp.add(microseconds=1)
        ).dump_and_sign(f.root_key),
    ),
    "user-and-device-swapped": lambda f, c: _replace(
        c, user_certificate=c.device_certificate, device_certificate=c.user_certificate
    ),
    "user-garbage": lambda f, c: _replace(c, user_certificate=b"garbage"),
    "device-garbage": lambda f, c: _replace(c, device_certificate=b""),
    "user-bad-signature-bytes": lambda f, c: _replace(
        c, user_certificate=bytes([c.user_certificate[0] ^ 1]) + c.user_certificate[1:]
    ),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_bootstrap_invalid_certificate(fresh: Fresh, case: str) -> None:
    certs = INVALID[case](fresh, fresh.certs())
    rep = fresh.bootstrap(certs)
    assert isinstance(rep, BOOT.RepInvalidCertificate), rep
    assert fresh.admin.get_org(fresh.org_id)["is_bootstrapped"] is False
    assert isinstance(fresh.bootstrap(), BOOT.RepOk)


def test_bootstrap_wrong_root_verify_key(fresh: Fresh) -> None:
    rep = fresh.bootstrap(root_verify_key=p.SigningKey.generate().verify_key)
    assert isinstance(rep, BOOT.RepInvalidCertificate), rep


def test_bootstrap_invalid_certificate_reported_before_token(fresh: Fresh) -> None:
    certs = INVALID["user-signed-by-other-key"](fresh, fresh.certs())
    rep = fresh.bootstrap(certs, token=p.AccessToken.new())
    assert isinstance(rep, BOOT.RepInvalidCertificate), rep


def test_bootstrap_root_key_is_kept(fresh: Fresh) -> None:
    certs = fresh.certs()
    assert isinstance(fresh.bootstrap(certs), BOOT.RepOk)
    got = AuthenticatedClient(fresh.http, certs.device).certificates()
    # clients verify the first certificates with the root key they trust
    user = p.UserCertificate.verify_and_load(got.common_certificates[0], fresh.root_key.verify_key)
    assert user.user_id == certs.device.user_id
    assert user.profile == p.UserProfile.ADMIN


# --- anonymous ping ---------------------------------------------------------------------------


def test_anonymous_ping(fresh: Fresh) -> None:
    # works before bootstrap...
    rep = fresh.anonymous.ping("before")
    assert isinstance(rep, ANC.ping.RepOk), rep
    assert rep.pong == "before"
    assert isinstance(fresh.bootstrap(), BOOT.RepOk)
    # ... and after
    assert fresh.anonymous.ping("after").pong == "after"


def test_anonymous_ping_unicode(fresh: Fresh) -> None:
    assert fresh.anonymous.ping("héllo ✓").pong == "héllo ✓"
