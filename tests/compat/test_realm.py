"""Realms: realm_create, realm_share, realm_unshare, realm_rotate_key, realm_get_keys_bundle,
realm_rename (protocol.md §4.5)."""

from __future__ import annotations

import parsec._parsec as p
import pytest
from client import AC, AuthenticatedClient, Org, build_user_certs, now, user_create_req
from data_plane import (
    archive,
    last_realm_timestamp,
    rename,
    role_cert,
    self_promote,
    vlob_create,
)

RC = AC.realm_create
RS = AC.realm_share
RU = AC.realm_unshare
RK = AC.realm_rotate_key
RB = AC.realm_get_keys_bundle
RN = AC.realm_rename

R = p.RealmRole


# --- realm_create -----------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_realm_create_ok(request: pytest.FixtureRequest, who: str) -> None:
    client: AuthenticatedClient = request.getfixturevalue(who)
    ts = now()
    realm_id, rep = client.realm_create(timestamp=ts)
    assert isinstance(rep, RC.RepOk), rep
    certs = client.certificates().realm_certificates
    assert list(certs) == [realm_id]
    cert = p.RealmRoleCertificate.verify_and_load(
        certs[realm_id][0], client.device.verify_key, client.device_id
    )
    assert (cert.user_id, cert.role, cert.timestamp) == (client.user_id, R.OWNER, ts)


def test_realm_create_outsider_not_allowed(mallory: AuthenticatedClient) -> None:
    _, rep = mallory.realm_create()
    assert isinstance(rep, RC.RepAuthorNotAllowed), rep


def test_realm_create_already_exists(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    ts = now()
    realm_id, rep = alice.realm_create(timestamp=ts)
    assert isinstance(rep, RC.RepOk)
    _, rep = alice.realm_create(realm_id)
    assert isinstance(rep, RC.RepRealmAlreadyExists), rep
    assert rep.last_realm_certificate_timestamp == ts
    # also for another user
    _, rep = bob.realm_create(realm_id)
    assert isinstance(rep, RC.RepRealmAlreadyExists), rep


@pytest.mark.parametrize(
    "case", ["other-user", "not-owner", "no-role", "other-author", "bad-signature", "garbage"]
)
def test_realm_create_invalid_certificate(
    alice: AuthenticatedClient, bob: AuthenticatedClient, case: str
) -> None:
    realm_id = p.VlobID.new()
    key = alice.device.signing_key
    cert = {
        "other-user": lambda: role_cert(alice, realm_id, bob.user_id, R.OWNER),
        "not-owner": lambda: role_cert(alice, realm_id, alice.user_id, R.MANAGER),
        "no-role": lambda: role_cert(alice, realm_id, alice.user_id, None),
        "other-author": lambda: role_cert(bob, realm_id, alice.user_id, R.OWNER),
        "bad-signature": lambda: role_cert(alice, realm_id, alice.user_id, R.OWNER),
        "garbage": lambda: None,
    }[case]()
    if case == "bad-signature":
        key = p.SigningKey.generate()
    raw = b"garbage" if cert is None else cert.dump_and_sign(key)
    rep = alice.send(RC.Req(realm_role_certificate=raw))
    assert isinstance(rep, RC.RepInvalidCertificate), rep
    assert alice.certificates().realm_certificates == {}


@pytest.mark.parametrize("offset", [-3600, 3600])
def test_realm_create_timestamp_out_of_ballpark(alice: AuthenticatedClient, offset: int) -> None:
    ts = now().add(seconds=offset)
    _, rep = alice.realm_create(timestamp=ts)
    assert isinstance(rep, RC.RepTimestampOutOfBallpark), rep
    assert rep.client_timestamp == ts


def test_realm_create_require_greater_than_common(alice: AuthenticatedClient) -> None:
    earlier = now()
    later = earlier.add(seconds=1)
    certs = build_user_certs(
        alice.organization_id, alice.device, alice.device.signing_key, name="bob", timestamp=later
    )
    assert isinstance(alice.send(user_create_req(certs)), AC.user_create.RepOk)
    _, rep = alice.realm_create(timestamp=earlier)
    assert isinstance(rep, RC.RepRequireGreaterTimestamp), rep
    assert rep.strictly_greater_than == later


# --- realm_rotate_key / realm_get_keys_bundle -------------------------------------------------


def test_realm_rotate_key_and_get_keys_bundle(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    realm_id, _ = alice.realm_create()
    rep = alice.rotate_key(realm_id, 1, [alice.user_id])
    assert isinstance(rep, RK.RepOk), rep
    rep = alice.send(RB.Req(realm_id=realm_id, key_index=1))
    assert isinstance(rep, RB.RepOk), rep
    assert rep.keys_bundle == b"keys-bundle-\x01"
    assert rep.keys_bundle_access == b"access-for-" + alice.user_id.bytes
    assert isinstance(alice.share(realm_id, bob.user_id, R.READER), RS.RepOk)
    rep = alice.rotate_key(realm_id, 2, [alice.user_id, bob.user_id])
    assert isinstance(rep, RK.RepOk), rep
    for client in (alice, bob):
        rep = client.send(RB.Req(realm_id=realm_id, key_index=2))
        assert isinstance(rep, RB.RepOk), rep
        assert rep.keys_bundle == b"keys-bundle-\x02"
        assert rep.keys_bundle_access == b"access-for-" + client.user_id.bytes
    # bob got key 1 through the sharing
    rep = bob.send(RB.Req(realm_id=realm_id, key_index=1))
    assert isinstance(rep, RB.RepOk), rep
    assert rep.keys_bundle == b"keys-bundle-\x01"
    assert rep.keys_bundle_access == b"access-for-" + bob.user_id.bytes


def test_realm_get_keys_bundle_errors(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    realm_id = alice.new_realm()
    for key_index in (0, 2):
        rep = alice.send(RB.Req(realm_id=realm_id, key_index=key_index))
        assert isinstance(rep, RB.RepBadKeyIndex), (key_index, rep)
    rep = bob.send(RB.Req(realm_id=realm_id, key_index=1))
    assert isinstance(rep, RB.RepAuthorNotAllowed), rep
    rep = alice.send(RB.Req(realm_id=p.VlobID.new(), key_index=1))
    assert isinstance(rep, RB.RepAuthorNotAllowed), rep


def test_realm_get_keys_bundle_access_not_available(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    # bob joined after key 2: the rotation to 2 did not include him, the share gave him key 2 only
    realm_id = alice.new_realm()
    assert isinstance(alice.rotate_key(realm_id, 2, [alice.user_id]), RK.RepOk)
    assert isinstance(alice.share(realm_id, bob.user_id, R.READER, key_index=2), RS.RepOk)
    rep = bob.send(RB.Req(realm_id=realm_id, key_index=1))
    assert isinstance(rep, RB.RepAccessNotAvailableForAuthor), rep
    assert isinstance(bob.send(RB.Req(realm_id=realm_id, key_index=2)), RB.RepOk)


def test_realm_rotate_key_bad_key_index(alice: AuthenticatedClient) -> None:
    realm_id, _ = alice.realm_create()
    for key_index in (0, 2):
        rep = alice.rotate_key(realm_id, key_index, [alice.user_id])
        assert isinstance(rep, RK.RepBadKeyIndex), (key_index, rep)
    assert isinstance(alice.rotate_key(realm_id, 1, [alice.user_id]), RK.RepOk)
    rep = alice.rotate_key(realm_id, 1, [alice.user_id])
    assert isinstance(rep, RK.RepBadKeyIndex), rep
    assert rep.last_realm_certificate_timestamp == last_realm_timestamp(alice, realm_id)


def test_realm_rotate_key_participant_mismatch(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    realm_id = alice.new_realm()
    assert isinstance(alice.share(realm_id, bob.user_id, R.READER), RS.RepOk)
    for participants in ([alice.user_id], [alice.user_id, bob.user_id, p.UserID.new()], []):
        rep = alice.rotate_key(realm_id, 2, participants)
        assert isinstance(rep, RK.RepParticipantMismatch), (participants, rep)


def test_realm_rotate_key_author_not_allowed(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    realm_id = alice.new_realm()
    assert isinstance(alice.share(realm_id, bob.user_id, R.MANAGER), RS.RepOk)
    rep = bob.rotate_key(realm_id, 2, [alice.user_id, bob.user_id])
    assert isinstance(rep, RK.RepAuthorNotAllowed), rep


def test_realm_rotate_key_not_sequestered(alice: AuthenticatedClient) -> None:
    realm_id, _ = alice.realm_create()
    cert = p.RealmKeyRotationCertificate(
        author=alice.device_id,
        timestamp=now(),
        realm_id=realm_id,
        key_index=1,
        encryption_algorithm=p.SecretKeyAlgorithm.BLAKE2B_XSALSA20_POLY1305,
        hash_algorithm=p.HashAlgorithm.SHA256,
        key_canary=b"canary",
    )
    rep = alice.send(
        RK.Req(
            realm_key_rotation_certificate=alice.sign(cert),
            per_participant_keys_bundle_access={alice.user_id: b"access"},
            per_sequester_service_keys_bundle_access={},
            keys_bundle=b"bundle",
        )
    )
    assert isinstance(rep, RK.RepOrganizationNotSequestered), rep


def test_realm_rotate_key_invalid_certificate(alice: AuthenticatedClient) -> None:
    alice.realm_create()
    rep = alice.send(
        RK.Req(
            realm_key_rotation_certificate=b"garbage",
            per_participant_keys_bundle_access={alice.user_id: b"access"},
            per_sequester_service_keys_bundle_access=None,
            keys_bundle=b"bundle",
        )
    )
    assert isinstance(rep, RK.RepInvalidCertificate), rep


@pytest.mark.parametrize("offset", [-3600, 3600])
def test_realm_rotate_key_timestamp_out_of_ballpark(
    alice: AuthenticatedClient, offset: int
) -> None:
    realm_id, _ = alice.realm_create()
    rep = alice.rotate_key(realm_id, 1, [alice.user_id], timestamp=now().add(seconds=offset))
    assert isinstance(rep, RK.RepTimestampOutOfBallpark), rep


def test_realm_rotate_key_require_greater_timestamp(alice: AuthenticatedClient) -> None:
    earlier = now()
    realm_id, _ = alice.realm_create(timestamp=earlier.add(seconds=1))
    rep = alice.rotate_key(realm_id, 1, [alice.user_id], timestamp=earlier)
    assert isinstance(rep, RK.RepRequireGreaterTimestamp), rep
    assert rep.strictly_greater_than == earlier.add(seconds=1)


# --- realm_share / realm_unshare --------------------------------------------------------------


@pytest.mark.parametrize("role", [R.OWNER, R.MANAGER, R.CONTRIBUTOR, R.READER])
def test_realm_share_ok(
    alice: AuthenticatedClient, bob: AuthenticatedClient, role: p.RealmRole
) -> None:
    realm_id = alice.new_realm()
    rep = alice.share(realm_id, bob.user_id, role)
    assert isinstance(rep, RS.RepOk), rep
    assert realm_id in bob.certificates().realm_certificates


def test_realm_share_role_already_granted(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    realm_id = alice.new_realm()
    ts = now()
    assert isinstance(alice.share(realm_id, bob.user_id, R.READER, timestamp=ts), RS.RepOk)
    rep = alice.share(realm_id, bob.user_id, R.READER)
    assert isinstance(rep, RS.RepRoleAlreadyGranted), rep
    assert rep.last_realm_certificate_timestamp == ts
    # changing the role is fine
    assert isinstance(alice.share(realm_id, bob.user_id, R.CONTRIBUTOR), RS.RepOk)


def test_realm_share_recipient_not_found(alice: AuthenticatedClient) -> None:
    realm_id = alice.new_realm()
    rep = alice.share(realm_id, p.UserID.new(), R.READER)
    assert isinstance(rep, RS.RepRecipientNotFound), rep


def test_realm_share_recipient_revoked(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    realm_id = alice.new_realm()
    assert isinstance(alice.revoke(bob.user_id), AC.user_revoke.RepOk)
    rep = alice.share(realm_id, bob.user_id, R.READER)
    assert isinstance(rep, RS.RepRecipientRevoked), rep


@pytest.mark.parametrize("role", [R.OWNER, R.MANAGER])
def test_realm_share_role_incompatible_with_outsider(
    alice: AuthenticatedClient, mallory: AuthenticatedClient, role: p.RealmRole
) -> None:
    realm_id = alice.new_realm()
    rep = alice.share(realm_id, mallory.user_id, role)
    assert isinstance(rep, RS.RepRoleIncompatibleWithOutsider), rep


@pytest.mark.parametrize("role", [R.CONTRIBUTOR, R.READER])
def test_realm_share_outsider_ok(
    alice: AuthenticatedClient, mallory: AuthenticatedClient, role: p.RealmRole
) -> None:
    realm_id = alice.new_realm()
    assert isinstance(alice.share(realm_id, mallory.user_id, role), RS.RepOk)


def test_realm_share_realm_not_found(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    rep = alice.share(p.VlobID.new(), bob.user_id, R.READER)
    assert isinstance(rep, RS.RepRealmNotFound), rep


@pytest.mark.parametrize(
    "author_role, new_role, allowed",
    [
        (R.MANAGER, R.READER, True),
        (R.MANAGER, R.CONTRIBUTOR, True),
        (R.MANAGER, R.MANAGER, False),
        (R.MANAGER, R.OWNER, False),
        (R.CONTRIBUTOR, R.READER, False),
        (R.READER, R.READER, False),
        (None, R.READER, False),
    ],
)
def test_realm_share_author_rights(
    alice: AuthenticatedClient,
    bob: AuthenticatedClient,
    author_role: p.RealmRole | None,
    new_role: p.RealmRole,
    allowed: bool,
) -> None:
    carol = alice.create_user("carol")
    realm_id = alice.new_realm()
    if author_role is not None:
        assert isinstance(alice.share(realm_id, bob.user_id, author_role), RS.RepOk)
    rep = bob.share(realm_id, carol.user_id, new_role)
    if allowed:
        assert isinstance(rep, RS.RepOk), rep
    else:
        assert isinstance(rep, RS.RepAuthorNotAllowed), rep


def test_realm_share_manager_cannot_change_a_manager(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    carol = alice.create_user("carol")
    realm_id = alice.new_realm()
    assert isinstance(alice.share(realm_id, bob.user_id, R.MANAGER), RS.RepOk)
    assert isinstance(alice.share(realm_id, carol.user_id, R.MANAGER), RS.RepOk)
    rep = bob.share(realm_id, carol.user_id, R.READER)
    assert isinstance(rep, RS.RepAuthorNotAllowed), rep


def test_realm_share_bad_key_index(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    realm_id, _ = alice.realm_create()
    # no key rotation yet
    rep = alice.share(realm_id, bob.user_id, R.READER, key_index=0)
    assert isinstance(rep, RS.RepBadKeyIndex), rep
    assert isinstance(alice.rotate_key(realm_id, 1, [alice.user_id]), RK.RepOk)
    for key_index in (0, 2):
        rep = alice.share(realm_id, bob.user_id, R.READER, key_index=key_index)
        assert isinstance(rep, RS.RepBadKeyIndex), (key_index, rep)
        assert rep.last_realm_certificate_timestamp == last_realm_timestamp(alice, realm_id)


@pytest.mark.parametrize("case", ["self", "no-role", "other-author", "bad-signature"])
def test_realm_share_invalid_certificate(
    alice: AuthenticatedClient, bob: AuthenticatedClient, case: str
) -> None:
    realm_id = alice.new_realm()
    key = alice.device.signing_key
    cert = {
        "self": lambda: role_cert(alice, realm_id, alice.user_id, R.READER),
        "no-role": lambda: role_cert(alice, realm_id, bob.user_id, None),
        "other-author": lambda: role_cert(bob, realm_id, bob.user_id, R.READER),
        "bad-signature": lambda: role_cert(alice, realm_id, bob.user_id, R.READER),
    }[case]()
    if case == "bad-signature":
        key = p.SigningKey.generate()
    rep = alice.send(
        RS.Req(
            realm_role_certificate=cert.dump_and_sign(key),
            recipient_keys_bundle_access=b"x",
            key_index=1,
        )
    )
    assert isinstance(rep, RS.RepInvalidCertificate), rep


def test_realm_share_require_greater_timestamp(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    realm_id = alice.new_realm()
    last = last_realm_timestamp(alice, realm_id)
    rep = alice.share(realm_id, bob.user_id, R.READER, timestamp=last)
    assert isinstance(rep, RS.RepRequireGreaterTimestamp), rep
    assert rep.strictly_greater_than == last


def test_realm_share_require_greater_than_last_vlob(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    realm_id = alice.new_realm()
    vlob_ts = now().add(seconds=1)
    rep = vlob_create(alice, realm_id, blob=b"v", timestamp=vlob_ts)
    assert isinstance(rep, AC.vlob_create.RepOk), rep
    rep = alice.share(realm_id, bob.user_id, R.READER, timestamp=now())
    assert isinstance(rep, RS.RepRequireGreaterTimestamp), rep
    assert rep.strictly_greater_than == vlob_ts


@pytest.mark.parametrize("offset", [-3600, 3600])
def test_realm_share_timestamp_out_of_ballpark(
    alice: AuthenticatedClient, bob: AuthenticatedClient, offset: int
) -> None:
    realm_id = alice.new_realm()
    rep = alice.share(realm_id, bob.user_id, R.READER, timestamp=now().add(seconds=offset))
    assert isinstance(rep, RS.RepTimestampOutOfBallpark), rep


def test_realm_unshare(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    realm_id = alice.new_realm()
    assert isinstance(alice.share(realm_id, bob.user_id, R.CONTRIBUTOR), RS.RepOk)
    assert isinstance(bob.send(RB.Req(realm_id=realm_id, key_index=1)), RB.RepOk)
    ts = now()
    rep = alice.share(realm_id, bob.user_id, None, timestamp=ts)
    assert isinstance(rep, RU.RepOk), rep
    assert isinstance(bob.send(RB.Req(realm_id=realm_id, key_index=1)), RB.RepAuthorNotAllowed)
    rep = alice.share(realm_id, bob.user_id, None)
    assert isinstance(rep, RU.RepRecipientAlreadyUnshared), rep
    assert rep.last_realm_certificate_timestamp == ts


def test_realm_unshare_never_shared(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    realm_id = alice.new_realm()
    rep = alice.share(realm_id, bob.user_id, None)
    assert isinstance(rep, RU.RepRecipientAlreadyUnshared), rep


def test_realm_unshare_errors(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    realm_id = alice.new_realm()
    rep = alice.share(p.VlobID.new(), bob.user_id, None)
    assert isinstance(rep, RU.RepRealmNotFound), rep
    rep = alice.share(realm_id, p.UserID.new(), None)
    assert isinstance(rep, RU.RepRecipientNotFound), rep
    rep = alice.share(realm_id, alice.user_id, None)
    assert isinstance(rep, RU.RepInvalidCertificate), rep
    # a role in an unshare certificate
    cert = role_cert(alice, realm_id, bob.user_id, R.READER)
    rep = alice.send(RU.Req(realm_role_certificate=alice.sign(cert)))
    assert isinstance(rep, RU.RepInvalidCertificate), rep


def test_realm_unshare_author_not_allowed(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    carol = alice.create_user("carol")
    realm_id = alice.new_realm()
    assert isinstance(alice.share(realm_id, bob.user_id, R.CONTRIBUTOR), RS.RepOk)
    assert isinstance(alice.share(realm_id, carol.user_id, R.READER), RS.RepOk)
    rep = bob.share(realm_id, carol.user_id, None)
    assert isinstance(rep, RU.RepAuthorNotAllowed), rep


def test_realm_unshare_revoked_user(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    realm_id = alice.new_realm()
    assert isinstance(alice.share(realm_id, bob.user_id, R.READER), RS.RepOk)
    assert isinstance(alice.revoke(bob.user_id), AC.user_revoke.RepOk)
    assert isinstance(alice.share(realm_id, bob.user_id, None), RU.RepOk)


# --- realm_rename ---------------------------------------------------------------------------


def test_realm_rename(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    realm_id = alice.new_realm()
    assert isinstance(rename(alice, realm_id, 1, True, b"first"), RN.RepOk)
    rep = rename(alice, realm_id, 1, True, b"again")
    assert isinstance(rep, RN.RepInitialNameAlreadyExists), rep
    assert rep.last_realm_certificate_timestamp == last_realm_timestamp(alice, realm_id)
    assert isinstance(rename(alice, realm_id, 1, False, b"second"), RN.RepOk)
    for key_index in (0, 2):
        rep = rename(alice, realm_id, key_index, False)
        assert isinstance(rep, RN.RepBadKeyIndex), (key_index, rep)
    assert isinstance(rename(alice, p.VlobID.new(), 1, False), RN.RepRealmNotFound)
    assert isinstance(alice.share(realm_id, bob.user_id, R.MANAGER), RS.RepOk)
    assert isinstance(rename(bob, realm_id, 1, False), RN.RepAuthorNotAllowed)


# --- realm_self_promote_to_owner ----------------------------------------------------------


def test_realm_self_promote_needs_highest_role(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    SP = AC.realm_self_promote_to_owner
    owner = alice.create_user("owner")
    carol = alice.create_user("carol")
    realm_id = owner.new_realm()
    assert isinstance(owner.share(realm_id, bob.user_id, R.MANAGER), RS.RepOk)
    assert isinstance(owner.share(realm_id, carol.user_id, R.READER), RS.RepOk)
    assert isinstance(alice.revoke(owner.user_id), AC.user_revoke.RepOk)
    rep = self_promote(carol, realm_id)
    assert isinstance(rep, SP.RepAuthorNotAllowed), rep
    rep = self_promote(alice, realm_id)  # not a member at all
    assert isinstance(rep, SP.RepAuthorNotAllowed), rep
    rep = self_promote(alice, p.VlobID.new())
    assert isinstance(rep, SP.RepRealmNotFound), rep


def test_realm_self_promote_outsider(
    alice: AuthenticatedClient, mallory: AuthenticatedClient
) -> None:
    SP = AC.realm_self_promote_to_owner
    realm_id = alice.new_realm()
    assert isinstance(alice.share(realm_id, mallory.user_id, R.CONTRIBUTOR), RS.RepOk)
    rep = self_promote(mallory, realm_id)
    assert isinstance(rep, SP.RepAuthorIsOutsider), rep


def test_realm_self_promote_invalid_certificate(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    SP = AC.realm_self_promote_to_owner
    realm_id = alice.new_realm()
    for cert in (
        role_cert(alice, realm_id, bob.user_id, R.OWNER),
        role_cert(alice, realm_id, alice.user_id, R.MANAGER),
    ):
        rep = alice.send(SP.Req(realm_role_certificate=alice.sign(cert)))
        assert isinstance(rep, SP.RepInvalidCertificate), rep


# --- realm_update_archiving -----------------------------------------------------------------


def test_realm_update_archiving_deletion_planned(org: Org, alice: AuthenticatedClient) -> None:
    RA = AC.realm_update_archiving
    org.admin.patch_org(org.organization_id, realm_minimum_archiving_period_before_deletion=3600)
    realm_id = alice.new_realm()
    ts = now()
    too_soon = p.RealmArchivingConfiguration.deletion_planned(ts.add(seconds=3599))
    rep = archive(alice, realm_id, too_soon, ts)
    assert isinstance(rep, RA.RepArchivingPeriodTooShort), rep
    ok = p.RealmArchivingConfiguration.deletion_planned(ts.add(seconds=3600))
    rep = archive(alice, realm_id, ok, ts)
    assert isinstance(rep, RA.RepOk), rep
    rep = vlob_create(alice, realm_id, blob=b"x")
    assert isinstance(rep, AC.vlob_create.RepRealmArchived), rep
