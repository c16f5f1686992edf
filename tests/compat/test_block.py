"""block_create and block_read (PostgreSQL blockstore on both targets)."""

from __future__ import annotations

import parsec._parsec as p
import pytest
from client import AC, AuthenticatedClient
from data_plane import archive
from data_plane import block_create as create
from data_plane import block_read as read

BC = AC.block_create
BR = AC.block_read
R = p.RealmRole


@pytest.fixture
def realm(alice: AuthenticatedClient) -> p.VlobID:
    return alice.new_realm()


@pytest.mark.parametrize("size", [0, 1, 512 * 1024])
def test_block_create_and_read(alice: AuthenticatedClient, realm: p.VlobID, size: int) -> None:
    block_id = p.BlockID.new()
    data = bytes(i % 251 for i in range(size))
    rep = create(alice, realm, data, block_id=block_id)
    assert isinstance(rep, BC.RepOk), rep
    rep = read(alice, realm, block_id)
    assert isinstance(rep, BR.RepOk), rep
    assert rep.block == data
    assert rep.key_index == 1
    realm_ts = p.RealmKeyRotationCertificate.unsecure_load(
        alice.certificates().realm_certificates[realm][-1]
    ).timestamp
    assert rep.needed_realm_certificate_timestamp == realm_ts


def test_block_already_exists(alice: AuthenticatedClient, realm: p.VlobID) -> None:
    block_id = p.BlockID.new()
    assert isinstance(create(alice, realm, b"one", block_id=block_id), BC.RepOk)
    rep = create(alice, realm, b"two", block_id=block_id)
    assert isinstance(rep, BC.RepBlockAlreadyExists), rep
    assert read(alice, realm, block_id).block == b"one"


def test_block_not_found(alice: AuthenticatedClient, realm: p.VlobID) -> None:
    rep = read(alice, realm, p.BlockID.new())
    assert isinstance(rep, BR.RepBlockNotFound), rep


def test_block_of_other_realm(alice: AuthenticatedClient, realm: p.VlobID) -> None:
    other = alice.new_realm()
    block_id = p.BlockID.new()
    assert isinstance(create(alice, realm, block_id=block_id), BC.RepOk)
    rep = read(alice, other, block_id)
    assert isinstance(rep, BR.RepBlockNotFound), rep


def test_block_realm_not_found(alice: AuthenticatedClient) -> None:
    assert isinstance(create(alice, p.VlobID.new()), BC.RepRealmNotFound)
    assert isinstance(read(alice, p.VlobID.new(), p.BlockID.new()), BR.RepRealmNotFound)


@pytest.mark.parametrize("key_index", [0, 2])
def test_block_bad_key_index(alice: AuthenticatedClient, realm: p.VlobID, key_index: int) -> None:
    rep = create(alice, realm, key_index=key_index)
    assert isinstance(rep, BC.RepBadKeyIndex), rep


def test_block_key_index_kept(alice: AuthenticatedClient, realm: p.VlobID) -> None:
    block_id = p.BlockID.new()
    assert isinstance(create(alice, realm, block_id=block_id), BC.RepOk)
    assert isinstance(alice.rotate_key(realm, 2, [alice.user_id]), AC.realm_rotate_key.RepOk)
    rep = read(alice, realm, block_id)
    assert rep.key_index == 1


@pytest.mark.parametrize(
    "role, can_write, can_read",
    [
        (R.OWNER, True, True),
        (R.MANAGER, True, True),
        (R.CONTRIBUTOR, True, True),
        (R.READER, False, True),
        (None, False, False),
    ],
)
def test_block_rights(
    alice: AuthenticatedClient,
    bob: AuthenticatedClient,
    realm: p.VlobID,
    role: p.RealmRole | None,
    can_write: bool,
    can_read: bool,
) -> None:
    block_id = p.BlockID.new()
    assert isinstance(create(alice, realm, block_id=block_id), BC.RepOk)
    if role is not None:
        assert isinstance(alice.share(realm, bob.user_id, role), AC.realm_share.RepOk)
    rep = create(bob, realm)
    assert isinstance(rep, BC.RepOk if can_write else BC.RepAuthorNotAllowed), rep
    rep = read(bob, realm, block_id)
    assert isinstance(rep, BR.RepOk if can_read else BR.RepAuthorNotAllowed), rep


def test_block_archived_realm(alice: AuthenticatedClient, realm: p.VlobID) -> None:
    block_id = p.BlockID.new()
    assert isinstance(create(alice, realm, block_id=block_id), BC.RepOk)
    assert isinstance(
        archive(alice, realm, p.RealmArchivingConfiguration.ARCHIVED),
        AC.realm_update_archiving.RepOk,
    )
    assert isinstance(create(alice, realm), BC.RepRealmArchived)
    assert isinstance(read(alice, realm, block_id), BR.RepOk)
