"""API 5.6 (parsec-cloud 3.10): `cryptpad_register_session` and `CryptpadSessionKey`.

The official 3.9.3 library has neither, and the 3.10 library needs Python 3.14: the vectors
(vectors/api56.json, tools/make_api56_vectors.py) are hand-made from the schema with the plain msgpack
library, and the official repository's own protocol test vectors (wire bytes) are checked equal to
them. Requests must decode to the schema's fields, replies must encode to the same bytes.
"""

from __future__ import annotations

import datetime
import struct
import uuid
from typing import Any

import msgpack
import pytest
from protocol_vectors import load, untag

from parsec_server.asgi.rpc import API_VERSION
from parsec_server.protocol.codec import DecodeError
from parsec_server.protocol.generated import FAMILIES
from parsec_server.protocol.generated.authenticated import CryptpadRegisterSessionReq
from parsec_server.protocol.generated.data_types import DECODERS, CryptpadSessionKey
from parsec_server.protocol.registry import decode_req, encode_rep, validate_rep

API56 = load("api56.json")


def test_api_version_announced() -> None:
    assert API_VERSION == b"5.6"


def test_command_is_in_the_authenticated_family() -> None:
    assert FAMILIES["authenticated"].REQS["cryptpad_register_session"] is CryptpadRegisterSessionReq
    assert set(FAMILIES["authenticated"].REPS["cryptpad_register_session"]) == {
        "ok",
        "cryptpad_unavailable",
        "realm_not_found",
        "realm_deleted",
        "author_not_allowed",
        "bad_key_index",
        "timestamp_out_of_ballpark",
    }


@pytest.mark.parametrize("vector", API56["requests"], ids=lambda v: v["name"])
def test_decode_request(vector: dict[str, Any]) -> None:
    req = decode_req("authenticated", bytes.fromhex(vector["hex"]))
    assert isinstance(req, CryptpadRegisterSessionReq)
    expected = untag(vector["fields"])
    assert set(req.FIELDS) == set(expected)
    for name, value in expected.items():
        assert getattr(req, name) == value, name
    assert decode_req("authenticated", req.dump()) == req


def test_statuses_all_have_vectors() -> None:
    covered = {v["status"] for v in API56["replies"]}
    assert covered == set(FAMILIES["authenticated"].REPS["cryptpad_register_session"])


@pytest.mark.parametrize("vector", API56["replies"], ids=lambda v: v["status"])
def test_encode_reply_bytes(vector: dict[str, Any]) -> None:
    rep = untag(vector["rep"])
    validate_rep("authenticated", "cryptpad_register_session", rep)
    assert encode_rep(rep).hex() == vector["hex"]


def _body(**fields: Any) -> bytes:
    base: dict[str, Any] = {
        "cmd": "cryptpad_register_session",
        "realm_id": msgpack.ExtType(2, uuid.uuid4().bytes),
        "document_id": msgpack.ExtType(2, uuid.uuid4().bytes),
        "key_index": 1,
        "timestamp": msgpack.ExtType(1, struct.pack(">q", 1_700_000_000_000_000)),
        "encrypted_candidate_view_key": b"v",
        "encrypted_candidate_edit_key": None,
    }
    base.update(fields)
    body: bytes = msgpack.packb({k: v for k, v in base.items() if v is not _DROP})
    return body


_DROP = object()


@pytest.mark.parametrize(
    "fields",
    [
        {"encrypted_candidate_edit_key": _DROP},  # RequiredOption: the key must be there
        {"key_index": -1},
        {"realm_id": "not an id"},
        {"timestamp": 12},
        {"encrypted_candidate_view_key": None},
        {"document_id": _DROP},
    ],
    ids=["edit-key-missing", "negative-index", "realm-not-uuid", "bad-ts", "view-nil", "no-doc"],
)
def test_malformed_requests_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(DecodeError):
        decode_req("authenticated", _body(**fields))


def test_cryptpad_session_key_type() -> None:
    author, doc = uuid.uuid4(), uuid.uuid4()
    ts = datetime.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.UTC)
    raw = {
        "type": "cryptpad_session_key",
        "author": author,
        "timestamp": ts,
        "document_id": doc,
        "can_edit": True,
        "key": "c2VlZHNlZWRzZWVkc2VlZHNl",
    }
    key = DECODERS["cryptpad_session_key"](raw)
    assert isinstance(key, CryptpadSessionKey)
    assert key.to_dict() == raw
    with pytest.raises(DecodeError):
        DECODERS["cryptpad_session_key"]({**raw, "can_edit": 1})
