"""Reply encoding is byte-identical to the official `Rep.dump()`; validation follows the schema."""

from __future__ import annotations

import base64
import datetime
import uuid
from typing import Any

import pytest
from protocol_vectors import load, untag

from parsec_server.protocol.codec import unpackb
from parsec_server.protocol.generated import FAMILIES
from parsec_server.protocol.registry import RepValidationError, encode_rep, validate_rep

REPLIES = load("replies.json")


def _id(v: dict[str, Any]) -> str:
    return f"{v['family']}-{v['cmd']}-{v['status']}"


def test_every_status_has_vectors() -> None:
    # API 5.6 replies: api56.json (test_protocol_api56.py), the 3.9.3 library does not know them
    api56 = load("api56.json")["replies"]
    covered = {(v["family"], v["cmd"], v["status"]) for v in [*REPLIES, *api56]}
    expected = {
        (fam, cmd, status)
        for fam, mod in FAMILIES.items()
        for cmd, reps in mod.REPS.items()
        for status in reps
    }
    assert covered == expected


@pytest.mark.parametrize("vector", REPLIES, ids=_id)
def test_encode_matches_official_bytes(vector: dict[str, Any]) -> None:
    rep = untag(vector["rep"])
    assert encode_rep(rep).hex() == vector["hex"]


@pytest.mark.parametrize("vector", REPLIES, ids=_id)
def test_official_replies_validate(vector: dict[str, Any]) -> None:
    validate_rep(vector["family"], vector["cmd"], untag(vector["rep"]))


def test_encode_does_not_depend_on_dict_order() -> None:
    vector = next(v for v in REPLIES if v["cmd"] == "invite_info" and "administrators" in v["rep"])
    rep = untag(vector["rep"])
    shuffled = dict(reversed(list(rep.items())))
    assert encode_rep(shuffled).hex() == vector["hex"]


def test_observed_wire_replies() -> None:
    # observed-reference.md §3.5
    assert encode_rep({"status": "ok"}).hex() == "81a6737461747573a26f6b"
    assert encode_rep(
        {"total_metadata_bytes": 0, "status": "ok", "total_block_bytes": 0}
    ).hex() == (
        "83a6737461747573a26f6bb1746f74616c5f626c6f636b5f627974657300b4746f74616c5f6d65746164617461"
        "5f627974657300"
    )
    token = bytes.fromhex("41189d75f4c31b6730ad0ea34db41d6e")
    assert encode_rep({"status": "ok", "token": token, "email_sent": "SUCCESS"}).hex() == (
        "83a6737461747573a26f6baa656d61696c5f73656e74a753554343455353a5746f6b656ec41041189d75f4c3"
        "1b6730ad0ea34db41d6e"
    )
    sse = base64.b64decode(
        "hqZzdGF0dXOib2ulZXZlbnSzT1JHQU5JWkFUSU9OX0NPTkZJR7JhY3RpdmVfdXNlcnNfbGltaXTA2S5yZWFsbV9taW5pbXVt"
        "X2FyY2hpdmluZ19wZXJpb2RfYmVmb3JlX2RlbGV0aW9uzgAnjQC1c3NlX2tlZXBhbGl2ZV9zZWNvbmRzHr11c2VyX3Byb2Zp"
        "bGVfb3V0c2lkZXJfYWxsb3dlZMM="
    )
    rep = unpackb(sse)
    assert encode_rep(dict(reversed(list(rep.items())))) == sse


def _now() -> datetime.datetime:
    return datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("cmd", "rep"),
    [
        ("vlob_create", {"status": "nope"}),
        ("vlob_create", {"status": "bad_key_index"}),
        ("vlob_create", {"status": "bad_key_index", "last_realm_certificate_timestamp": 1}),
        ("vlob_create", {"status": "ok", "extra": 1}),
        (
            "vlob_create",
            {
                "status": "timestamp_out_of_ballpark",
                "ballpark_client_early_offset": 300,
                "ballpark_client_late_offset": 320.0,
                "server_timestamp": _now(),
                "client_timestamp": _now(),
            },
        ),
        (
            "vlob_create",
            {
                "status": "require_greater_timestamp",
                "strictly_greater_than": datetime.datetime(2024, 1, 1),
            },
        ),
        (
            "block_read",
            {
                "status": "ok",
                "block": "x",
                "key_index": 1,
                "needed_realm_certificate_timestamp": _now(),
            },
        ),
        (
            "block_read",
            {
                "status": "ok",
                "block": b"x",
                "key_index": -1,
                "needed_realm_certificate_timestamp": _now(),
            },
        ),
        ("invite_new_user", {"status": "ok", "token": b"x" * 15, "email_sent": "SUCCESS"}),
        ("invite_new_user", {"status": "ok", "token": b"x" * 16, "email_sent": "MAYBE"}),
        (
            "vlob_read_batch",
            {
                "status": "ok",
                "items": [(uuid.uuid4(), 1, uuid.uuid4(), 1, _now())],
                "needed_common_certificate_timestamp": _now(),
                "needed_realm_certificate_timestamp": _now(),
            },
        ),
        (
            "certificate_get",
            {
                "status": "ok",
                "common_certificates": [],
                "sequester_certificates": [],
                "shamir_recovery_certificates": [],
                "realm_certificates": {"x": []},
            },
        ),
        ("invite_list", {"status": "ok", "invitations": [{"type": "USER"}]}),
        ("events_listen", {"status": "ok", "event": "PINGED"}),
        ("events_listen", {"status": "ok", "event": "NOPE"}),
    ],
)
def test_validate_rep_rejects(cmd: str, rep: dict[str, Any]) -> None:
    with pytest.raises(RepValidationError):
        validate_rep("authenticated", cmd, rep)


def test_validate_rep_accepts_handler_values() -> None:
    validate_rep("authenticated", "vlob_create", {"status": "ok"})
    validate_rep(
        "authenticated",
        "vlob_read_batch",
        {
            "status": "ok",
            "items": [[uuid.uuid4(), 0, uuid.uuid4(), 1, _now(), b"blob"]],
            "needed_common_certificate_timestamp": _now(),
            "needed_realm_certificate_timestamp": _now(),
        },
    )
    validate_rep("authenticated", "events_listen", {"status": "ok", "event": "PINGED", "ping": "p"})
    # introduced_in fields may be left out
    validate_rep(
        "authenticated",
        "events_listen",
        {
            "status": "ok",
            "event": "ORGANIZATION_CONFIG",
            "user_profile_outsider_allowed": True,
            "active_users_limit": None,
            "sse_keepalive_seconds": 30,
        },
    )
