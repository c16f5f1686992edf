"""Data plane, realms: self-promotion, archiving, renaming, key rotation (sequestered organizations
included), keys bundle accesses, and the order in which the server reports problems."""

from __future__ import annotations

import parsec._parsec as p
import pytest
from client import (
    AC,
    ANC,
    AnonymousClient,
    AuthenticatedClient,
    Org,
    build_user_certs,
    now,
)
from data_plane import (
    archive,
    last_realm_timestamp,
    rename,
    role_cert,
    self_promote,
    vlob_create,
)

R = p.RealmRole
RS = AC.realm_share
RU = AC.realm_unshare
RK = AC.realm_rotate_key
RB = AC.realm_get_keys_bundle
RN = AC.realm_rename
RA = AC.realm_update_archiving
SP = AC.realm_self_promote_to_owner
VC = AC.vlob_create
ARCHIVED = p.RealmArchivingConfiguration.ARCHIVED
AVAILABLE = p.RealmArchivingConfiguration.AVAILABLE


# --- realm_self_promote_to_owner --------------------------------------------------------------


def test_self_promote_after_owner_revoked(
    org: Org, alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    carol = alice.create_user("carol", p.UserProfile.ADMIN)
    realm = carol.new_realm()
    assert isinstance(carol.share(realm, bob.user_id, R.MANAGER), RS.RepOk)
    rep = self_promote(bob, realm)
    assert isinstance(rep, SP.RepActiveOwnerAlreadyExists), rep
    assert rep.last_realm_certificate_timestamp == last_realm_timestamp(bob, realm)
    assert isinstance(alice.revoke(carol.user_id), AC.user_revoke.RepOk)
    ts = now()
    assert isinstance(self_promote(bob, realm, ts), SP.RepOk)
    cert = p.RealmRoleCertificate.unsecure_load(bob.certificates().realm_certificates[realm][-1])
    assert (cert.user_id, cert.role, cert.timestamp) == (bob.user_id, R.OWNER, ts)
    # now an owner: can rotate keys (the revoked owner is still a participant until unshared)
    assert isinstance(bob.rotate_key(realm, 2, [bob.user_id, carol.user_id]), RK.RepOk)
    assert isinstance(self_promote(bob, realm), SP.RepActiveOwnerAlreadyExists)


def test_self_promote_needs_highest_role(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    carol = alice.create_user("carol", p.UserProfile.ADMIN)
    dave = alice.create_user("dave")
    realm = carol.new_realm()
    assert isinstance(carol.share(realm, bob.user_id, R.CONTRIBUTOR), RS.RepOk)
    assert isinstance(carol.share(realm, dave.user_id, R.MANAGER), RS.RepOk)
    assert isinstance(alice.revoke(carol.user_id), AC.user_revoke.RepOk)
    assert isinstance(self_promote(bob, realm), SP.RepAuthorNotAllowed)
    assert isinstance(self_promote(dave, realm), SP.RepOk)
    # a revoked manager does not count
    realm2 = dave.new_realm()
    eve = alice.create_user("eve")
    assert isinstance(dave.share(realm2, eve.user_id, R.READER), RS.RepOk)
    assert isinstance(dave.share(realm2, bob.user_id, R.MANAGER), RS.RepOk)
    assert isinstance(alice.revoke(dave.user_id), AC.user_revoke.RepOk)
    assert isinstance(alice.revoke(bob.user_id), AC.user_revoke.RepOk)
    assert isinstance(self_promote(eve, realm2), SP.RepOk)


def test_self_promote_errors(
    alice: AuthenticatedClient, bob: AuthenticatedClient, mallory: AuthenticatedClient
) -> None:
    realm = alice.new_realm()
    assert isinstance(self_promote(mallory, realm), SP.RepAuthorIsOutsider)
    # outsider is reported before the certificate is even looked at
    rep = mallory.send(SP.Req(realm_role_certificate=b"garbage"))
    assert isinstance(rep, SP.RepAuthorIsOutsider), rep
    assert isinstance(self_promote(bob, realm), SP.RepAuthorNotAllowed)  # no role
    assert isinstance(self_promote(bob, p.VlobID.new()), SP.RepRealmNotFound)
    assert isinstance(bob.send(SP.Req(realm_role_certificate=b"garbage")), SP.RepInvalidCertificate)
    assert isinstance(self_promote(bob, realm, user_id=alice.user_id), SP.RepInvalidCertificate)
    assert isinstance(self_promote(bob, realm, role=R.MANAGER), SP.RepInvalidCertificate)
    rep = self_promote(bob, realm, timestamp=now().add(seconds=3600))
    assert isinstance(rep, SP.RepTimestampOutOfBallpark), rep
    # invalid certificate comes before realm_not_found
    rep = self_promote(bob, p.VlobID.new(), role=R.READER)
    assert isinstance(rep, SP.RepInvalidCertificate), rep


def test_self_promote_require_greater_than_last_vlob(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    carol = alice.create_user("carol", p.UserProfile.ADMIN)
    realm = carol.new_realm()
    assert isinstance(carol.share(realm, bob.user_id, R.CONTRIBUTOR), RS.RepOk)
    assert isinstance(alice.revoke(carol.user_id), AC.user_revoke.RepOk)
    vlob_ts = now().add(seconds=2)
    assert isinstance(vlob_create(bob, realm, blob=b"x", timestamp=vlob_ts), VC.RepOk)
    rep = self_promote(bob, realm, now().add(seconds=1))
    assert isinstance(rep, SP.RepRequireGreaterTimestamp), rep
    assert rep.strictly_greater_than == vlob_ts


# --- realm_update_archiving -------------------------------------------------------------------


def test_archiving_deletion_planned(org: Org, alice: AuthenticatedClient) -> None:
    realm = alice.new_realm()
    ts = now()
    too_soon = p.RealmArchivingConfiguration.deletion_planned(ts.add(seconds=2592000 - 1))
    assert isinstance(archive(alice, realm, too_soon, ts), RA.RepArchivingPeriodTooShort)
    planned = p.RealmArchivingConfiguration.deletion_planned(ts.add(seconds=2592000))
    assert isinstance(archive(alice, realm, planned, ts), RA.RepOk)
    assert isinstance(vlob_create(alice, realm, blob=b"x"), VC.RepRealmArchived)
    cert = p.RealmArchivingCertificate.unsecure_load(
        alice.certificates().realm_certificates[realm][-1]
    )
    assert cert.configuration.deletion_date == ts.add(seconds=2592000)
    assert isinstance(archive(alice, realm, AVAILABLE), RA.RepOk)
    assert isinstance(vlob_create(alice, realm, blob=b"x"), VC.RepOk)


def test_archiving_period_follows_organization(org: Org, alice: AuthenticatedClient) -> None:
    org.admin.patch_org(org.organization_id, realm_minimum_archiving_period_before_deletion=10)
    realm = alice.new_realm()
    ts = now()
    rep = archive(
        alice, realm, p.RealmArchivingConfiguration.deletion_planned(ts.add(seconds=9)), ts
    )
    assert isinstance(rep, RA.RepArchivingPeriodTooShort), rep
    rep = archive(
        alice, realm, p.RealmArchivingConfiguration.deletion_planned(ts.add(seconds=10)), ts
    )
    assert isinstance(rep, RA.RepOk), rep


def test_archiving_errors(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    realm = alice.new_realm()
    assert isinstance(archive(bob, realm, ARCHIVED), RA.RepAuthorNotAllowed)
    assert isinstance(alice.share(realm, bob.user_id, R.MANAGER), RS.RepOk)
    assert isinstance(archive(bob, realm, ARCHIVED), RA.RepAuthorNotAllowed)
    assert isinstance(archive(alice, p.VlobID.new(), ARCHIVED), RA.RepRealmNotFound)
    assert isinstance(
        alice.send(RA.Req(archiving_certificate=b"garbage")), RA.RepInvalidCertificate
    )
    assert isinstance(
        archive(alice, realm, ARCHIVED, now().add(seconds=-3600)), RA.RepTimestampOutOfBallpark
    )
    last = last_realm_timestamp(alice, realm)
    rep = archive(alice, realm, ARCHIVED, last)
    assert isinstance(rep, RA.RepRequireGreaterTimestamp), rep
    assert rep.strictly_greater_than == last
    # archiving twice is fine, and so is making available an available realm
    assert isinstance(archive(alice, realm, ARCHIVED), RA.RepOk)
    assert isinstance(archive(alice, realm, ARCHIVED), RA.RepOk)
    assert isinstance(archive(alice, realm, AVAILABLE), RA.RepOk)
    assert isinstance(archive(alice, realm, AVAILABLE), RA.RepOk)


def test_archived_realm_still_accepts_certificates(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    realm = alice.new_realm()
    assert isinstance(archive(alice, realm, ARCHIVED), RA.RepOk)
    assert isinstance(alice.share(realm, bob.user_id, R.READER), RS.RepOk)
    assert isinstance(alice.rotate_key(realm, 2, [alice.user_id, bob.user_id]), RK.RepOk)
    assert isinstance(rename(alice, realm, key_index=2), RN.RepOk)
    assert isinstance(alice.share(realm, bob.user_id, None), RU.RepOk)


# --- realm_rename -----------------------------------------------------------------------------


def test_rename_errors(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    realm = alice.new_realm()
    assert isinstance(rename(bob, realm), RN.RepAuthorNotAllowed)  # no role
    assert isinstance(
        alice.send(RN.Req(realm_name_certificate=b"x", initial_name_or_fail=False)),
        RN.RepInvalidCertificate,
    )
    assert isinstance(
        rename(alice, realm, timestamp=now().add(seconds=3600)), RN.RepTimestampOutOfBallpark
    )
    last = last_realm_timestamp(alice, realm)
    rep = rename(alice, realm, timestamp=last)
    assert isinstance(rep, RN.RepRequireGreaterTimestamp), rep
    assert rep.strictly_greater_than == last
    # author rights before key index, key index before the initial name check
    assert isinstance(alice.share(realm, bob.user_id, R.MANAGER), RS.RepOk)
    assert isinstance(rename(bob, realm, key_index=5), RN.RepAuthorNotAllowed)
    assert isinstance(rename(alice, realm, initial=True), RN.RepOk)
    rep = rename(alice, realm, key_index=5, initial=True)
    assert isinstance(rep, RN.RepBadKeyIndex), rep


def test_rename_before_any_rotation(alice: AuthenticatedClient) -> None:
    realm, rep = alice.realm_create()
    assert isinstance(rep, AC.realm_create.RepOk)
    assert isinstance(rename(alice, realm, key_index=1), RN.RepBadKeyIndex)
    assert isinstance(rename(alice, realm, key_index=0), RN.RepOk)


# --- realm_share / realm_unshare: order of checks -----------------------------------------------


def test_share_order_of_checks(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    carol = alice.create_user("carol")
    realm = alice.new_realm()
    assert isinstance(alice.share(realm, bob.user_id, R.READER), RS.RepOk)
    # a reader sharing with an unknown user: recipient_not_found comes before the author's rights
    assert isinstance(bob.share(realm, p.UserID.new(), R.READER), RS.RepRecipientNotFound)
    assert isinstance(bob.share(realm, carol.user_id, R.READER), RS.RepAuthorNotAllowed)
    # the same role is reported before a bad key index
    rep = alice.share(realm, bob.user_id, R.READER, key_index=9)
    assert isinstance(rep, RS.RepRoleAlreadyGranted), rep
    # invalid certificate before realm_not_found
    rep = alice.send(
        RS.Req(
            realm_role_certificate=alice.sign(
                role_cert(alice, p.VlobID.new(), alice.user_id, R.READER)
            ),
            recipient_keys_bundle_access=b"x",
            key_index=1,
        )
    )
    assert isinstance(rep, RS.RepInvalidCertificate), rep


def test_unshare_order_of_checks(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    carol = alice.create_user("carol")
    realm = alice.new_realm()
    assert isinstance(alice.share(realm, bob.user_id, R.READER), RS.RepOk)
    # a reader unsharing a user without role: already unshared before the author's rights
    assert isinstance(bob.share(realm, carol.user_id, None), RU.RepRecipientAlreadyUnshared)
    assert isinstance(alice.share(realm, carol.user_id, R.READER), RS.RepOk)
    assert isinstance(bob.share(realm, carol.user_id, None), RU.RepAuthorNotAllowed)


def test_unshare_require_greater_than_last_vlob(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    realm = alice.new_realm()
    assert isinstance(alice.share(realm, bob.user_id, R.READER), RS.RepOk)
    vlob_ts = now().add(seconds=1)
    assert isinstance(vlob_create(alice, realm, blob=b"x", timestamp=vlob_ts), VC.RepOk)
    rep = alice.share(realm, bob.user_id, None, timestamp=now())
    assert isinstance(rep, RU.RepRequireGreaterTimestamp), rep
    assert rep.strictly_greater_than == vlob_ts


def test_share_then_unshare_then_share_again(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    realm = alice.new_realm()
    assert isinstance(alice.share(realm, bob.user_id, R.CONTRIBUTOR), RS.RepOk)
    assert isinstance(alice.share(realm, bob.user_id, None), RU.RepOk)
    assert isinstance(bob.send(RB.Req(realm_id=realm, key_index=1)), RB.RepAuthorNotAllowed)
    assert isinstance(vlob_create(bob, realm, blob=b"x"), VC.RepAuthorNotAllowed)
    assert (
        realm in bob.certificates().realm_certificates
    )  # still sees the history up to his unsharing
    # shared again with another access: the newest one is returned
    cert = p.RealmRoleCertificate(
        author=alice.device_id, timestamp=now(), realm_id=realm, user_id=bob.user_id, role=R.READER
    )
    rep = alice.send(
        RS.Req(
            realm_role_certificate=alice.sign(cert),
            recipient_keys_bundle_access=b"second",
            key_index=1,
        )
    )
    assert isinstance(rep, RS.RepOk), rep
    rep = bob.send(RB.Req(realm_id=realm, key_index=1))
    assert isinstance(rep, RB.RepOk), rep
    assert rep.keys_bundle_access == b"second"
    # a later rotation gives its own access to key 2; key 1 keeps the sharing's
    assert isinstance(alice.rotate_key(realm, 2, [alice.user_id, bob.user_id]), RK.RepOk)
    assert (
        bob.send(RB.Req(realm_id=realm, key_index=2)).keys_bundle_access
        == b"access-for-" + bob.user_id.bytes
    )
    assert bob.send(RB.Req(realm_id=realm, key_index=1)).keys_bundle_access == b"second"


def test_share_with_revoked_participant_then_rotate(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    realm = alice.new_realm()
    assert isinstance(alice.share(realm, bob.user_id, R.READER), RS.RepOk)
    assert isinstance(alice.revoke(bob.user_id), AC.user_revoke.RepOk)
    # revoked but not unshared: still a participant
    assert isinstance(alice.rotate_key(realm, 2, [alice.user_id]), RK.RepParticipantMismatch)
    assert isinstance(alice.rotate_key(realm, 2, [alice.user_id, bob.user_id]), RK.RepOk)
    assert isinstance(alice.share(realm, bob.user_id, None), RU.RepOk)
    assert isinstance(alice.rotate_key(realm, 3, [alice.user_id]), RK.RepOk)


def test_get_keys_bundle_outsider_and_other_org(
    org: Org, alice: AuthenticatedClient, mallory: AuthenticatedClient
) -> None:
    from client import bootstrap_org

    realm = alice.new_realm()
    assert isinstance(alice.share(realm, mallory.user_id, R.READER), RS.RepOk)
    rep = mallory.send(RB.Req(realm_id=realm, key_index=1))
    assert isinstance(rep, RB.RepOk), rep
    other = bootstrap_org(org.http, org.admin)
    assert isinstance(other.alice.send(RB.Req(realm_id=realm, key_index=1)), RB.RepAuthorNotAllowed)
    # key index 0 never exists, not even for an unknown realm
    assert isinstance(other.alice.send(RB.Req(realm_id=realm, key_index=0)), RB.RepBadKeyIndex)


# --- realm_rotate_key -------------------------------------------------------------------------


def test_rotate_key_order_of_checks(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    realm = alice.new_realm()
    assert isinstance(alice.share(realm, bob.user_id, R.READER), RS.RepOk)
    # bad key index comes before the participants check, which comes after causality
    assert isinstance(alice.rotate_key(realm, 3, [alice.user_id]), RK.RepBadKeyIndex)
    last = last_realm_timestamp(alice, realm)
    rep = alice.rotate_key(realm, 2, [alice.user_id], timestamp=last)
    assert isinstance(rep, RK.RepRequireGreaterTimestamp), rep
    rep = alice.rotate_key(realm, 2, [alice.user_id])
    assert isinstance(rep, RK.RepParticipantMismatch), rep
    assert rep.last_realm_certificate_timestamp == last
    assert isinstance(
        bob.rotate_key(realm, 2, [alice.user_id, bob.user_id]), RK.RepAuthorNotAllowed
    )
    rep = bob.rotate_key(p.VlobID.new(), 1, [bob.user_id])
    assert isinstance(rep, RK.RepRealmNotFound), rep


def test_rotate_key_participant_map_ignored_when_wrong_realm_for_user(
    alice: AuthenticatedClient,
) -> None:
    carol = alice.create_user("carol")
    realm = carol.new_realm()
    rep = alice.rotate_key(realm, 2, [carol.user_id])
    assert isinstance(rep, RK.RepAuthorNotAllowed), rep


def _sequestered_org(org: Org) -> tuple[AuthenticatedClient, p.DateTime]:
    org_id, token = org.admin.create_org()
    root_key = p.SigningKey.generate()
    ts = now()
    certs = build_user_certs(
        org_id, None, root_key, name="sally", profile=p.UserProfile.ADMIN, timestamp=ts
    )
    _, verify_key = p.SequesterSigningKeyDer.generate_pair(1024)
    authority = p.SequesterAuthorityCertificate(timestamp=ts, verify_key_der=verify_key)
    req = ANC.organization_bootstrap.Req(
        bootstrap_token=token,
        root_verify_key=root_key.verify_key,
        user_certificate=certs.user_certificate,
        device_certificate=certs.device_certificate,
        redacted_user_certificate=certs.redacted_user_certificate,
        redacted_device_certificate=certs.redacted_device_certificate,
        sequester_authority_certificate=authority.dump_and_sign(root_key),
    )
    rep = AnonymousClient(org.http, org_id).send(req)
    assert isinstance(rep, ANC.organization_bootstrap.RepOk), rep
    return AuthenticatedClient(org.http, certs.device), ts


def test_rotate_key_sequestered_organization(org: Org) -> None:
    sally, authority_ts = _sequestered_org(org)
    realm, rep = sally.realm_create()
    assert isinstance(rep, AC.realm_create.RepOk)
    cert = p.RealmKeyRotationCertificate(
        author=sally.device_id,
        timestamp=now(),
        realm_id=realm,
        key_index=1,
        encryption_algorithm=p.SecretKeyAlgorithm.BLAKE2B_XSALSA20_POLY1305,
        hash_algorithm=p.HashAlgorithm.SHA256,
        key_canary=b"canary",
    )
    raw = sally.sign(cert)
    # a sequestered organization needs the (here empty) map of services
    rep = sally.send(
        RK.Req(
            realm_key_rotation_certificate=raw,
            per_participant_keys_bundle_access={sally.user_id: b"a"},
            per_sequester_service_keys_bundle_access=None,
            keys_bundle=b"kb",
        )
    )
    assert isinstance(rep, RK.RepSequesterServiceMismatch), rep
    assert rep.last_sequester_certificate_timestamp == authority_ts
    rep = sally.send(
        RK.Req(
            realm_key_rotation_certificate=raw,
            per_participant_keys_bundle_access={sally.user_id: b"a"},
            per_sequester_service_keys_bundle_access={p.SequesterServiceID.new(): b"s"},
            keys_bundle=b"kb",
        )
    )
    assert isinstance(rep, RK.RepSequesterServiceMismatch), rep
    rep = sally.send(
        RK.Req(
            realm_key_rotation_certificate=raw,
            per_participant_keys_bundle_access={sally.user_id: b"a"},
            per_sequester_service_keys_bundle_access={},
            keys_bundle=b"kb",
        )
    )
    assert isinstance(rep, RK.RepOk), rep
    rep = sally.send(RB.Req(realm_id=realm, key_index=1))
    assert (rep.keys_bundle, rep.keys_bundle_access) == (b"kb", b"a")


@pytest.mark.parametrize("kind", ["rename", "archiving", "rotate"])
def test_certificate_commands_other_org_realm(
    org: Org, alice: AuthenticatedClient, kind: str
) -> None:
    from client import bootstrap_org

    realm = alice.new_realm()
    other = bootstrap_org(org.http, org.admin).alice
    if kind == "rename":
        assert isinstance(rename(other, realm), RN.RepRealmNotFound)
    elif kind == "archiving":
        assert isinstance(archive(other, realm, ARCHIVED), RA.RepRealmNotFound)
    else:
        assert isinstance(other.rotate_key(realm, 2, [other.user_id]), RK.RepRealmNotFound)
