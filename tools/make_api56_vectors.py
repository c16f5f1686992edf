"""Writes tests/unit/protocol/vectors/api56.json: the API 5.6 vectors (cryptpad_register_session).

Hand-made vectors are built from the schema with the plain msgpack library (not our codec); the
official repository's own protocol test vectors (wire bytes, used as data) are checked equal to them.
Run: .venv/bin/python tools/make_api56_vectors.py
"""

from __future__ import annotations

import json
import struct
from typing import Any

import msgpack


def dt(us: int) -> msgpack.ExtType:
    return msgpack.ExtType(1, struct.pack(">q", us))


def uid(h: str) -> msgpack.ExtType:
    return msgpack.ExtType(2, bytes.fromhex(h))


REALM = "1d3353157d7d4e95ad2fdea7b3bd19c5"
DOC = "87c6b5fd3b454c94bab51d6af1c6930b"
DEV = "de10a11cec0010000000000000000000"
T0 = 946774800000000
requests: list[dict[str, Any]] = []
replies: list[dict[str, Any]] = []


def req(name: str, fields_wire: dict[str, Any], fields_json: dict[str, Any], source: str) -> None:
    body = msgpack.packb({"cmd": "cryptpad_register_session", **fields_wire}, use_bin_type=True)
    requests.append(
        {
            "family": "authenticated",
            "cmd": "cryptpad_register_session",
            "name": name,
            "source": source,
            "hex": body.hex(),
            "fields": fields_json,
        }
    )


def base(key_index: int, edit: bytes | None) -> tuple[dict[str, Any], dict[str, Any]]:
    w = {
        "realm_id": uid(REALM),
        "document_id": uid(DOC),
        "key_index": key_index,
        "timestamp": dt(T0),
        "encrypted_candidate_view_key": b"my_encrypted_ro_key",
        "encrypted_candidate_edit_key": edit,
    }
    j = {
        "realm_id": {"$uuid": REALM},
        "document_id": {"$uuid": DOC},
        "key_index": key_index,
        "timestamp": {"$dt": T0},
        "encrypted_candidate_view_key": {"$bytes": b"my_encrypted_ro_key".hex()},
        "encrypted_candidate_edit_key": None if edit is None else {"$bytes": edit.hex()},
    }
    return w, j


req("hand-edit", *base(1, b"my_encrypted_rw_key"), "hand-made")
req("hand-view-only", *base(2, None), "hand-made")
# the official repository's own test vectors (libparsec/crates/protocol/tests/authenticated_cmds/v5/
# cryptpad_register_session.rs, parsec-cloud master after v3.9.3): wire bytes, as data
OFFICIAL = (
    "official repository test vector (libparsec protocol tests, cryptpad_register_session.rs)"
)
requests.append(
    {
        "family": "authenticated",
        "cmd": "cryptpad_register_session",
        "name": "official-edit",
        "source": OFFICIAL,
        "hex": "87a3636d64b963727970747061645f72656769737465725f73657373696f6ea87265616c6d5f6964d8021d3353157d7d4e95ad2fdea7b3bd19c5ab646f63756d656e745f6964d80287c6b5fd3b454c94bab51d6af1c6930ba96b65795f696e64657801a974696d657374616d70d70100035d162fa2e400bc656e637279707465645f63616e6469646174655f766965775f6b6579c4136d795f656e637279707465645f726f5f6b6579bc656e637279707465645f63616e6469646174655f656469745f6b6579c4136d795f656e637279707465645f72775f6b6579",
        "fields": base(1, b"my_encrypted_rw_key")[1],
    }
)
requests.append(
    {
        "family": "authenticated",
        "cmd": "cryptpad_register_session",
        "name": "official-view-only",
        "source": OFFICIAL,
        "hex": "87a3636d64b963727970747061645f72656769737465725f73657373696f6ea87265616c6d5f6964d8021d3353157d7d4e95ad2fdea7b3bd19c5ab646f63756d656e745f6964d80287c6b5fd3b454c94bab51d6af1c6930ba96b65795f696e64657802a974696d657374616d70d70100035d162fa2e400bc656e637279707465645f63616e6469646174655f766965775f6b6579c4136d795f656e637279707465645f726f5f6b6579bc656e637279707465645f63616e6469646174655f656469745f6b6579c0",
        "fields": base(2, None)[1],
    }
)


def rep(
    status: str, wire: dict[str, Any], js: dict[str, Any], source: str, hexval: str | None = None
) -> None:
    # official replies: `status` first, then the other keys in alphabetical order
    ordered = {"status": status, **{k: wire[k] for k in sorted(wire)}}
    body = msgpack.packb(ordered, use_bin_type=True)
    if hexval is not None:
        assert body.hex() == hexval, (status, body.hex())
    replies.append(
        {
            "family": "authenticated",
            "cmd": "cryptpad_register_session",
            "status": status,
            "source": source,
            "hex": body.hex(),
            "rep": {"status": status, **js},
        }
    )


okw = {
    "author": uid(DEV),
    "timestamp": dt(946688400000000),
    "key_index": 1,
    "encrypted_view_key": b"my_encrypted_ro_key",
    "encrypted_edit_key": b"my_encrypted_rw_key",
    "needed_common_certificate_timestamp": dt(946774800000000),
    "needed_realm_certificate_timestamp": dt(946861200000000),
}
okj = {
    "author": {"$uuid": DEV},
    "timestamp": {"$dt": 946688400000000},
    "key_index": 1,
    "encrypted_view_key": {"$bytes": b"my_encrypted_ro_key".hex()},
    "encrypted_edit_key": {"$bytes": b"my_encrypted_rw_key".hex()},
    "needed_common_certificate_timestamp": {"$dt": 946774800000000},
    "needed_realm_certificate_timestamp": {"$dt": 946861200000000},
}
rep(
    "ok",
    okw,
    okj,
    OFFICIAL + ", checked equal to the hand-made bytes",
    "88a6737461747573a26f6ba6617574686f72d802de10a11cec0010000000000000000000b2656e637279707465645f656469745f6b6579c4136d795f656e637279707465645f72775f6b6579b2656e637279707465645f766965775f6b6579c4136d795f656e637279707465645f726f5f6b6579a96b65795f696e64657801d9236e65656465645f636f6d6d6f6e5f63657274696669636174655f74696d657374616d70d70100035d162fa2e400d9226e65656465645f7265616c6d5f63657274696669636174655f74696d657374616d70d70100035d2a4d7a4400a974696d657374616d70d70100035d0211cb8400",
)
for st, hx in [
    ("cryptpad_unavailable", "81a6737461747573b463727970747061645f756e617661696c61626c65"),
    ("realm_not_found", "81a6737461747573af7265616c6d5f6e6f745f666f756e64"),
    ("realm_deleted", "81a6737461747573ad7265616c6d5f64656c65746564"),
    ("author_not_allowed", "81a6737461747573b2617574686f725f6e6f745f616c6c6f776564"),
]:
    rep(st, {}, {}, OFFICIAL + ", checked equal to the hand-made bytes", hx)
rep(
    "bad_key_index",
    {"last_realm_certificate_timestamp": dt(946684800000000)},
    {"last_realm_certificate_timestamp": {"$dt": 946684800000000}},
    OFFICIAL + ", checked equal to the hand-made bytes",
    "82a6737461747573ad6261645f6b65795f696e646578d9206c6173745f7265616c6d5f63657274696669636174655f74696d657374616d70d70100035d013b37e000",
)
rep(
    "timestamp_out_of_ballpark",
    {
        "ballpark_client_early_offset": 300.0,
        "ballpark_client_late_offset": 320.0,
        "client_timestamp": dt(T0),
        "server_timestamp": dt(T0),
    },
    {
        "ballpark_client_early_offset": 300.0,
        "ballpark_client_late_offset": 320.0,
        "client_timestamp": {"$dt": T0},
        "server_timestamp": {"$dt": T0},
    },
    OFFICIAL + ", checked equal to the hand-made bytes",
    "85a6737461747573b974696d657374616d705f6f75745f6f665f62616c6c7061726bbc62616c6c7061726b5f636c69656e745f6561726c795f6f6666736574cb4072c00000000000bb62616c6c7061726b5f636c69656e745f6c6174655f6f6666736574cb4074000000000000b0636c69656e745f74696d657374616d70d70100035d162fa2e400b0736572766572795f74696d657374616d70d70100035d162fa2e400".replace(
        "736572766572795f", "7365727665725f"
    ),
)
json.dump(
    {
        "about": "API 5.6 (parsec-cloud 3.10) vectors: the official 3.9.3 library cannot make them. "
        "hand-made = built from the schema with the plain msgpack library; official = wire bytes from "
        "the official repository's own protocol tests, equal to the hand-made ones.",
        "requests": requests,
        "replies": replies,
    },
    open("tests/unit/protocol/vectors/api56.json", "w", encoding="utf-8"),
    indent=1,
)
print(len(requests), len(replies))
