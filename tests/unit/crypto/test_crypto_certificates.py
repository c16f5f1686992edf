"""Certificates signed by the official library must verify; tampering must not."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from parsec_server.crypto import certificates as C
from parsec_server.protocol.codec import datetime_from_us
from parsec_server.protocol.ids import HumanHandle

VECTORS = json.loads(
    (Path(__file__).parents[1] / "protocol" / "vectors" / "certificates.json").read_text(
        encoding="utf-8"
    )
)
OFFICIAL = [v for v in VECTORS if v["kind"] == "official"]
CRAFTED = [v for v in VECTORS if v["kind"] == "crafted"]


def untag(value: Any) -> Any:
    if isinstance(value, list):
        return [untag(v) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, inner),) = value.items()
            conv: Any = {
                "$uuid": lambda x: uuid.UUID(hex=x),
                "$dt": datetime_from_us,
                "$bytes": bytes.fromhex,
                "$tuple": lambda x: tuple(untag(i) for i in x),
                "$map": lambda x: {untag(k): untag(v) for k, v in x},
                "$set": lambda x: frozenset(untag(i) for i in x),
                "$hh": lambda x: HumanHandle(*x),
            }.get(key)
            if conv is not None:
                return conv(inner)
        return {k: untag(v) for k, v in value.items()}
    return value


def _id(v: dict[str, Any]) -> str:
    return f"{v['type']}-{v.get('name', '')}"


def test_every_type_covered() -> None:
    assert {v["type"] for v in OFFICIAL} == set(C.CERTIFICATES)
    assert len(C.CERTIFICATES) == 14


@pytest.mark.parametrize("vector", OFFICIAL, ids=_id)
def test_official_certificate_verifies(vector: dict[str, Any]) -> None:
    signed, key = bytes.fromhex(vector["signed"]), bytes.fromhex(vector["verify_key"])
    cert = C.verify_and_load(vector["type"], signed, key)
    assert cert.TYPE == vector["type"]
    expected = untag(vector["fields"])
    for name in cert.FIELDS:
        assert getattr(cert, name) == expected[name], name
    assert C.unsecure_load(vector["type"], signed) == cert
    assert C.verify_and_load(type(cert), signed, key) == cert


@pytest.mark.parametrize("vector", OFFICIAL, ids=_id)
def test_tampering_and_wrong_key_rejected(vector: dict[str, Any]) -> None:
    signed, key = bytes.fromhex(vector["signed"]), bytes.fromhex(vector["verify_key"])
    for pos in (0, len(signed) // 2, len(signed) - 1):
        tampered = bytearray(signed)
        tampered[pos] ^= 0x01
        with pytest.raises(C.InvalidCertificate):
            C.verify_and_load(vector["type"], bytes(tampered), key)
    with pytest.raises(C.InvalidCertificate):
        C.verify_and_load(vector["type"], signed[:-1], key)
    other_type = next(
        t
        for t in C.CERTIFICATES
        if t != vector["type"] and (t in C.RSA_SIGNED) == (vector["type"] in C.RSA_SIGNED)
    )
    with pytest.raises(C.InvalidCertificate):
        C.verify_and_load(other_type, signed, key)
    if vector["type"] in C.RSA_SIGNED:
        return
    wrong = bytes(nacl.signing.SigningKey.generate().verify_key)
    with pytest.raises(C.InvalidCertificate):
        C.verify_and_load(vector["type"], signed, wrong)


@pytest.mark.parametrize("vector", CRAFTED, ids=_id)
def test_crafted_contents_like_official(vector: dict[str, Any]) -> None:
    signed, key = bytes.fromhex(vector["signed"]), bytes.fromhex(vector["verify_key"])
    try:
        C.verify_and_load(vector["type"], signed, key)
        accepted = True
    except C.InvalidCertificate:
        accepted = False
    assert accepted == vector["accepted"], vector["error"]


def _official(tag: str, pred: Any = lambda c: True) -> tuple[Any, bytes, bytes]:
    for v in OFFICIAL:
        if v["type"] == tag:
            signed, key = bytes.fromhex(v["signed"]), bytes.fromhex(v["verify_key"])
            cert = C.verify_and_load(tag, signed, key)
            if pred(cert):
                return cert, signed, key
    raise AssertionError(tag)


def test_expected_author() -> None:
    cert, signed, key = _official("realm_role_certificate")
    assert (
        C.verify_and_load(C.RealmRoleCertificate, signed, key, expected_author=cert.author) == cert
    )
    with pytest.raises(C.InvalidCertificate):
        C.verify_and_load(C.RealmRoleCertificate, signed, key, expected_author=uuid.uuid4())
    with pytest.raises(C.InvalidCertificate):
        C.verify_and_load(C.RealmRoleCertificate, signed, key, expected_author=None)
    root, signed, key = _official("user_certificate", lambda c: c.author is None)
    assert C.verify_and_load(C.UserCertificate, signed, key, expected_author=None) == root


def test_redacted_compare() -> None:
    full, _, _ = _official("user_certificate", lambda c: c.human_handle is not None)
    redacted = C.UserCertificate(
        **{**{n: getattr(full, n) for n in full.FIELDS}, "human_handle": None}
    )
    assert C.is_redacted(redacted) and not C.is_redacted(full)
    assert C.redacted_compare(full, redacted)
    other = C.UserCertificate(
        **{
            **{n: getattr(full, n) for n in full.FIELDS},
            "human_handle": None,
            "profile": "OUTSIDER" if full.profile != "OUTSIDER" else "ADMIN",
        }
    )
    assert not C.redacted_compare(full, other)
    device, _, _ = _official("device_certificate", lambda c: c.device_label is not None)
    rdevice = C.DeviceCertificate(
        **{**{n: getattr(device, n) for n in device.FIELDS}, "device_label": None}
    )
    assert C.redacted_compare(device, rdevice)
    assert not C.redacted_compare(full, rdevice)


def test_zstd_bomb_refused() -> None:
    import zstandard

    key = nacl.signing.SigningKey.generate()
    bomb = b"\x00" + zstandard.ZstdCompressor().compress(b"\x00" * (C.MAX_CONTENT_SIZE + 10))
    signed = key.sign(bomb)
    with pytest.raises(C.InvalidCertificate):
        C.verify_and_load("realm_role_certificate", bytes(signed), bytes(key.verify_key))


def test_unknown_type_name() -> None:
    with pytest.raises(ValueError):
        C.unsecure_load("nope_certificate", b"")
