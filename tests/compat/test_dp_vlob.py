"""Data plane, vlobs: the order in which the server reports problems, read replies (order,
duplicates, `at`, needed timestamps), poll_changes checkpoints, and the sizes organization_info /
stats count."""

from __future__ import annotations

import parsec._parsec as p
import pytest
from client import AC, AuthenticatedClient, Org, build_user_certs, now, user_create_req
from data_plane import archive, last_common_timestamp, last_realm_timestamp
from data_plane import vlob_create as create
from data_plane import vlob_update as update

VC = AC.vlob_create
VU = AC.vlob_update
VRB = AC.vlob_read_batch
VRV = AC.vlob_read_versions
VPC = AC.vlob_poll_changes
R = p.RealmRole


@pytest.fixture
def realm(alice: AuthenticatedClient) -> p.VlobID:
    return alice.new_realm()


# --- order of the checks ----------------------------------------------------------------------


def test_vlob_create_archived_before_rights(
    alice: AuthenticatedClient, bob: AuthenticatedClient, realm: p.VlobID
) -> None:
    rep = archive(alice, realm, p.RealmArchivingConfiguration.ARCHIVED)
    assert isinstance(rep, AC.realm_update_archiving.RepOk), rep
    # bob has no role at all, yet the realm being archived is reported first
    assert isinstance(create(bob, realm), VC.RepRealmArchived)
    assert isinstance(update(bob, realm, p.VlobID.new(), 2), VU.RepRealmArchived)


def test_vlob_write_rights_before_key_index(
    alice: AuthenticatedClient, bob: AuthenticatedClient, realm: p.VlobID
) -> None:
    assert isinstance(alice.share(realm, bob.user_id, R.READER), AC.realm_share.RepOk)
    assert isinstance(create(bob, realm, key_index=7), VC.RepAuthorNotAllowed)
    assert isinstance(update(bob, realm, p.VlobID.new(), 2, key_index=7), VU.RepAuthorNotAllowed)


def test_vlob_key_index_before_version_and_ballpark(
    alice: AuthenticatedClient, realm: p.VlobID
) -> None:
    rep = update(alice, realm, p.VlobID.new(), 5, key_index=3, timestamp=now().add(seconds=-3600))
    assert isinstance(rep, VU.RepBadKeyIndex), rep
    assert rep.last_realm_certificate_timestamp == last_realm_timestamp(alice, realm)


def test_vlob_update_version_before_ballpark(alice: AuthenticatedClient, realm: p.VlobID) -> None:
    vlob_id = p.VlobID.new()
    assert isinstance(create(alice, realm, vlob_id), VC.RepOk)
    late = now().add(seconds=-3600)
    assert isinstance(update(alice, realm, p.VlobID.new(), 2, timestamp=late), VU.RepVlobNotFound)
    assert isinstance(update(alice, realm, vlob_id, 3, timestamp=late), VU.RepBadVlobVersion)
    assert isinstance(
        update(alice, realm, vlob_id, 2, timestamp=late), VU.RepTimestampOutOfBallpark
    )


def test_vlob_create_ballpark_and_causality_before_existence(
    alice: AuthenticatedClient, realm: p.VlobID
) -> None:
    vlob_id = p.VlobID.new()
    assert isinstance(create(alice, realm, vlob_id), VC.RepOk)
    rep = create(alice, realm, vlob_id, timestamp=now().add(seconds=3600))
    assert isinstance(rep, VC.RepTimestampOutOfBallpark), rep
    realm_ts = last_realm_timestamp(alice, realm)
    rep = create(alice, realm, vlob_id, timestamp=realm_ts)
    assert isinstance(rep, VC.RepRequireGreaterTimestamp), rep
    assert rep.strictly_greater_than == realm_ts
    assert isinstance(create(alice, realm, vlob_id), VC.RepVlobAlreadyExists)


def test_vlob_require_greater_timestamp_common_first(
    alice: AuthenticatedClient, realm: p.VlobID
) -> None:
    """A timestamp older than both topics is compared with the common topic first, even when the
    realm topic is the newer one."""
    base = now()
    certs = build_user_certs(
        alice.organization_id,
        alice.device,
        alice.device.signing_key,
        name="bob",
        timestamp=base.add(seconds=1),
    )
    assert isinstance(alice.send(user_create_req(certs)), AC.user_create.RepOk)
    assert isinstance(
        alice.rotate_key(realm, 2, [alice.user_id], timestamp=base.add(seconds=2)),
        AC.realm_rotate_key.RepOk,
    )
    rep = create(alice, realm, key_index=2, timestamp=base)
    assert isinstance(rep, VC.RepRequireGreaterTimestamp), rep
    assert rep.strictly_greater_than == base.add(seconds=1)
    rep = create(alice, realm, key_index=2, timestamp=base.add(microseconds=1_500_000))
    assert isinstance(rep, VC.RepRequireGreaterTimestamp), rep
    assert rep.strictly_greater_than == base.add(seconds=2)
    assert isinstance(
        create(alice, realm, key_index=2, timestamp=base.add(microseconds=2_000_001)), VC.RepOk
    )


def test_vlob_other_org_realm_not_found(
    org: Org, alice: AuthenticatedClient, realm: p.VlobID
) -> None:
    from client import bootstrap_org

    other = bootstrap_org(org.http, org.admin)
    vlob_id = p.VlobID.new()
    assert isinstance(create(alice, realm, vlob_id), VC.RepOk)
    assert isinstance(create(other.alice, realm), VC.RepRealmNotFound)
    assert isinstance(
        other.alice.send(VRB.Req(realm_id=realm, vlobs=[vlob_id], at=None)), VRB.RepRealmNotFound
    )


# --- reads ------------------------------------------------------------------------------------


def test_vlob_read_batch_order_and_duplicates(alice: AuthenticatedClient, realm: p.VlobID) -> None:
    a, b = p.VlobID.new(), p.VlobID.new()
    ta, tb = now(), now().add(microseconds=1)
    assert isinstance(create(alice, realm, a, blob=b"a", timestamp=ta), VC.RepOk)
    assert isinstance(create(alice, realm, b, blob=b"b", timestamp=tb), VC.RepOk)
    rep = alice.send(VRB.Req(realm_id=realm, vlobs=[b, p.VlobID.new(), a, b], at=None))
    assert isinstance(rep, VRB.RepOk), rep
    assert rep.items == [
        (b, 1, alice.device_id, 1, tb, b"b"),
        (a, 1, alice.device_id, 1, ta, b"a"),
        (b, 1, alice.device_id, 1, tb, b"b"),
    ]
    assert rep.needed_realm_certificate_timestamp == last_realm_timestamp(alice, realm)
    assert rep.needed_common_certificate_timestamp == last_common_timestamp(alice)


def test_vlob_read_needed_timestamps_follow_topics(
    alice: AuthenticatedClient, realm: p.VlobID
) -> None:
    vlob_id = p.VlobID.new()
    assert isinstance(create(alice, realm, vlob_id), VC.RepOk)
    alice.create_user("bob")
    assert isinstance(alice.rotate_key(realm, 2, [alice.user_id]), AC.realm_rotate_key.RepOk)
    for req in (
        VRB.Req(realm_id=realm, vlobs=[vlob_id], at=None),
        VRV.Req(realm_id=realm, items=[(vlob_id, 1)]),
    ):
        rep = alice.send(req)
        assert rep.needed_common_certificate_timestamp == last_common_timestamp(alice)
        assert rep.needed_realm_certificate_timestamp == last_realm_timestamp(alice, realm)
        assert [item[1] for item in rep.items] == [1]  # the key index it was written with


def test_vlob_read_at_exact_timestamps(alice: AuthenticatedClient, realm: p.VlobID) -> None:
    vlob_id = p.VlobID.new()
    t1 = now()
    t2 = t1.add(seconds=2)
    assert isinstance(create(alice, realm, vlob_id, blob=b"1", timestamp=t1), VC.RepOk)
    assert isinstance(update(alice, realm, vlob_id, 2, blob=b"2", timestamp=t2), VU.RepOk)
    for at, expected in (
        (t1, b"1"),
        (t2.subtract(microseconds=1), b"1"),
        (t2, b"2"),
        (t2.add(seconds=9), b"2"),
    ):
        rep = alice.send(VRB.Req(realm_id=realm, vlobs=[vlob_id], at=at))
        assert [item[5] for item in rep.items] == [expected], at
    rep = alice.send(VRB.Req(realm_id=realm, vlobs=[vlob_id], at=t1.subtract(microseconds=1)))
    assert rep.items == []


def test_vlob_read_versions_order_and_unknown(alice: AuthenticatedClient, realm: p.VlobID) -> None:
    vlob_id = p.VlobID.new()
    assert isinstance(create(alice, realm, vlob_id, blob=b"1"), VC.RepOk)
    assert isinstance(update(alice, realm, vlob_id, 2, blob=b"2"), VU.RepOk)
    rep = alice.send(
        VRV.Req(
            realm_id=realm,
            items=[
                (vlob_id, 2),
                (vlob_id, 0),
                (p.VlobID.new(), 1),
                (vlob_id, 1),
                (vlob_id, 2),
                (vlob_id, 3),
            ],
        )
    )
    assert isinstance(rep, VRV.RepOk), rep
    assert [(item[3], item[5]) for item in rep.items] == [(2, b"2"), (1, b"1"), (2, b"2")]


def test_vlob_read_versions_errors(
    alice: AuthenticatedClient, bob: AuthenticatedClient, realm: p.VlobID
) -> None:
    vlob_id = p.VlobID.new()
    assert isinstance(create(alice, realm, vlob_id), VC.RepOk)
    assert isinstance(
        bob.send(VRV.Req(realm_id=realm, items=[(vlob_id, 1)])), VRV.RepAuthorNotAllowed
    )
    assert isinstance(alice.send(VRV.Req(realm_id=p.VlobID.new(), items=[])), VRV.RepRealmNotFound)
    rep = alice.send(VRV.Req(realm_id=realm, items=[(vlob_id, 1)] * 1001))
    assert isinstance(rep, VRV.RepTooManyElements), rep
    rep = alice.send(VRV.Req(realm_id=realm, items=[(vlob_id, 1)] * 1000))
    assert isinstance(rep, VRV.RepOk), rep
    assert len(rep.items) == 1000


def test_vlob_too_many_elements_before_realm_checks(bob: AuthenticatedClient) -> None:
    rep = bob.send(VRB.Req(realm_id=p.VlobID.new(), vlobs=[p.VlobID.new()] * 1001, at=None))
    assert isinstance(rep, VRB.RepTooManyElements), rep


def test_vlob_readable_while_archived_and_by_reader(
    alice: AuthenticatedClient, bob: AuthenticatedClient, realm: p.VlobID
) -> None:
    vlob_id = p.VlobID.new()
    assert isinstance(create(alice, realm, vlob_id), VC.RepOk)
    assert isinstance(alice.share(realm, bob.user_id, R.READER), AC.realm_share.RepOk)
    rep = archive(alice, realm, p.RealmArchivingConfiguration.ARCHIVED)
    assert isinstance(rep, AC.realm_update_archiving.RepOk), rep
    assert len(bob.send(VRB.Req(realm_id=realm, vlobs=[vlob_id], at=None)).items) == 1
    rep = bob.send(VPC.Req(realm_id=realm, last_checkpoint=0))
    assert (rep.changes, rep.current_checkpoint) == ([(vlob_id, 1)], 1)


# --- poll_changes -----------------------------------------------------------------------------


def test_vlob_poll_changes_checkpoints(alice: AuthenticatedClient, realm: p.VlobID) -> None:
    a, b, c = p.VlobID.new(), p.VlobID.new(), p.VlobID.new()
    assert isinstance(create(alice, realm, a), VC.RepOk)  # 1
    assert isinstance(create(alice, realm, b), VC.RepOk)  # 2
    assert isinstance(update(alice, realm, a, 2), VU.RepOk)  # 3
    assert isinstance(create(alice, realm, c), VC.RepOk)  # 4
    assert isinstance(update(alice, realm, b, 2), VU.RepOk)  # 5
    assert isinstance(update(alice, realm, a, 3), VU.RepOk)  # 6
    rep = alice.send(VPC.Req(realm_id=realm, last_checkpoint=0))
    # each vlob once, latest version, in the order of its first change
    assert (rep.changes, rep.current_checkpoint) == ([(a, 3), (b, 2), (c, 1)], 6)
    rep = alice.send(VPC.Req(realm_id=realm, last_checkpoint=3))
    assert (rep.changes, rep.current_checkpoint) == ([(c, 1), (b, 2), (a, 3)], 6)
    rep = alice.send(VPC.Req(realm_id=realm, last_checkpoint=5))
    assert (rep.changes, rep.current_checkpoint) == ([(a, 3)], 6)
    # failed writes do not count
    assert isinstance(update(alice, realm, a, 9), VU.RepBadVlobVersion)
    assert isinstance(create(alice, realm, a), VC.RepVlobAlreadyExists)
    rep = alice.send(VPC.Req(realm_id=realm, last_checkpoint=6))
    assert (rep.changes, rep.current_checkpoint) == ([], 6)


@pytest.mark.parametrize("beyond", [2, 1000])
def test_vlob_poll_changes_beyond_current(
    alice: AuthenticatedClient, realm: p.VlobID, beyond: int
) -> None:
    """A checkpoint from the future is echoed back (the official server answers that way; it fails
    with HTTP 500 beyond 2**31 - 1, where ours keeps echoing: see tests/integration)."""
    assert isinstance(create(alice, realm), VC.RepOk)
    rep = alice.send(VPC.Req(realm_id=realm, last_checkpoint=beyond))
    assert isinstance(rep, VPC.RepOk), rep
    assert (rep.changes, rep.current_checkpoint) == ([], beyond)


def test_vlob_poll_changes_rights(
    alice: AuthenticatedClient, bob: AuthenticatedClient, realm: p.VlobID
) -> None:
    assert isinstance(create(alice, realm), VC.RepOk)
    assert isinstance(bob.send(VPC.Req(realm_id=realm, last_checkpoint=0)), VPC.RepAuthorNotAllowed)
    assert isinstance(alice.share(realm, bob.user_id, R.READER), AC.realm_share.RepOk)
    assert bob.send(VPC.Req(realm_id=realm, last_checkpoint=0)).current_checkpoint == 1
    assert isinstance(alice.share(realm, bob.user_id, None), AC.realm_unshare.RepOk)
    assert isinstance(bob.send(VPC.Req(realm_id=realm, last_checkpoint=0)), VPC.RepAuthorNotAllowed)


# --- sizes ------------------------------------------------------------------------------------


def test_vlob_sizes_counted(org: Org, alice: AuthenticatedClient, realm: p.VlobID) -> None:
    vlob_id = p.VlobID.new()
    assert isinstance(create(alice, realm, vlob_id, blob=b"x" * 100), VC.RepOk)
    assert isinstance(update(alice, realm, vlob_id, 2, blob=b"y" * 50), VU.RepOk)
    assert isinstance(create(alice, alice.new_realm(), blob=b"z" * 7), VC.RepOk)
    # refused writes are not counted
    assert isinstance(update(alice, realm, vlob_id, 5, blob=b"w" * 1000), VU.RepBadVlobVersion)
    rep = alice.send(AC.organization_info.Req())
    assert isinstance(rep, AC.organization_info.RepOk), rep
    assert (rep.total_metadata_bytes, rep.total_block_bytes) == (157, 0)
    r = org.admin.request("GET", f"/organizations/{org.organization_id}/stats")
    assert r.status_code == 200, r.text
    stats = r.json()
    assert (stats["metadata_size"], stats["data_size"], stats["realms"]) == (157, 0, 2)
