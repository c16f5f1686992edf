"""Signed certificates: verify, decode, compare (protocol.md §2.3-§2.4).

Layout (every type but the two sequester service ones):

    signed     = ed25519_signature[64] || serialized
    serialized = 0x00 || zstd_frame(msgpack map {"type": <tag>, <fields>...})

The signature covers `serialized`; the signer is the author device, or the organization root key
(`author` None) for the bootstrap user/device certificates and the sequester authority certificate.

Sequester service / revoked service certificates are signed by the sequester authority's RSA key:

    signed = b"RSASSA-PSS-SHA256:" || signature[key size in bytes] || serialized

(RSA-PSS, SHA-256, MGF1-SHA-256; any salt length is accepted.)

Content checks follow the official library: every field typed as in the schemas
(`crypto/_certif_generated.py`, unknown keys ignored, duplicated keys refused), labels/emails
validated (labels NFC-normalized), shamir brief invariants (threshold <= total shares <= 255), the
sequester keys must be RSA SubjectPublicKeyInfo DER.

Verification is cheap to repeat: raw Ed25519 keys go straight to libsodium (no key object), RSA
keys are parsed once and kept in a small LRU cache.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any, TypeVar, overload

import nacl.bindings
import nacl.exceptions
import zstandard
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from parsec_server.crypto._certif_base import Certificate
from parsec_server.crypto._certif_generated import (
    CERTIFICATES,
    DECODERS,
    DeviceCertificate,
    RealmArchivingCertificate,
    RealmKeyRotationCertificate,
    RealmNameCertificate,
    RealmRoleCertificate,
    RevokedUserCertificate,
    SequesterAuthorityCertificate,
    SequesterRevokedServiceCertificate,
    SequesterServiceCertificate,
    ShamirRecoveryBriefCertificate,
    ShamirRecoveryDeletionCertificate,
    ShamirRecoveryShareCertificate,
    UserCertificate,
    UserUpdateCertificate,
)
from parsec_server.protocol._runtime import as_str
from parsec_server.protocol.codec import DecodeError, declared_map_size, unpackb

__all__ = [
    "ANY_AUTHOR",
    "CERTIFICATES",
    "Certificate",
    "DeviceCertificate",
    "InvalidCertificate",
    "RealmArchivingCertificate",
    "RealmKeyRotationCertificate",
    "RealmNameCertificate",
    "RealmRoleCertificate",
    "RevokedUserCertificate",
    "SequesterAuthorityCertificate",
    "SequesterRevokedServiceCertificate",
    "SequesterServiceCertificate",
    "ShamirRecoveryBriefCertificate",
    "ShamirRecoveryDeletionCertificate",
    "ShamirRecoveryShareCertificate",
    "UserCertificate",
    "UserUpdateCertificate",
    "is_redacted",
    "load_serialized",
    "redacted_compare",
    "unsecure_load",
    "verify_and_load",
]

C = TypeVar("C", bound=Certificate)

SIGNATURE_SIZE = 64
FORMAT_V0 = 0x00
RSA_HEADER = b"RSASSA-PSS-SHA256:"
RSA_SIGNED = frozenset({SequesterServiceCertificate.TYPE, SequesterRevokedServiceCertificate.TYPE})
MAX_CONTENT_SIZE = 1024 * 1024  # decompressed; requests are limited to 1 MiB anyway


class InvalidCertificate(ValueError):
    """Bad framing, signature, type tag, content or author: the `invalid_certificate` outcome."""


class _AnyAuthor:
    def __repr__(self) -> str:
        return "ANY_AUTHOR"


ANY_AUTHOR: Any = _AnyAuthor()


def _cls(cls_or_type: type[C] | str) -> type[C]:
    if isinstance(cls_or_type, str):
        try:
            found: type[C] = CERTIFICATES[cls_or_type]  # type: ignore[assignment]
        except KeyError:
            raise ValueError(f"unknown certificate type {cls_or_type!r}") from None
        return found
    return cls_or_type


# ---------------------------------------------------------------------------------------------
# Content


_DCTX = zstandard.ZstdDecompressor()
_ZSTD_FEED = 512  # input fed per call: bounds what one call can inflate to (zstd bombs)


def _decompress(frame: bytes) -> bytes:
    dobj = _DCTX.decompressobj()
    out = bytearray()
    try:
        for start in range(0, len(frame), _ZSTD_FEED):
            out += dobj.decompress(frame[start : start + _ZSTD_FEED])
            if len(out) > MAX_CONTENT_SIZE:
                raise InvalidCertificate("content too large")
            if dobj.eof and start + _ZSTD_FEED < len(frame):
                raise InvalidCertificate("data after the zstd frame")
    except zstandard.ZstdError:
        raise InvalidCertificate("invalid zstd frame") from None
    if not dobj.eof or dobj.unused_data:
        raise InvalidCertificate("truncated zstd frame or trailing data")
    return bytes(out)


def load_serialized(cls_or_type: type[C] | str, serialized: bytes) -> C:
    """Decode `0x00 || zstd(msgpack)` (no signature) into the certificate class.

    Raises InvalidCertificate."""
    cls = _cls(cls_or_type)
    if not serialized or serialized[0] != FORMAT_V0:
        raise InvalidCertificate("unknown serialization format")
    raw = _decompress(serialized[1:])
    try:
        data = unpackb(raw, allow_trailing=True)
        if data.__class__ is not dict or len(data) != declared_map_size(raw):
            raise InvalidCertificate("content is not a map (or has duplicate keys)")
        tag = data.get("type")
        if tag.__class__ is not str:
            tag = as_str(tag, "type", "certificate type")
        if tag != cls.TYPE:
            raise InvalidCertificate(f"expected a {cls.TYPE}, got {tag!r:.60}")
        cert = DECODERS[cls.TYPE](data)
    except DecodeError as exc:
        raise InvalidCertificate(str(exc)) from None
    _check_invariants(cert)
    assert isinstance(cert, cls)
    return cert


def _check_invariants(cert: Certificate) -> None:
    if isinstance(cert, ShamirRecoveryBriefCertificate):
        total = sum(cert.per_recipient_shares.values())
        if not cert.threshold <= total <= 255:
            raise InvalidCertificate("shamir brief: need threshold <= total shares <= 255")
    elif isinstance(cert, SequesterAuthorityCertificate):
        _rsa_key(cert.verify_key_der)
    elif isinstance(cert, SequesterServiceCertificate):
        _rsa_key(cert.encryption_key_der)


# ---------------------------------------------------------------------------------------------
# Signatures


@functools.lru_cache(maxsize=256)
def _rsa_key(der: bytes) -> rsa.RSAPublicKey:
    try:
        key = load_der_public_key(der)
    except (ValueError, TypeError):
        raise InvalidCertificate("invalid RSA public key (SubjectPublicKeyInfo DER)") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidCertificate("not an RSA public key")
    return key


_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
_SHA256 = hashes.SHA256()


def _rsa_open(signed: bytes, verify_key_der: bytes) -> bytes:
    key = _rsa_key(verify_key_der)
    size = (key.key_size + 7) // 8
    if not signed.startswith(RSA_HEADER):
        raise InvalidCertificate("missing RSASSA-PSS-SHA256 header")
    body = signed[len(RSA_HEADER) :]
    signature, serialized = body[:size], body[size:]
    if len(signature) != size:
        raise InvalidCertificate("truncated signature")
    try:
        key.verify(signature, serialized, _PSS, _SHA256)
    except InvalidSignature:
        raise InvalidCertificate("bad signature") from None
    return serialized


def _ed25519_open(signed: bytes, verify_key: bytes) -> bytes:
    if len(verify_key) != 32:
        raise InvalidCertificate("invalid verify key")
    if len(signed) < SIGNATURE_SIZE:
        raise InvalidCertificate("truncated signature")
    try:
        opened: bytes = nacl.bindings.crypto_sign_open(signed, verify_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        raise InvalidCertificate("bad signature") from None
    return opened


def ed25519_verify(signature: bytes, message: bytes, verify_key: bytes) -> bool:
    """Detached Ed25519 check (auth tokens); False on any problem."""
    if len(signature) != SIGNATURE_SIZE or len(verify_key) != 32:
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + message, verify_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    return True


@overload
def verify_and_load(
    cls_or_type: type[C], signed: bytes, verify_key: bytes, *, expected_author: Any = ...
) -> C: ...
@overload
def verify_and_load(
    cls_or_type: str, signed: bytes, verify_key: bytes, *, expected_author: Any = ...
) -> Certificate: ...
def verify_and_load(
    cls_or_type: type[C] | str,
    signed: bytes,
    verify_key: bytes,
    *,
    expected_author: uuid.UUID | Any | None = ANY_AUTHOR,
) -> Certificate:
    """Verify the signature, then decode. `verify_key`: the signer's raw 32-byte Ed25519 key, or the
    sequester authority's RSA SubjectPublicKeyInfo DER for the two sequester service types.

    `expected_author`: a DeviceID the `author` field must equal, None to require a root-signed
    certificate (`author` nil), ANY_AUTHOR (default) to leave it to the caller.
    Raises InvalidCertificate."""
    cls = _cls(cls_or_type)
    if cls.TYPE in RSA_SIGNED:
        serialized = _rsa_open(signed, verify_key)
    else:
        serialized = _ed25519_open(signed, verify_key)
    cert = load_serialized(cls, serialized)
    if expected_author is not ANY_AUTHOR:
        author = getattr(cert, "author", None)
        if author != expected_author:
            raise InvalidCertificate("unexpected author")
    return cert


@overload
def unsecure_load(cls_or_type: type[C], signed: bytes) -> C: ...
@overload
def unsecure_load(cls_or_type: str, signed: bytes) -> Certificate: ...
def unsecure_load(cls_or_type: type[C] | str, signed: bytes) -> Certificate:
    """Decode without checking the signature (e.g. to learn `author` and pick the verify key)."""
    cls = _cls(cls_or_type)
    if cls.TYPE in RSA_SIGNED:
        if not signed.startswith(RSA_HEADER):
            raise InvalidCertificate("missing RSASSA-PSS-SHA256 header")
        body = signed[len(RSA_HEADER) :]
        # the signature has the key's size, unknown here: the serialized part starts with 0x00
        # followed by the zstd magic number.
        pos = body.find(b"\x00\x28\xb5\x2f\xfd")
        if pos < 0:
            raise InvalidCertificate("no serialized content")
        return load_serialized(cls, body[pos:])
    if len(signed) < SIGNATURE_SIZE:
        raise InvalidCertificate("truncated signature")
    return load_serialized(cls, signed[SIGNATURE_SIZE:])


# ---------------------------------------------------------------------------------------------
# Redaction


def is_redacted(cert: UserCertificate | DeviceCertificate) -> bool:
    if isinstance(cert, UserCertificate):
        return cert.human_handle is None
    return cert.device_label is None


def redacted_compare(
    full: UserCertificate | DeviceCertificate, redacted: UserCertificate | DeviceCertificate
) -> bool:
    """True if the two are equal except for the redacted field (human_handle / device_label).

    Like the official `redacted_compare`, this does not require `redacted` to be redacted: check
    `is_redacted(redacted)` too."""
    if type(full) is not type(redacted):
        return False
    skip = "human_handle" if isinstance(full, UserCertificate) else "device_label"
    return all(
        getattr(full, name) == getattr(redacted, name) for name in full.FIELDS if name != skip
    )
