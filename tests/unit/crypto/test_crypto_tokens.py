from __future__ import annotations

import datetime
import json
import uuid
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from parsec_server.crypto import ballpark, tokens

MISC = json.loads(
    (Path(__file__).parents[1] / "protocol" / "vectors" / "misc.json").read_text(encoding="utf-8")
)
UTC = datetime.UTC
STRICTER_THAN_OFFICIAL = {"junk_in_sig"}


@pytest.mark.parametrize("case", MISC["tokens"], ids=lambda c: c["name"])
def test_tokens_like_official(case: dict[str, Any]) -> None:
    verify_key = bytes.fromhex(MISC["token_verify_key"])
    # Deliberate deviation (issue 11, 6): the signature decodes strictly, junk is refused.
    if not case["parsed"] or case["name"] in STRICTER_THAN_OFFICIAL:
        with pytest.raises(tokens.TokenError):
            tokens.parse_authenticated_token(case["raw"])
        return
    token = tokens.parse_authenticated_token(case["raw"])
    assert token.device_id.hex == case["device_id"]
    assert token.timestamp == case["timestamp"]
    assert token.signed.decode() == case["signed"]
    assert token.verify(verify_key) == case["verifies"]


def test_observed_header() -> None:
    header = (
        b"Bearer PARSEC-SIGN-ED25519.2ac3ee5a12fc4b3d89a0dbe352329440.1795572044."
        b"V-G4j5VmGUNypbipA2LjqG7VA_NKwP6LnZEuYhNmHPoXiU0VbzwTCy6825KOrynGPlOkbtzJUCn_BQAd0R9wDg=="
    )
    token = tokens.parse_authorization(header)
    assert token.device_id == uuid.UUID("2ac3ee5a12fc4b3d89a0dbe352329440")
    assert token.timestamp == 1795572044
    assert len(token.signature) == 64
    assert tokens.parse_authorization(header.replace(b"Bearer", b"bEaReR")) == token


@pytest.mark.parametrize(
    "header",
    [None, b"", b"Bearer", b"Basic abc", b"Bearer a b", b"Token PARSEC-SIGN-ED25519.x.1.AA=="],
)
def test_bad_authorization_header(header: bytes | None) -> None:
    with pytest.raises(tokens.TokenError):
        tokens.parse_authorization(header)


def test_generate_parse_verify_and_ballpark() -> None:
    key = nacl.signing.SigningKey.generate()
    device = uuid.uuid4()
    now = datetime.datetime(2026, 1, 1, tzinfo=UTC)
    seconds = int(now.timestamp())
    raw = tokens.generate_authenticated_token(device, seconds, bytes(key))
    token = tokens.parse_authorization(b"Bearer " + raw.encode())
    assert token.device_id == device and token.timestamp == seconds
    assert token.verify(bytes(key.verify_key))
    assert not token.verify(bytes(nacl.signing.SigningKey.generate().verify_key))
    assert not token.verify(b"short")
    assert token.in_ballpark(now)
    assert token.in_ballpark(now + datetime.timedelta(seconds=319))
    assert not token.in_ballpark(now + datetime.timedelta(seconds=320))
    assert token.in_ballpark(now - datetime.timedelta(seconds=299))
    assert not token.in_ballpark(now - datetime.timedelta(seconds=300))


def test_account_token() -> None:
    mac_key = b"k" * 32
    method = uuid.uuid4()
    raw = tokens.generate_account_token(method, 1_800_000_000, mac_key)
    token = tokens.parse_account_authorization(f"Bearer {raw}")
    assert token.auth_method_id == method and token.timestamp == 1_800_000_000
    assert token.verify(mac_key)
    assert not token.verify(b"x" * 32)
    with pytest.raises(tokens.TokenError):
        tokens.parse_account_token(raw.replace("PARSEC-MAC-BLAKE2B", "PARSEC-SIGN-ED25519"))
    with pytest.raises(tokens.TokenError):
        tokens.parse_authenticated_token(raw)


@pytest.mark.parametrize(("text", "device_ok", "token_ok"), MISC["uuid_texts"])
def test_invitation_token_like_official(text: str, device_ok: bool, token_ok: bool) -> None:
    if token_ok:
        assert tokens.parse_invitation_token(text) == bytes.fromhex(text)
        assert tokens.parse_invitation_authorization(f"Bearer {text}".encode()) == bytes.fromhex(
            text
        )
    else:
        with pytest.raises(tokens.TokenError):
            tokens.parse_invitation_token(text)


def test_ballpark_bounds_are_strict() -> None:
    server = datetime.datetime(2026, 1, 1, tzinfo=UTC)
    s = datetime.timedelta(seconds=1)
    us = datetime.timedelta(microseconds=1)
    assert ballpark.in_ballpark(server, server)
    assert ballpark.in_ballpark(server + 300 * s - us, server)
    assert not ballpark.in_ballpark(server + 300 * s, server)
    assert ballpark.in_ballpark(server - 320 * s + us, server)
    assert not ballpark.in_ballpark(server - 320 * s, server)
    assert ballpark.check_ballpark(server, server) is None
    client = server - 1000 * s
    assert ballpark.check_ballpark(client, server) == {
        "status": "timestamp_out_of_ballpark",
        "ballpark_client_early_offset": 300.0,
        "ballpark_client_late_offset": 320.0,
        "server_timestamp": server,
        "client_timestamp": client,
    }
