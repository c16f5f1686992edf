"""Helpers of the realm, vlob, block and event tests: requests with default arguments (each returns
the parsed reply, the caller checks it), and the timestamps replies are compared with."""

from __future__ import annotations

from typing import Any

import parsec._parsec as p
from client import AC, AuthenticatedClient, SseStream, now

R = p.RealmRole

# --- realm certificates ---------------------------------------------------------------------------


def role_cert(
    author: AuthenticatedClient,
    realm_id: p.VlobID,
    user_id: p.UserID,
    role: p.RealmRole | None,
    timestamp: p.DateTime | None = None,
) -> p.RealmRoleCertificate:
    return p.RealmRoleCertificate(
        author=author.device_id,
        timestamp=timestamp or now(),
        realm_id=realm_id,
        user_id=user_id,
        role=role,
    )


def self_promote(
    client: AuthenticatedClient,
    realm_id: p.VlobID,
    timestamp: p.DateTime | None = None,
    user_id: p.UserID | None = None,
    role: p.RealmRole | None = R.OWNER,
) -> Any:
    cert = role_cert(client, realm_id, user_id or client.user_id, role, timestamp)
    return client.send(AC.realm_self_promote_to_owner.Req(realm_role_certificate=client.sign(cert)))


def archive(
    client: AuthenticatedClient,
    realm_id: p.VlobID,
    configuration: Any,
    timestamp: p.DateTime | None = None,
) -> Any:
    cert = p.RealmArchivingCertificate(
        author=client.device_id,
        timestamp=timestamp or now(),
        realm_id=realm_id,
        configuration=configuration,
    )
    return client.send(AC.realm_update_archiving.Req(archiving_certificate=client.sign(cert)))


def rename(
    client: AuthenticatedClient,
    realm_id: p.VlobID,
    key_index: int = 1,
    initial: bool = False,
    name: bytes = b"name",
    timestamp: p.DateTime | None = None,
) -> Any:
    cert = p.RealmNameCertificate(
        author=client.device_id,
        timestamp=timestamp or now(),
        realm_id=realm_id,
        key_index=key_index,
        encrypted_name=name,
    )
    return client.send(
        AC.realm_rename.Req(realm_name_certificate=client.sign(cert), initial_name_or_fail=initial)
    )


def last_realm_timestamp(client: AuthenticatedClient, realm_id: p.VlobID) -> p.DateTime:
    """The timestamp of the realm's last certificate (the realm topic)."""
    raw = client.certificates().realm_certificates[realm_id][-1]
    for cls in (
        p.RealmRoleCertificate,
        p.RealmKeyRotationCertificate,
        p.RealmNameCertificate,
        p.RealmArchivingCertificate,
    ):
        try:
            return cls.unsecure_load(raw).timestamp
        except ValueError:
            continue
    raise AssertionError("unknown realm certificate")


def last_common_timestamp(client: AuthenticatedClient) -> p.DateTime:
    """The timestamp of the organization's last common certificate (the common topic)."""
    raw = client.certificates().common_certificates[-1]
    for cls in (
        p.DeviceCertificate,
        p.UserCertificate,
        p.RevokedUserCertificate,
        p.UserUpdateCertificate,
    ):
        try:
            return cls.unsecure_load(raw).timestamp
        except ValueError:
            continue
    raise AssertionError("unknown common certificate")


# --- vlobs and blocks -----------------------------------------------------------------------------


def vlob_create(
    client: AuthenticatedClient,
    realm_id: p.VlobID,
    vlob_id: p.VlobID | None = None,
    *,
    blob: bytes = b"v1",
    key_index: int = 1,
    timestamp: p.DateTime | None = None,
) -> Any:
    return client.send(
        AC.vlob_create.Req(
            realm_id=realm_id,
            vlob_id=vlob_id or p.VlobID.new(),
            key_index=key_index,
            timestamp=timestamp or now(),
            blob=blob,
        )
    )


def vlob_update(
    client: AuthenticatedClient,
    realm_id: p.VlobID,
    vlob_id: p.VlobID,
    version: int,
    *,
    blob: bytes = b"vn",
    key_index: int = 1,
    timestamp: p.DateTime | None = None,
) -> Any:
    return client.send(
        AC.vlob_update.Req(
            realm_id=realm_id,
            vlob_id=vlob_id,
            key_index=key_index,
            timestamp=timestamp or now(),
            version=version,
            blob=blob,
        )
    )


def block_create(
    client: AuthenticatedClient,
    realm_id: p.VlobID,
    block: bytes = b"data",
    *,
    block_id: p.BlockID | None = None,
    key_index: int = 1,
) -> Any:
    return client.send(
        AC.block_create.Req(
            block_id=block_id or p.BlockID.new(),
            realm_id=realm_id,
            key_index=key_index,
            block=block,
        )
    )


def block_read(client: AuthenticatedClient, realm_id: p.VlobID, block_id: p.BlockID) -> Any:
    return client.send(AC.block_read.Req(block_id=block_id, realm_id=realm_id))


# --- events ---------------------------------------------------------------------------------------


def unit(stream: SseStream) -> Any:
    """The APIEvent of the next data message."""
    ev = stream.next_data()
    rep = ev.rep()
    assert isinstance(rep, AC.events_listen.RepOk), rep
    return rep.unit
