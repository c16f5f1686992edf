"""vlob_create, vlob_update, vlob_read_batch, vlob_read_versions, vlob_poll_changes."""

from __future__ import annotations

from typing import Any

import parsec._parsec as p
import pytest
from client import AC, AuthenticatedClient, now
from data_plane import archive
from data_plane import vlob_create as create
from data_plane import vlob_update as update

VC = AC.vlob_create
VU = AC.vlob_update
VRB = AC.vlob_read_batch
VRV = AC.vlob_read_versions
VPC = AC.vlob_poll_changes
R = p.RealmRole


def read(
    client: AuthenticatedClient,
    realm_id: p.VlobID,
    vlobs: list[p.VlobID],
    at: p.DateTime | None = None,
) -> Any:
    return client.send(VRB.Req(realm_id=realm_id, vlobs=vlobs, at=at))


@pytest.fixture
def realm(alice: AuthenticatedClient) -> p.VlobID:
    return alice.new_realm()


def test_vlob_create_and_read(alice: AuthenticatedClient, realm: p.VlobID) -> None:
    vlob_id = p.VlobID.new()
    ts = now()
    rep = create(alice, realm, vlob_id, blob=b"\x00blob\xff", timestamp=ts)
    assert isinstance(rep, VC.RepOk), rep
    rep = read(alice, realm, [vlob_id])
    assert isinstance(rep, VRB.RepOk), rep
    assert rep.items == [(vlob_id, 1, alice.device_id, 1, ts, b"\x00blob\xff")]
    certs = alice.certificates()
    common_ts = p.DeviceCertificate.unsecure_load(certs.common_certificates[-1]).timestamp
    realm_ts = p.RealmKeyRotationCertificate.unsecure_load(
        certs.realm_certificates[realm][-1]
    ).timestamp
    assert rep.needed_common_certificate_timestamp == common_ts
    assert rep.needed_realm_certificate_timestamp == realm_ts


def test_vlob_create_already_exists(alice: AuthenticatedClient, realm: p.VlobID) -> None:
    vlob_id = p.VlobID.new()
    assert isinstance(create(alice, realm, vlob_id), VC.RepOk)
    rep = create(alice, realm, vlob_id)
    assert isinstance(rep, VC.RepVlobAlreadyExists), rep


def test_vlob_create_realm_not_found(alice: AuthenticatedClient) -> None:
    rep = create(alice, p.VlobID.new())
    assert isinstance(rep, VC.RepRealmNotFound), rep


@pytest.mark.parametrize(
    "role, allowed",
    [(R.OWNER, True), (R.MANAGER, True), (R.CONTRIBUTOR, True), (R.READER, False), (None, False)],
)
def test_vlob_write_rights(
    alice: AuthenticatedClient,
    bob: AuthenticatedClient,
    realm: p.VlobID,
    role: p.RealmRole | None,
    allowed: bool,
) -> None:
    existing = p.VlobID.new()
    assert isinstance(create(alice, realm, existing), VC.RepOk)
    if role is not None:
        assert isinstance(alice.share(realm, bob.user_id, role), AC.realm_share.RepOk)
    rep_create = create(bob, realm)
    rep_update = update(bob, realm, existing, 2)
    if allowed:
        assert isinstance(rep_create, VC.RepOk), rep_create
        assert isinstance(rep_update, VU.RepOk), rep_update
    else:
        assert isinstance(rep_create, VC.RepAuthorNotAllowed), rep_create
        assert isinstance(rep_update, VU.RepAuthorNotAllowed), rep_update


def test_vlob_read_rights(
    alice: AuthenticatedClient, bob: AuthenticatedClient, realm: p.VlobID
) -> None:
    vlob_id = p.VlobID.new()
    assert isinstance(create(alice, realm, vlob_id), VC.RepOk)
    assert isinstance(read(bob, realm, [vlob_id]), VRB.RepAuthorNotAllowed)
    assert isinstance(bob.send(VPC.Req(realm_id=realm, last_checkpoint=0)), VPC.RepAuthorNotAllowed)
    assert isinstance(alice.share(realm, bob.user_id, R.READER), AC.realm_share.RepOk)
    rep = read(bob, realm, [vlob_id])
    assert isinstance(rep, VRB.RepOk), rep
    assert [item[0] for item in rep.items] == [vlob_id]
    # unshared: no more access
    assert isinstance(alice.share(realm, bob.user_id, None), AC.realm_unshare.RepOk)
    assert isinstance(read(bob, realm, [vlob_id]), VRB.RepAuthorNotAllowed)


@pytest.mark.parametrize("key_index", [0, 2])
def test_vlob_bad_key_index(alice: AuthenticatedClient, realm: p.VlobID, key_index: int) -> None:
    rep = create(alice, realm, key_index=key_index)
    assert isinstance(rep, VC.RepBadKeyIndex), rep
    realm_ts = p.RealmKeyRotationCertificate.unsecure_load(
        alice.certificates().realm_certificates[realm][-1]
    ).timestamp
    assert rep.last_realm_certificate_timestamp == realm_ts
    vlob_id = p.VlobID.new()
    assert isinstance(create(alice, realm, vlob_id), VC.RepOk)
    rep = update(alice, realm, vlob_id, 2, key_index=key_index)
    assert isinstance(rep, VU.RepBadKeyIndex), rep


def test_vlob_key_index_follows_rotation(alice: AuthenticatedClient, realm: p.VlobID) -> None:
    assert isinstance(alice.rotate_key(realm, 2, [alice.user_id]), AC.realm_rotate_key.RepOk)
    assert isinstance(create(alice, realm, key_index=1), VC.RepBadKeyIndex)
    vlob_id = p.VlobID.new()
    assert isinstance(create(alice, realm, vlob_id, key_index=2), VC.RepOk)
    assert read(alice, realm, [vlob_id]).items[0][1] == 2


@pytest.mark.parametrize("offset", [-3600, -330, 310, 3600])
def test_vlob_timestamp_out_of_ballpark(
    alice: AuthenticatedClient, realm: p.VlobID, offset: int
) -> None:
    ts = now().add(seconds=offset)
    rep = create(alice, realm, timestamp=ts)
    assert isinstance(rep, VC.RepTimestampOutOfBallpark), rep
    assert rep.client_timestamp == ts
    assert (rep.ballpark_client_early_offset, rep.ballpark_client_late_offset) == (300.0, 320.0)
    vlob_id = p.VlobID.new()
    assert isinstance(create(alice, realm, vlob_id), VC.RepOk)
    rep = update(alice, realm, vlob_id, 2, timestamp=ts)
    assert isinstance(rep, VU.RepTimestampOutOfBallpark), rep


def test_vlob_require_greater_timestamp(alice: AuthenticatedClient, realm: p.VlobID) -> None:
    realm_ts = p.RealmKeyRotationCertificate.unsecure_load(
        alice.certificates().realm_certificates[realm][-1]
    ).timestamp
    rep = create(alice, realm, timestamp=realm_ts)
    assert isinstance(rep, VC.RepRequireGreaterTimestamp), rep
    assert rep.strictly_greater_than == realm_ts


def test_vlobs_are_not_ordered_between_themselves(
    alice: AuthenticatedClient, realm: p.VlobID
) -> None:
    later = now().add(seconds=1)
    assert isinstance(create(alice, realm, timestamp=later), VC.RepOk)
    assert isinstance(create(alice, realm, timestamp=now()), VC.RepOk)


def test_vlob_update_versions(alice: AuthenticatedClient, realm: p.VlobID) -> None:
    vlob_id = p.VlobID.new()
    t1 = now()
    assert isinstance(create(alice, realm, vlob_id, blob=b"one", timestamp=t1), VC.RepOk)
    t2 = t1.add(microseconds=10)
    assert isinstance(update(alice, realm, vlob_id, 2, blob=b"two", timestamp=t2), VU.RepOk)
    for bad_version in (1, 2, 4, 0):
        rep = update(alice, realm, vlob_id, bad_version)
        assert isinstance(rep, VU.RepBadVlobVersion), (bad_version, rep)
    t3 = t2.add(microseconds=10)
    assert isinstance(update(alice, realm, vlob_id, 3, blob=b"three", timestamp=t3), VU.RepOk)
    rep = read(alice, realm, [vlob_id])
    assert rep.items == [(vlob_id, 1, alice.device_id, 3, t3, b"three")]
    # as of a past time
    rep = read(alice, realm, [vlob_id], at=t2)
    assert rep.items == [(vlob_id, 1, alice.device_id, 2, t2, b"two")]
    rep = read(alice, realm, [vlob_id], at=t1.add(microseconds=5))
    assert rep.items == [(vlob_id, 1, alice.device_id, 1, t1, b"one")]
    rep = read(alice, realm, [vlob_id], at=t1.subtract(seconds=1))
    assert rep.items == []
    # explicit versions
    rep = alice.send(VRV.Req(realm_id=realm, items=[(vlob_id, 1), (vlob_id, 3), (vlob_id, 9)]))
    assert isinstance(rep, VRV.RepOk), rep
    assert sorted(rep.items, key=lambda i: i[3]) == [
        (vlob_id, 1, alice.device_id, 1, t1, b"one"),
        (vlob_id, 1, alice.device_id, 3, t3, b"three"),
    ]


def test_vlob_update_not_found(alice: AuthenticatedClient, realm: p.VlobID) -> None:
    rep = update(alice, realm, p.VlobID.new(), 2)
    assert isinstance(rep, VU.RepVlobNotFound), rep
    rep = update(alice, p.VlobID.new(), p.VlobID.new(), 2)
    assert isinstance(rep, VU.RepRealmNotFound), rep


def test_vlob_update_in_other_realm(alice: AuthenticatedClient, realm: p.VlobID) -> None:
    other = alice.new_realm()
    vlob_id = p.VlobID.new()
    assert isinstance(create(alice, realm, vlob_id), VC.RepOk)
    rep = update(alice, other, vlob_id, 2)
    assert isinstance(rep, VU.RepVlobNotFound), rep
    assert read(alice, other, [vlob_id]).items == []


def test_vlob_update_by_other_member(
    alice: AuthenticatedClient, bob: AuthenticatedClient, realm: p.VlobID
) -> None:
    vlob_id = p.VlobID.new()
    assert isinstance(create(alice, realm, vlob_id), VC.RepOk)
    assert isinstance(alice.share(realm, bob.user_id, R.CONTRIBUTOR), AC.realm_share.RepOk)
    assert isinstance(update(bob, realm, vlob_id, 2, blob=b"bob"), VU.RepOk)
    item = read(alice, realm, [vlob_id]).items[0]
    assert (item[2], item[3], item[5]) == (bob.device_id, 2, b"bob")


def test_vlob_read_batch(alice: AuthenticatedClient, realm: p.VlobID) -> None:
    ids = [p.VlobID.new() for _ in range(3)]
    for i, vlob_id in enumerate(ids):
        assert isinstance(create(alice, realm, vlob_id, blob=bytes([i])), VC.RepOk)
    unknown = p.VlobID.new()
    rep = read(alice, realm, [*ids, unknown])
    assert isinstance(rep, VRB.RepOk), rep
    assert {item[0]: item[5] for item in rep.items} == {
        ids[0]: b"\x00",
        ids[1]: b"\x01",
        ids[2]: b"\x02",
    }
    assert read(alice, realm, []).items == []
    rep = read(alice, p.VlobID.new(), ids)
    assert isinstance(rep, VRB.RepRealmNotFound), rep


def test_vlob_read_batch_too_many_elements(alice: AuthenticatedClient, realm: p.VlobID) -> None:
    rep = read(alice, realm, [p.VlobID.new() for _ in range(1001)])
    assert isinstance(rep, VRB.RepTooManyElements), rep
    rep = read(alice, realm, [p.VlobID.new() for _ in range(1000)])
    assert isinstance(rep, VRB.RepOk), rep


def test_vlob_poll_changes(alice: AuthenticatedClient, realm: p.VlobID) -> None:
    rep = alice.send(VPC.Req(realm_id=realm, last_checkpoint=0))
    assert isinstance(rep, VPC.RepOk), rep
    assert (rep.changes, rep.current_checkpoint) == ([], 0)
    a, b = p.VlobID.new(), p.VlobID.new()
    assert isinstance(create(alice, realm, a), VC.RepOk)
    assert isinstance(create(alice, realm, b), VC.RepOk)
    assert isinstance(update(alice, realm, a, 2), VU.RepOk)
    rep = alice.send(VPC.Req(realm_id=realm, last_checkpoint=0))
    assert rep.current_checkpoint == 3
    assert sorted(rep.changes, key=lambda c: c[0].hex) == sorted(
        [(a, 2), (b, 1)], key=lambda c: c[0].hex
    )
    rep = alice.send(VPC.Req(realm_id=realm, last_checkpoint=2))
    assert (rep.changes, rep.current_checkpoint) == ([(a, 2)], 3)
    rep = alice.send(VPC.Req(realm_id=realm, last_checkpoint=3))
    assert (rep.changes, rep.current_checkpoint) == ([], 3)
    rep = alice.send(VPC.Req(realm_id=p.VlobID.new(), last_checkpoint=0))
    assert isinstance(rep, VPC.RepRealmNotFound), rep


def test_vlob_poll_changes_per_realm(alice: AuthenticatedClient, realm: p.VlobID) -> None:
    other = alice.new_realm()
    assert isinstance(create(alice, other), VC.RepOk)
    rep = alice.send(VPC.Req(realm_id=realm, last_checkpoint=0))
    assert (rep.changes, rep.current_checkpoint) == ([], 0)


def test_vlob_archived_realm(alice: AuthenticatedClient, realm: p.VlobID) -> None:
    vlob_id = p.VlobID.new()
    assert isinstance(create(alice, realm, vlob_id), VC.RepOk)
    rep = archive(alice, realm, p.RealmArchivingConfiguration.ARCHIVED)
    assert isinstance(rep, AC.realm_update_archiving.RepOk), rep
    assert isinstance(create(alice, realm), VC.RepRealmArchived)
    assert isinstance(update(alice, realm, vlob_id, 2), VU.RepRealmArchived)
    # still readable
    assert len(read(alice, realm, [vlob_id]).items) == 1
    rep = archive(alice, realm, p.RealmArchivingConfiguration.AVAILABLE)
    assert isinstance(rep, AC.realm_update_archiving.RepOk), rep
    assert isinstance(update(alice, realm, vlob_id, 2), VU.RepOk)
