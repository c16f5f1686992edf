"""crypto/totp.py against the official server 3.9.3's TOTP (vectors from tools/make_totp_vectors.py,
generated with the official `parsec.components.totp`) and RFC 6238 Appendix B."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from parsec_server.crypto import totp

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "totp.json").read_text(encoding="utf-8")
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _at(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


@pytest.mark.parametrize("vector", VECTORS["codes"], ids=lambda v: str(v["at_us"]))
def test_code_and_drift_match_official(vector: dict[str, Any]) -> None:
    secret = bytes.fromhex(vector["secret"])
    at = _at(vector["at_us"])
    assert totp.code_at(secret, at) == vector["code"]
    for offset, accepted in vector["verify_at_offset"].items():
        assert totp.verify(secret, vector["code"], at + timedelta(seconds=int(offset))) is accepted


@pytest.mark.parametrize("vector", VECTORS["throttle"], ids=lambda v: str(v["failed_attempts"]))
def test_throttle_deadline_matches_official(vector: dict[str, Any]) -> None:
    last = vector["last_failed_attempt_us"]
    got = totp.wait_until(vector["failed_attempts"], None if last is None else _at(last))
    expected = vector["wait_until_us"]
    assert got == (None if expected is None else _at(expected))


# RFC 6238 Appendix B, SHA-1 rows (8 digits, secret "12345678901234567890").
@pytest.mark.parametrize(
    ("seconds", "code"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ],
)
def test_rfc6238_appendix_b(seconds: int, code: str) -> None:
    at = EPOCH + timedelta(seconds=seconds)
    assert totp.code_at(b"12345678901234567890", at, digits=8) == code


def test_wrong_codes_refused() -> None:
    secret = bytes(range(20))
    at = _at(1_700_000_000_000_000)
    right = totp.code_at(secret, at)
    for wrong in ["", right[:5], right + "0", " " + right[1:], "\udcff" * 6, "\uff11" * 6]:
        assert not totp.verify(secret, wrong, at)
    assert totp.verify(secret, right, at)


def test_new_secret_is_160_bits() -> None:
    assert len(totp.new_secret()) == 20
    assert totp.new_secret() != totp.new_secret()


def test_throttle_stays_representable() -> None:
    last = datetime(2026, 1, 1, tzinfo=UTC)
    deadline = totp.wait_until(10_000, last)
    assert deadline is not None and deadline > last + timedelta(days=365 * 500)
