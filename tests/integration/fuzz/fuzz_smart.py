"""Strategies for requests that are *valid* beyond their types: the certificate-carrying commands
with consistent certificates (same ids and timestamps across the set, signed by the author, for
the realm the server knows), so the fuzz reaches the database writes, not only invalid_certificate.

`fuzz_schema.request()` gives breadth (every command, any well-typed value); these give depth. The
mutation step (`fuzz_schema.mutate`) is applied on top by the tests, and sometimes inside a
certificate before it is signed.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from typing import Any

import nacl.signing
from fuzz_schema import _EMAILS, _LABELS, _TIMESTAMPS, mutate, near_now
from fuzz_support import Device, serialize, sign_serialized
from hypothesis import strategies as st

PROFILES = ("ADMIN", "STANDARD", "OUTSIDER")
ROLES = ("OWNER", "MANAGER", "CONTRIBUTOR", "READER")


@dataclasses.dataclass(eq=False)
class World:
    """What the fuzzed organization holds (see fuzz_support.FuzzServer)."""

    me: Device  # alice, ADMIN, OWNER of realm_id
    peer: Device  # bob, STANDARD, CONTRIBUTOR of realm_id
    realm_id: uuid.UUID
    vlob_id: uuid.UUID
    fresh_root: nacl.signing.SigningKey  # root key for bootstrapping the fresh organization
    fresh_token: bytes
    stranger: nacl.signing.SigningKey


@st.composite
def _signed(
    draw: st.DrawFn,
    world: World,
    content: dict[str, Any],
    key: nacl.signing.SigningKey | None = None,
    broken: bool = False,
) -> bytes:
    """Sign with the author's key; a `broken` certificate has mutated content or another signer."""
    signer = key or world.me.signing_key
    if broken:
        if draw(st.booleans()):
            content = draw(mutate(content, protect=("type",)))
        else:
            signer = draw(
                st.sampled_from([world.stranger, world.peer.signing_key, world.fresh_root])
            )
    return sign_serialized(signer, serialize(content))


def _broken(count: int = 1) -> st.SearchStrategy[int]:
    """Which certificate of the request to break (-1: none, 3 times out of 4)."""
    return st.one_of(st.just(-1), st.just(-1), st.just(-1), st.integers(0, count - 1))


def _user_ids(world: World) -> st.SearchStrategy[uuid.UUID]:
    return st.one_of(
        st.uuids(), st.uuids(), st.uuids(), st.sampled_from([world.me.user_id, world.peer.user_id])
    )


@st.composite
def new_user(draw: st.DrawFn, world: World, bootstrap: bool) -> dict[str, Any]:
    """The four certificates of user_create (author alice) or organization_bootstrap (root)."""
    author = None if bootstrap else world.me.device_id
    key = world.fresh_root if bootstrap else world.me.signing_key
    ts = draw(_TIMESTAMPS)
    user_id = draw(_user_ids(world))
    device_id = draw(st.one_of(st.uuids(), st.just(world.me.device_id)))
    profile = "ADMIN" if bootstrap and draw(st.integers(0, 5)) else draw(st.sampled_from(PROFILES))
    human = [draw(_EMAILS), draw(_LABELS)]
    user = {
        "type": "user_certificate",
        "author": author,
        "timestamp": ts,
        "user_id": user_id,
        "human_handle": human,
        "public_key": draw(st.binary(min_size=32, max_size=32)),
        "algorithm": "X25519_XSALSA20_POLY1305",
        "profile": profile,
    }
    device = {
        "type": "device_certificate",
        "purpose": "STANDARD",
        "author": author,
        "timestamp": ts,
        "user_id": user_id,
        "device_id": device_id,
        "device_label": draw(_LABELS),
        "verify_key": draw(st.binary(min_size=32, max_size=32)),
        "algorithm": "ED25519",
    }
    if draw(st.booleans()):
        del device["purpose"]  # NonRequiredOption, absent = STANDARD
    bad = draw(_broken(4))
    return {
        "user_certificate": draw(_signed(world, user, key, bad == 0)),
        "redacted_user_certificate": draw(
            _signed(world, {**user, "human_handle": None}, key, bad == 1)
        ),
        "device_certificate": draw(_signed(world, device, key, bad == 2)),
        "redacted_device_certificate": draw(
            _signed(world, {**device, "device_label": None}, key, bad == 3)
        ),
    }


@st.composite
def organization_bootstrap(draw: st.DrawFn, world: World) -> dict[str, Any]:
    return {
        "cmd": "organization_bootstrap",
        "bootstrap_token": draw(st.sampled_from([world.fresh_token] * 4 + [None, b"\x00" * 16])),
        "root_verify_key": bytes(world.fresh_root.verify_key),
        "sequester_authority_certificate": None,
        **draw(new_user(world, bootstrap=True)),
    }


@st.composite
def user_create(draw: st.DrawFn, world: World) -> dict[str, Any]:
    return {"cmd": "user_create", **draw(new_user(world, bootstrap=False))}


@st.composite
def device_create(draw: st.DrawFn, world: World) -> dict[str, Any]:
    me = world.me
    device = {
        "type": "device_certificate",
        "purpose": draw(st.sampled_from(["STANDARD", "SHAMIR_RECOVERY"])),
        "author": me.device_id,
        "timestamp": draw(_TIMESTAMPS),
        "user_id": me.user_id,
        "device_id": draw(st.one_of(st.uuids(), st.just(me.device_id))),
        "device_label": draw(_LABELS),
        "verify_key": draw(st.binary(min_size=32, max_size=32)),
        "algorithm": "ED25519",
    }
    bad = draw(_broken(2))
    return {
        "cmd": "device_create",
        "device_certificate": draw(_signed(world, device, broken=bad == 0)),
        "redacted_device_certificate": draw(
            _signed(world, {**device, "device_label": None}, broken=bad == 1)
        ),
    }


def _realm_ids(world: World) -> st.SearchStrategy[uuid.UUID]:
    return st.sampled_from([world.realm_id] * 4 + [world.vlob_id]).flatmap(
        lambda r: st.one_of(st.just(r), st.just(r), st.uuids())
    )


def _role_cert(
    world: World, realm: uuid.UUID, user: uuid.UUID, role: str | None, ts: Any
) -> dict[str, Any]:
    return {
        "type": "realm_role_certificate",
        "author": world.me.device_id,
        "timestamp": ts,
        "realm_id": realm,
        "user_id": user,
        "role": role,
    }


@st.composite
def realm_create(draw: st.DrawFn, world: World) -> dict[str, Any]:
    realm = draw(st.one_of(st.uuids(), st.uuids(), st.just(world.realm_id)))
    cert = _role_cert(
        world,
        realm,
        world.me.user_id,
        draw(st.sampled_from(["OWNER"] * 5 + ["READER", None])),
        draw(_TIMESTAMPS),
    )
    return {
        "cmd": "realm_create",
        "realm_role_certificate": draw(_signed(world, cert, broken=draw(_broken()) == 0)),
    }


@st.composite
def realm_share(draw: st.DrawFn, world: World) -> dict[str, Any]:
    user = draw(
        st.sampled_from([world.peer.user_id] * 3 + [world.me.user_id]).flatmap(
            lambda u: st.one_of(st.just(u), st.just(u), st.uuids())
        )
    )
    cert = _role_cert(
        world,
        draw(_realm_ids(world)),
        user,
        draw(st.sampled_from([*ROLES, None])),
        draw(_TIMESTAMPS),
    )
    return {
        "cmd": "realm_share",
        "realm_role_certificate": draw(_signed(world, cert, broken=draw(_broken()) == 0)),
        "recipient_keys_bundle_access": draw(st.binary(max_size=40)),
        "key_index": draw(st.sampled_from([1, 1, 1, 0, 2])),
    }


@st.composite
def realm_unshare(draw: st.DrawFn, world: World) -> dict[str, Any]:
    user = draw(st.one_of(st.just(world.peer.user_id), st.uuids(), st.just(world.me.user_id)))
    role = draw(st.sampled_from([None] * 5 + ["READER"]))
    cert = _role_cert(world, draw(_realm_ids(world)), user, role, draw(_TIMESTAMPS))
    return {
        "cmd": "realm_unshare",
        "realm_role_certificate": draw(_signed(world, cert, broken=draw(_broken()) == 0)),
    }


@st.composite
def realm_self_promote_to_owner(draw: st.DrawFn, world: World) -> dict[str, Any]:
    cert = _role_cert(world, draw(_realm_ids(world)), world.me.user_id, "OWNER", draw(_TIMESTAMPS))
    return {
        "cmd": "realm_self_promote_to_owner",
        "realm_role_certificate": draw(_signed(world, cert, broken=draw(_broken()) == 0)),
    }


@st.composite
def realm_rename(draw: st.DrawFn, world: World) -> dict[str, Any]:
    cert = {
        "type": "realm_name_certificate",
        "author": world.me.device_id,
        "timestamp": draw(_TIMESTAMPS),
        "realm_id": draw(_realm_ids(world)),
        "key_index": draw(st.sampled_from([1, 1, 0, 2])),
        "encrypted_name": draw(st.binary(max_size=40)),
    }
    return {
        "cmd": "realm_rename",
        "realm_name_certificate": draw(_signed(world, cert, broken=draw(_broken()) == 0)),
        "initial_name_or_fail": draw(st.booleans()),
    }


@st.composite
def realm_rotate_key(draw: st.DrawFn, world: World) -> dict[str, Any]:
    cert = {
        "type": "realm_key_rotation_certificate",
        "author": world.me.device_id,
        "timestamp": draw(_TIMESTAMPS),
        "realm_id": draw(_realm_ids(world)),
        "key_index": draw(st.sampled_from([2, 2, 3, 4, 1, 0])),
        "encryption_algorithm": "BLAKE2_XSALSA20_POLY1305",
        "hash_algorithm": "SHA256",
        "key_canary": draw(st.binary(max_size=40)),
    }
    participants = draw(
        st.sampled_from(
            [[world.me.user_id, world.peer.user_id]] * 3
            + [[world.me.user_id], [world.me.user_id, world.peer.user_id, uuid.uuid4()]]
        )
    )
    return {
        "cmd": "realm_rotate_key",
        "realm_key_rotation_certificate": draw(_signed(world, cert, broken=draw(_broken()) == 0)),
        "per_participant_keys_bundle_access": {
            u: draw(st.binary(max_size=20)) for u in participants
        },
        "per_sequester_service_keys_bundle_access": draw(
            st.sampled_from([None, None, {}, {uuid.uuid4(): b"x"}])
        ),
        "keys_bundle": draw(st.binary(max_size=40)),
    }


@st.composite
def realm_update_archiving(draw: st.DrawFn, world: World) -> dict[str, Any]:
    config = draw(
        st.one_of(
            st.sampled_from([{"type": "AVAILABLE"}, {"type": "ARCHIVED"}]),
            near_now().map(lambda d: {"type": "DELETION_PLANNED", "deletion_date": d}),
        )
    )
    cert = {
        "type": "realm_archiving_certificate",
        "author": world.me.device_id,
        "timestamp": draw(_TIMESTAMPS),
        "realm_id": draw(_realm_ids(world)),
        "configuration": config,
    }
    return {
        "cmd": "realm_update_archiving",
        "archiving_certificate": draw(_signed(world, cert, broken=draw(_broken()) == 0)),
    }


@st.composite
def user_update(draw: st.DrawFn, world: World) -> dict[str, Any]:
    cert = {
        "type": "user_update_certificate",
        "author": world.me.device_id,
        "timestamp": draw(_TIMESTAMPS),
        "user_id": draw(_user_ids(world)),
        "new_profile": draw(st.sampled_from(PROFILES)),
    }
    return {
        "cmd": "user_update",
        "user_update_certificate": draw(_signed(world, cert, broken=draw(_broken()) == 0)),
    }


@st.composite
def user_revoke(draw: st.DrawFn, world: World) -> dict[str, Any]:
    user = draw(
        st.one_of(
            st.uuids(),
            st.just(world.me.user_id),
            st.integers(0, 19).map(lambda i: world.peer.user_id if i == 0 else uuid.uuid4()),
        )
    )
    cert = {
        "type": "revoked_user_certificate",
        "author": world.me.device_id,
        "timestamp": draw(_TIMESTAMPS),
        "user_id": user,
    }
    return {
        "cmd": "user_revoke",
        "revoked_user_certificate": draw(_signed(world, cert, broken=draw(_broken()) == 0)),
    }


@st.composite
def shamir_recovery_setup(draw: st.DrawFn, world: World) -> dict[str, Any]:
    me = world.me
    ts = draw(_TIMESTAMPS)
    recipients = draw(
        st.sampled_from(
            [[world.peer.user_id]] * 3 + [[world.peer.user_id, uuid.uuid4()], [me.user_id], []]
        )
    )
    shares = {r: draw(st.integers(1, 3)) for r in recipients}
    brief = {
        "type": "shamir_recovery_brief_certificate",
        "author": me.device_id,
        "timestamp": ts,
        "user_id": draw(st.sampled_from([me.user_id] * 5 + [world.peer.user_id])),
        "threshold": draw(st.integers(1, 4)),
        "per_recipient_shares": shares,
    }
    share_certs = [
        draw(
            _signed(
                world,
                {
                    "type": "shamir_recovery_share_certificate",
                    "author": me.device_id,
                    "timestamp": ts,
                    "user_id": me.user_id,
                    "recipient": r,
                    "ciphered_share": draw(st.binary(max_size=20)),
                },
                broken=draw(_broken(4)) == 0,
            )
        )
        for r in recipients
    ]
    return {
        "cmd": "shamir_recovery_setup",
        "ciphered_data": draw(st.binary(max_size=40)),
        "reveal_token": draw(st.binary(min_size=16, max_size=16)),
        "shamir_recovery_brief_certificate": draw(
            _signed(world, brief, broken=draw(_broken()) == 0)
        ),
        "shamir_recovery_share_certificates": share_certs,
    }


@st.composite
def vlob_write(draw: st.DrawFn, world: World) -> dict[str, Any]:
    cmd = draw(st.sampled_from(["vlob_create", "vlob_update"]))
    req = {
        "cmd": cmd,
        "realm_id": draw(_realm_ids(world)),
        "vlob_id": draw(st.one_of(st.uuids(), st.just(world.vlob_id))),
        "key_index": draw(st.sampled_from([1, 1, 1, 0, 2])),
        "timestamp": draw(_TIMESTAMPS),
        "blob": draw(st.binary(max_size=100)),
    }
    if cmd == "vlob_update":
        req["version"] = draw(st.integers(0, 4))
    return req


SMART: dict[str, dict[str, Callable[[World], st.SearchStrategy[dict[str, Any]]]]] = {
    "anonymous": {"organization_bootstrap": organization_bootstrap},
    "authenticated": {
        "user_create": user_create,
        "device_create": device_create,
        "realm_create": realm_create,
        "realm_share": realm_share,
        "realm_unshare": realm_unshare,
        "realm_self_promote_to_owner": realm_self_promote_to_owner,
        "realm_rename": realm_rename,
        "realm_rotate_key": realm_rotate_key,
        "realm_update_archiving": realm_update_archiving,
        "user_update": user_update,
        "user_revoke": user_revoke,
        "shamir_recovery_setup": shamir_recovery_setup,
        "vlob_create": vlob_write,
        "vlob_update": vlob_write,
    },
}
