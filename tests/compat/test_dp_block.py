"""Data plane, blocks: the order in which the server reports problems, and the sizes it counts."""

from __future__ import annotations

import parsec._parsec as p
from client import AC, AuthenticatedClient, Org, bootstrap_org, now
from data_plane import archive
from data_plane import block_create as create
from data_plane import block_read as read

BC = AC.block_create
BR = AC.block_read
R = p.RealmRole


def test_block_create_key_index_before_rights(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    realm = alice.new_realm()
    # unlike vlobs, the key index is checked before the author's role
    rep = create(bob, realm, key_index=5)
    assert isinstance(rep, BC.RepBadKeyIndex), rep
    assert isinstance(create(bob, realm), BC.RepAuthorNotAllowed)
    assert isinstance(alice.share(realm, bob.user_id, R.READER), AC.realm_share.RepOk)
    assert isinstance(create(bob, realm, key_index=5), BC.RepBadKeyIndex)
    assert isinstance(create(bob, realm), BC.RepAuthorNotAllowed)


def test_block_create_archived_before_key_index(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    realm = alice.new_realm()
    rep = archive(alice, realm, p.RealmArchivingConfiguration.ARCHIVED)
    assert isinstance(rep, AC.realm_update_archiving.RepOk), rep
    assert isinstance(create(alice, realm, key_index=5), BC.RepRealmArchived)
    assert isinstance(create(bob, realm), BC.RepRealmArchived)


def test_block_create_rights_before_existence(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    realm = alice.new_realm()
    block_id = p.BlockID.new()
    assert isinstance(create(alice, realm, block_id=block_id), BC.RepOk)
    assert isinstance(create(bob, realm, block_id=block_id), BC.RepAuthorNotAllowed)
    assert isinstance(create(alice, realm, block_id=block_id, key_index=2), BC.RepBadKeyIndex)


def test_block_read_not_found_before_rights(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    realm = alice.new_realm()
    block_id = p.BlockID.new()
    assert isinstance(create(alice, realm, block_id=block_id), BC.RepOk)
    # bob has no role: an unknown block is reported as such, a known one as not allowed
    assert isinstance(read(bob, realm, p.BlockID.new()), BR.RepBlockNotFound)
    assert isinstance(read(bob, realm, block_id), BR.RepAuthorNotAllowed)


def test_block_other_org(org: Org, alice: AuthenticatedClient) -> None:
    realm = alice.new_realm()
    block_id = p.BlockID.new()
    assert isinstance(create(alice, realm, block_id=block_id), BC.RepOk)
    other = bootstrap_org(org.http, org.admin).alice
    assert isinstance(read(other, realm, block_id), BR.RepRealmNotFound)
    assert isinstance(create(other, realm), BC.RepRealmNotFound)


def test_block_unshared_reader(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    realm = alice.new_realm()
    block_id = p.BlockID.new()
    assert isinstance(create(alice, realm, b"secret", block_id=block_id), BC.RepOk)
    assert isinstance(alice.share(realm, bob.user_id, R.CONTRIBUTOR), AC.realm_share.RepOk)
    assert read(bob, realm, block_id).block == b"secret"
    mine = p.BlockID.new()
    assert isinstance(create(bob, realm, b"bob's", block_id=mine), BC.RepOk)
    assert isinstance(alice.share(realm, bob.user_id, None), AC.realm_unshare.RepOk)
    assert isinstance(read(bob, realm, block_id), BR.RepAuthorNotAllowed)
    assert isinstance(create(bob, realm), BC.RepAuthorNotAllowed)
    assert read(alice, realm, mine).block == b"bob's"


def test_block_read_needed_timestamp_follows_realm(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    realm = alice.new_realm()
    block_id = p.BlockID.new()
    assert isinstance(create(alice, realm, block_id=block_id), BC.RepOk)
    ts = now()
    assert isinstance(alice.share(realm, bob.user_id, R.READER, timestamp=ts), AC.realm_share.RepOk)
    rep = read(bob, realm, block_id)
    assert (rep.key_index, rep.needed_realm_certificate_timestamp) == (1, ts)


def test_block_sizes_counted(org: Org, alice: AuthenticatedClient) -> None:
    realm = alice.new_realm()
    assert isinstance(create(alice, realm, b"a" * 1000), BC.RepOk)
    assert isinstance(create(alice, realm, b""), BC.RepOk)
    block_id = p.BlockID.new()
    assert isinstance(create(alice, realm, b"b" * 24, block_id=block_id), BC.RepOk)
    assert isinstance(
        create(alice, realm, b"c" * 5000, block_id=block_id), BC.RepBlockAlreadyExists
    )
    rep = alice.send(AC.organization_info.Req())
    assert isinstance(rep, AC.organization_info.RepOk), rep
    assert (rep.total_block_bytes, rep.total_metadata_bytes) == (1024, 0)
    r = org.admin.request("GET", f"/organizations/{org.organization_id}/stats")
    assert r.status_code == 200, r.text
    assert (r.json()["data_size"], r.json()["metadata_size"]) == (1024, 0)
    r = org.admin.request("GET", "/stats", params={"format": "json"})
    assert r.status_code == 200, r.text
    [mine] = [s for s in r.json()["stats"] if s["organization_id"] == org.organization_id]
    assert (mine["data_size"], mine["metadata_size"], mine["realms"]) == (1024, 0, 1)
