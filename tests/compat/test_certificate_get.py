"""authenticated certificate_get: topics, ordering, `*_after` filters, redaction for outsiders."""

from __future__ import annotations

import parsec._parsec as p
from client import AC, AuthenticatedClient, build_user_certs, now, user_create_req


def create_user_at(
    alice: AuthenticatedClient,
    name: str,
    ts: p.DateTime,
    profile: p.UserProfile = p.UserProfile.STANDARD,
) -> AuthenticatedClient:
    certs = build_user_certs(
        alice.organization_id,
        alice.device,
        alice.device.signing_key,
        name=name,
        timestamp=ts,
        profile=profile,
    )
    rep = alice.send(user_create_req(certs))
    assert isinstance(rep, AC.user_create.RepOk), rep
    return AuthenticatedClient(alice.http, certs.device)


def kinds(raw_certs: list[bytes]) -> list[tuple[str, bool | None]]:
    """(type, is_redacted) of each certificate."""
    out: list[tuple[str, bool | None]] = []
    for raw in raw_certs:
        for cls in (
            p.UserCertificate,
            p.DeviceCertificate,
            p.RevokedUserCertificate,
            p.UserUpdateCertificate,
        ):
            try:
                cert = cls.unsecure_load(raw)
            except ValueError:
                continue
            out.append((cls.__name__, getattr(cert, "is_redacted", None)))
            break
        else:
            raise AssertionError(f"unknown certificate {raw[:80]!r}")
    return out


def timestamps(raw_certs: list[bytes]) -> list[p.DateTime]:
    out = []
    for raw in raw_certs:
        for cls in (
            p.UserCertificate,
            p.DeviceCertificate,
            p.RevokedUserCertificate,
            p.UserUpdateCertificate,
            p.RealmRoleCertificate,
            p.RealmKeyRotationCertificate,
            p.RealmNameCertificate,
        ):
            try:
                out.append(cls.unsecure_load(raw).timestamp)
                break
            except ValueError:
                continue
    return out


def test_certificate_get_fresh_org(alice: AuthenticatedClient) -> None:
    rep = alice.certificates()
    assert kinds(rep.common_certificates) == [
        ("UserCertificate", False),
        ("DeviceCertificate", False),
    ]
    assert rep.sequester_certificates == []
    assert rep.shamir_recovery_certificates == []
    assert rep.realm_certificates == {}


def test_certificate_get_common_ordering(alice: AuthenticatedClient) -> None:
    t0 = now()
    bob = create_user_at(alice, "bob", t0.add(seconds=1))
    carol = create_user_at(alice, "carol", t0.add(seconds=2))
    assert isinstance(
        alice.update_profile(bob.user_id, p.UserProfile.ADMIN, t0.add(seconds=3)),
        AC.user_update.RepOk,
    )
    assert isinstance(alice.revoke(carol.user_id, t0.add(seconds=4)), AC.user_revoke.RepOk)
    rep = bob.certificates()
    assert kinds(rep.common_certificates) == [
        ("UserCertificate", False),
        ("DeviceCertificate", False),  # alice
        ("UserCertificate", False),
        ("DeviceCertificate", False),  # bob
        ("UserCertificate", False),
        ("DeviceCertificate", False),  # carol
        ("UserUpdateCertificate", None),
        ("RevokedUserCertificate", None),
    ]
    ts = timestamps(rep.common_certificates)
    assert ts == sorted(ts)
    assert ts[2:] == [t0.add(seconds=s) for s in (1, 1, 2, 2, 3, 4)]


def test_certificate_get_common_after(alice: AuthenticatedClient) -> None:
    t0 = now()
    create_user_at(alice, "bob", t0.add(seconds=1))
    carol = create_user_at(alice, "carol", t0.add(seconds=2))
    all_certs = alice.certificates().common_certificates
    # strictly after
    rep = alice.certificates(common_after=t0.add(seconds=1))
    assert rep.common_certificates == all_certs[4:]
    assert kinds(rep.common_certificates) == [
        ("UserCertificate", False),
        ("DeviceCertificate", False),
    ]
    assert p.UserCertificate.unsecure_load(rep.common_certificates[0]).user_id == carol.user_id
    rep = alice.certificates(common_after=t0.add(microseconds=999_999, seconds=0))
    assert rep.common_certificates == all_certs[2:]
    rep = alice.certificates(common_after=t0.add(seconds=2))
    assert rep.common_certificates == []
    rep = alice.certificates(common_after=p.DateTime(2000, 1, 1))
    assert rep.common_certificates == all_certs


def test_certificate_get_outsider_gets_redacted(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    mallory = alice.create_user("mallory", p.UserProfile.OUTSIDER)
    rep = mallory.certificates()
    assert kinds(rep.common_certificates) == [
        ("UserCertificate", True),
        ("DeviceCertificate", True),
        ("UserCertificate", True),
        ("DeviceCertificate", True),
        ("UserCertificate", True),
        ("DeviceCertificate", True),
    ]
    # and the others see the full ones, including mallory's
    rep = bob.certificates()
    assert all(not redacted for _, redacted in kinds(rep.common_certificates))
    # redacted certificates still verify with the author's key
    cert = p.UserCertificate.verify_and_load(
        mallory.certificates().common_certificates[2], alice.device.verify_key, alice.device_id
    )
    assert cert.user_id == bob.user_id
    assert cert.is_redacted


def test_certificate_get_demoted_to_outsider_gets_redacted(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    assert isinstance(
        alice.update_profile(bob.user_id, p.UserProfile.OUTSIDER), AC.user_update.RepOk
    )
    rep = bob.certificates()
    users_and_devices = [k for k in kinds(rep.common_certificates) if k[1] is not None]
    assert users_and_devices and all(redacted for _, redacted in users_and_devices)


def test_certificate_get_realm_certificates(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    realm = alice.new_realm()
    other_realm = alice.new_realm()
    rep = alice.certificates()
    assert set(rep.realm_certificates) == {realm, other_realm}
    certs = rep.realm_certificates[realm]
    assert len(certs) == 2
    role = p.RealmRoleCertificate.unsecure_load(certs[0])
    assert (role.realm_id, role.user_id, role.role) == (realm, alice.user_id, p.RealmRole.OWNER)
    rotation = p.RealmKeyRotationCertificate.unsecure_load(certs[1])
    assert (rotation.realm_id, rotation.key_index) == (realm, 1)
    # bob is not a member of any realm yet
    assert bob.certificates().realm_certificates == {}
    assert isinstance(alice.share(realm, bob.user_id, p.RealmRole.READER), AC.realm_share.RepOk)
    rep = bob.certificates()
    assert set(rep.realm_certificates) == {realm}
    assert rep.realm_certificates[realm][:2] == certs
    share = p.RealmRoleCertificate.unsecure_load(rep.realm_certificates[realm][2])
    assert (share.user_id, share.role) == (bob.user_id, p.RealmRole.READER)
    # still visible once unshared: the history stays available
    assert isinstance(alice.share(realm, bob.user_id, None), AC.realm_unshare.RepOk)
    rep = bob.certificates()
    assert len(rep.realm_certificates[realm]) == 4


def test_certificate_get_realm_after(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    realm = alice.new_realm()
    certs = alice.certificates().realm_certificates[realm]
    role_ts = p.RealmRoleCertificate.unsecure_load(certs[0]).timestamp
    rotation_ts = p.RealmKeyRotationCertificate.unsecure_load(certs[1]).timestamp
    rep = alice.certificates(realm_after={realm: role_ts})
    assert rep.realm_certificates == {realm: certs[1:]}
    rep = alice.certificates(realm_after={realm: rotation_ts})
    assert rep.realm_certificates.get(realm, []) == []
    # an unknown realm in realm_after is ignored
    rep = alice.certificates(realm_after={p.VlobID.new(): now()})
    assert rep.realm_certificates == {realm: certs}


def test_certificate_get_realm_certificates_ordered(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    carol = alice.create_user("carol")
    realm = alice.new_realm()
    t0 = now()
    assert isinstance(
        alice.share(realm, bob.user_id, p.RealmRole.READER, timestamp=t0.add(seconds=1)),
        AC.realm_share.RepOk,
    )
    assert isinstance(
        alice.share(realm, carol.user_id, p.RealmRole.CONTRIBUTOR, timestamp=t0.add(seconds=2)),
        AC.realm_share.RepOk,
    )
    assert isinstance(
        alice.share(realm, bob.user_id, p.RealmRole.MANAGER, timestamp=t0.add(seconds=3)),
        AC.realm_share.RepOk,
    )
    certs = carol.certificates().realm_certificates[realm]
    ts = timestamps(certs)
    assert ts == sorted(ts)
    assert ts[2:] == [t0.add(seconds=1), t0.add(seconds=2), t0.add(seconds=3)]


def test_certificate_get_topics_are_independent(alice: AuthenticatedClient) -> None:
    realm = alice.new_realm()
    future = now().add(seconds=100)
    rep = alice.certificates(common_after=future)
    assert rep.common_certificates == []
    assert set(rep.realm_certificates) == {realm}


def test_certificate_get_unshared_user_sees_history_up_to_unsharing(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    realm = alice.new_realm()
    assert isinstance(alice.share(realm, bob.user_id, p.RealmRole.READER), AC.realm_share.RepOk)
    assert isinstance(alice.share(realm, bob.user_id, None), AC.realm_unshare.RepOk)
    seen = bob.certificates().realm_certificates[realm]
    assert isinstance(alice.rotate_key(realm, 2, [alice.user_id]), AC.realm_rotate_key.RepOk)
    assert bob.certificates().realm_certificates[realm] == seen
    assert len(alice.certificates().realm_certificates[realm]) == len(seen) + 1
