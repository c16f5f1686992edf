"""Asynchronous enrollment: its two payloads and the X.509 side of its PKI identity system.

Payloads (schema `types/async_enrollment`), unsigned: `0x00 || zstd(msgpack map)` like a
certificate's serialized part, tagged `async_enrollment_submit_payload` /
`async_enrollment_accept_payload`.

X.509 (PKI identity system). What the official 3.9.3 server checks, in its order:

1. the leaf and every intermediate certificate are DER X.509 (`invalid_der_x509_certificate`);
2. at most 100 intermediates, and walking from the leaf to each issuer (subject == issuer) uses
   every intermediate exactly once (`invalid_x509_trustchain`).

When the operator gave trusted roots (`--trusted-x509-root-dir`), this server also checks, where
the official one loads the roots but does not use them yet:

3. the chain is valid now and ends at one of those roots: every signature, validity period, CA
   basic constraints and key usage, path length (RFC 5280 via `cryptography`; the leaf's own
   extensions are not constrained, as a smart card certificate is not a TLS one)
   (`invalid_x509_trustchain`);
4. the payload's signature (RSASSA-PSS-SHA256, any salt length) verifies with the leaf's public
   key (`invalid_submit_payload_signature` / `invalid_accept_payload_signature`).

Clients verify all of this on their side anyway; the server's check turns away junk early.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import verification

from parsec_server.crypto.certificates import FORMAT_V0, InvalidCertificate, _decompress
from parsec_server.protocol._runtime import as_bytes, as_str, bad, device_label, human_handle
from parsec_server.protocol.codec import DecodeError, declared_map_size, unpackb
from parsec_server.protocol.ids import HumanHandle

__all__ = [
    "MAX_INTERMEDIATES",
    "AcceptPayload",
    "InvalidPayload",
    "SubmitPayload",
    "TrustAnchorError",
    "X509Refusal",
    "check_chain",
    "load_accept_payload",
    "load_submit_payload",
    "load_trust_anchors",
    "verify_signature",
]

# Intermediates a chain may carry (leaf and root excluded): OpenSSL's default depth, as the official
# server.
MAX_INTERMEDIATES = 100
_PROFILES = frozenset({"ADMIN", "STANDARD", "OUTSIDER"})

X509Refusal = Literal["invalid_der_x509_certificate", "invalid_x509_trustchain"]


class InvalidPayload(ValueError):
    """Not a valid submit / accept payload."""


class TrustAnchorError(ValueError):
    """A file of the trusted root directory is not a PEM X.509 certificate."""


# --- payloads ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubmitPayload:
    verify_key: bytes
    public_key: bytes
    requested_device_label: str
    requested_human_handle: HumanHandle


@dataclass(frozen=True, slots=True)
class AcceptPayload:
    user_id: uuid.UUID
    device_id: uuid.UUID
    device_label: str
    human_handle: HumanHandle
    profile: str
    root_verify_key: bytes


def _load_map(raw: bytes, tag: str) -> dict[Any, Any]:
    if not raw or raw[0] != FORMAT_V0:
        raise InvalidPayload("unknown serialization format")
    try:
        content = _decompress(raw[1:])
        data = unpackb(content, allow_trailing=True)
    except (InvalidCertificate, DecodeError) as exc:
        raise InvalidPayload(str(exc)) from None
    if data.__class__ is not dict or len(data) != declared_map_size(content):
        raise InvalidPayload("content is not a map (or has duplicate keys)")
    if data.get("type") != tag:
        raise InvalidPayload(f"not a {tag}")
    return data


def _key32(value: Any, label: str) -> bytes:
    key = value if value.__class__ is bytes else as_bytes(value, label, "32-byte key")
    if len(key) != 32:
        raise bad(label, "32-byte key")
    return key


def _uuid(value: Any, label: str) -> uuid.UUID:
    if value.__class__ is not uuid.UUID:
        raise bad(label, "UUID")
    assert isinstance(value, uuid.UUID)
    return value


def load_submit_payload(raw: bytes) -> SubmitPayload:
    """Decode an `async_enrollment_submit_payload` (raises InvalidPayload)."""
    data = _load_map(raw, "async_enrollment_submit_payload")
    try:
        return SubmitPayload(
            verify_key=_key32(data["verify_key"], "verify_key"),
            public_key=_key32(data["public_key"], "public_key"),
            requested_device_label=device_label(
                data["requested_device_label"], "requested_device_label"
            ),
            requested_human_handle=human_handle(
                data["requested_human_handle"], "requested_human_handle"
            ),
        )
    except (KeyError, DecodeError) as exc:
        raise InvalidPayload(f"bad field {exc}") from None


def load_accept_payload(raw: bytes) -> AcceptPayload:
    """Decode an `async_enrollment_accept_payload` (raises InvalidPayload)."""
    data = _load_map(raw, "async_enrollment_accept_payload")
    try:
        profile = data["profile"]
        if profile.__class__ is not str:
            profile = as_str(profile, "profile", "UserProfile")
        if profile not in _PROFILES:
            raise bad("profile", "UserProfile")
        return AcceptPayload(
            user_id=_uuid(data["user_id"], "user_id"),
            device_id=_uuid(data["device_id"], "device_id"),
            device_label=device_label(data["device_label"], "device_label"),
            human_handle=human_handle(data["human_handle"], "human_handle"),
            profile=profile,
            root_verify_key=_key32(data["root_verify_key"], "root_verify_key"),
        )
    except (KeyError, DecodeError) as exc:
        raise InvalidPayload(f"bad field {exc}") from None


# --- X.509 ---------------------------------------------------------------------------------------


def load_trust_anchors(dirs: Sequence[Path]) -> tuple[x509.Certificate, ...]:
    """Every file under `dirs` (recursively, like the official server) as one PEM certificate.

    Raises TrustAnchorError naming the first file that is not one, OSError if a file is
    unreadable."""
    anchors: list[x509.Certificate] = []
    pending = list(dirs)
    while pending:
        directory = pending.pop()
        for entry in sorted(directory.iterdir()):
            if entry.is_dir():
                pending.append(entry)
                continue
            try:
                anchors.append(x509.load_pem_x509_certificate(entry.read_bytes()))
            except ValueError:
                raise TrustAnchorError(f"{entry}: not a PEM X.509 certificate") from None
    return tuple(anchors)


def _walk(leaf: x509.Certificate, intermediates: list[x509.Certificate]) -> bool:
    """From the leaf, follow issuers through the intermediates: each one must be used once."""
    unused = list(intermediates)
    current = leaf
    while True:
        found = next((i for i, c in enumerate(unused) if c.subject == current.issuer), None)
        if found is None:
            return not unused
        current = unused.pop(found)


def _ordered(leaf: x509.Certificate, intermediates: list[x509.Certificate]) -> list[bytes]:
    """The chain as DER, leaf first then each issuer (what list/info return)."""
    chain = [leaf]
    unused = list(intermediates)
    while unused:
        found = next(i for i, c in enumerate(unused) if c.subject == chain[-1].issuer)
        chain.append(unused.pop(found))
    return [c.public_bytes(Encoding.DER) for c in chain]


def _verifier(
    anchors: tuple[x509.Certificate, ...], now: datetime.datetime
) -> verification.ClientVerifier:
    return (
        verification.PolicyBuilder()
        .store(verification.Store(list(anchors)))
        .time(now)
        .max_chain_depth(MAX_INTERMEDIATES + 1)
        .extension_policies(
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=verification.ExtensionPolicy.permit_all(),
        )
        .build_client_verifier()
    )


def check_chain(
    leaf_der: bytes,
    intermediates_der: Sequence[bytes],
    anchors: tuple[x509.Certificate, ...],
    now: datetime.datetime,
) -> list[bytes] | X509Refusal:
    """The chain (DER, leaf first, intermediates in issuer order), or the refusal.

    `anchors` empty: the official server's checks only (steps 1-2 of the module docstring)."""
    try:
        leaf = x509.load_der_x509_certificate(leaf_der)
        intermediates = [x509.load_der_x509_certificate(der) for der in intermediates_der]
    except ValueError:
        return "invalid_der_x509_certificate"
    if len(intermediates) > MAX_INTERMEDIATES or not _walk(leaf, intermediates):
        return "invalid_x509_trustchain"
    if anchors:
        try:
            _verifier(anchors, now).verify(leaf, intermediates)
        except (verification.VerificationError, ValueError, UnsupportedAlgorithm):
            return "invalid_x509_trustchain"
    return _ordered(leaf, intermediates)


_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)


def verify_signature(leaf_der: bytes, algorithm: str, signature: bytes, message: bytes) -> bool:
    """The payload's PKI signature, by the leaf certificate's RSA key."""
    if algorithm != "RSASSA-PSS-SHA256":
        return False
    try:
        key = x509.load_der_x509_certificate(leaf_der).public_key()
    except (ValueError, UnsupportedAlgorithm):
        return False
    if not isinstance(key, rsa.RSAPublicKey):
        return False
    try:
        key.verify(signature, message, _PSS, hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True
