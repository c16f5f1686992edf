"""Authorization headers (protocol.md §1.5-§1.7).

* Device token: `Bearer PARSEC-SIGN-ED25519.<device id hex>.<unix seconds>.<b64url(signature)>`,
  signature = Ed25519 over the text before the last `.`.
* Account token: `Bearer PARSEC-MAC-BLAKE2B.<auth method id hex>.<unix seconds>.<b64url(mac)>`,
  mac = keyed BLAKE2b-512 (key = the auth method's 32-byte MAC key) over the same prefix.
* Invitation token: `Bearer <32 hex digits>` = the 16-byte AccessToken.

Parsing mirrors the official server (it is what decides 401 vs 403), but for the signature's junk
characters: the header splits on
blanks into exactly `Bearer` (any case) and the token; the token splits at its last `.`, the rest
in exactly three parts; the id accepts every form of `XxxID.from_hex` (32 hex digits, hyphenated,
`{...}`, `urn:uuid:`); the seconds go through Python's `int()`; the signature through
URL-safe base64 decoded as the official server does (`-_` or `+/`, padding required) but
strictly: the official server skips characters outside the alphabet and ignores anything after the
padding, ours refuses them (`binascii.a2b_base64(strict_mode=True)`). A parse failure raises
`TokenError` (HTTP 401); a bad signature only shows at verification (403).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import functools
import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass

from parsec_server.crypto.ballpark import seconds_in_ballpark
from parsec_server.crypto.certificates import ed25519_verify
from parsec_server.protocol.ids import parse_uuid

__all__ = [
    "AccountToken",
    "AuthenticatedToken",
    "TokenError",
    "generate_account_token",
    "generate_authenticated_token",
    "parse_account_authorization",
    "parse_account_token",
    "parse_authenticated_token",
    "parse_authorization",
    "parse_invitation_authorization",
    "parse_invitation_token",
]

DEVICE_HEADER = "PARSEC-SIGN-ED25519"
ACCOUNT_HEADER = "PARSEC-MAC-BLAKE2B"
_INVITATION_TOKEN_RE = re.compile(r"[0-9a-fA-F]{32}")
# the official DateTime range (chrono): years -262144 to +262143
_MIN_SECONDS = -8_334_632_851_200
_MAX_SECONDS = 8_210_266_876_799


@functools.lru_cache(maxsize=4096)
def _cached_verify(signature: bytes, signed: bytes, verify_key: bytes) -> bool:
    return ed25519_verify(signature, signed, verify_key)


class TokenError(ValueError):
    """Missing or malformed authorization (HTTP 401)."""


@dataclass(frozen=True, slots=True)
class AuthenticatedToken:
    device_id: uuid.UUID
    timestamp: int  # Unix seconds
    signed: bytes  # "PARSEC-SIGN-ED25519.<hex>.<seconds>" as sent
    signature: bytes

    def verify(self, verify_key: bytes) -> bool:
        """Ed25519 check with the device's raw 32-byte verify key.

        Results are cached: a client sends the very same token for every request within one
        second, and a signature check costs ~40 us."""
        return _cached_verify(self.signature, self.signed, verify_key)

    def in_ballpark(self, now: datetime.datetime) -> bool:
        return seconds_in_ballpark(self.timestamp, now)


@dataclass(frozen=True, slots=True)
class AccountToken:
    auth_method_id: uuid.UUID
    timestamp: int
    signed: bytes
    mac: bytes

    def verify(self, mac_key: bytes) -> bool:
        expected = hashlib.blake2b(self.signed, key=mac_key, digest_size=64).digest()
        return hmac.compare_digest(expected, self.mac)

    def in_ballpark(self, now: datetime.datetime) -> bool:
        return seconds_in_ballpark(self.timestamp, now)


def _bearer(raw: bytes | str | None) -> str:
    if raw is None:
        raise TokenError("missing Authorization header")
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    parts = text.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise TokenError("expected `Bearer <token>`")
    return parts[1]


_STANDARD_ALPHABET = str.maketrans("-_", "+/")


def _strict_b64url(text: str) -> bytes:
    """URL-safe base64 (the standard alphabet is accepted too, as by the official server), strictly:
    padding required, nothing outside the alphabet, nothing after the padding (binascii.Error)."""
    return binascii.a2b_base64(text.translate(_STANDARD_ALPHABET).encode("ascii"), strict_mode=True)


def _split_token(token: str, header: str) -> tuple[uuid.UUID, int, bytes, bytes]:
    try:
        signed, _, raw_signature = token.rpartition(".")
        if not _:
            raise ValueError
        parts = signed.split(".")
        if len(parts) != 3 or parts[0] != header:
            raise ValueError
        signature = _strict_b64url(raw_signature)
        ident = parse_uuid(parts[1])
        seconds = int(parts[2].encode("utf-8"))
        if not _MIN_SECONDS <= seconds <= _MAX_SECONDS:
            raise ValueError
        signed_bytes = signed.encode("utf-8")
    except (ValueError, binascii.Error):  # UnicodeEncodeError is a ValueError
        raise TokenError("invalid token format") from None
    return ident, seconds, signed_bytes, signature


def parse_authenticated_token(token: str) -> AuthenticatedToken:
    device_id, seconds, signed, signature = _split_token(token, DEVICE_HEADER)
    return AuthenticatedToken(device_id, seconds, signed, signature)


_PARSED: dict[bytes | str, AuthenticatedToken] = {}
_PARSED_MAX = 4096


def parse_authorization(raw: bytes | str | None) -> AuthenticatedToken:
    """`Authorization` header value of /authenticated routes -> token (TokenError = 401).

    Parsed tokens are cached by header value: a client sends the very same header for every request
    within one second (the token is immutable; only well-formed ones are cached)."""
    token = _PARSED.get(raw) if raw is not None else None
    if token is None:
        token = parse_authenticated_token(_bearer(raw))
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[raw] = token  # type: ignore[index]
    return token


def parse_account_token(token: str) -> AccountToken:
    auth_method_id, seconds, signed, mac = _split_token(token, ACCOUNT_HEADER)
    return AccountToken(auth_method_id, seconds, signed, mac)


def parse_account_authorization(raw: bytes | str | None) -> AccountToken:
    return parse_account_token(_bearer(raw))


def parse_invitation_token(text: str) -> bytes:
    """32 hex digits (any case) -> the 16-byte AccessToken; TokenError otherwise."""
    if _INVITATION_TOKEN_RE.fullmatch(text) is None:
        raise TokenError("invalid invitation token")
    return bytes.fromhex(text)


def parse_invitation_authorization(raw: bytes | str | None) -> bytes:
    """`Authorization` header value of /invited routes -> 16-byte token (TokenError = 401)."""
    return parse_invitation_token(_bearer(raw))


def generate_authenticated_token(device_id: uuid.UUID, seconds: int, signing_key: bytes) -> str:
    """Client side (tests, tools): `signing_key` is the 32-byte Ed25519 seed."""
    import nacl.signing

    signed = f"{DEVICE_HEADER}.{device_id.hex}.{seconds}".encode("ascii")
    signature = nacl.signing.SigningKey(signing_key).sign(signed).signature
    return f"{signed.decode()}.{base64.urlsafe_b64encode(signature).decode()}"


def generate_account_token(auth_method_id: uuid.UUID, seconds: int, mac_key: bytes) -> str:
    signed = f"{ACCOUNT_HEADER}.{auth_method_id.hex}.{seconds}".encode("ascii")
    mac = hashlib.blake2b(signed, key=mac_key, digest_size=64).digest()
    return f"{signed.decode()}.{base64.urlsafe_b64encode(mac).decode()}"
