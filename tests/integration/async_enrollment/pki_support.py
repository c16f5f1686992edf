"""X.509 material and request builders for the asynchronous enrollment tests.

Certificates are built with `cryptography`: a trusted root CA -> intermediate CA -> leaves, and an
untrusted root with its own leaf. Payloads are `0x00 || zstd(msgpack)` like the official client's,
PKI signatures RSASSA-PSS-SHA256 by the leaf's key."""

from __future__ import annotations

import datetime
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from parsec_server.protocol.codec import packb
from parsec_server.protocol.ids import HumanHandle

_ZSTD = zstandard.ZstdCompressor()
_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Identity:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: rsa.RSAPrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(Encoding.PEM)

    def sign(self, message: bytes) -> bytes:
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        return self.key.sign(message, pss, hashes.SHA256())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    cn: str,
    issuer: Identity | None,
    *,
    ca: bool,
    email: str | None = None,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> Identity:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - _DAY)
        .not_valid_after(not_after or now + 30 * _DAY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if ca:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        ).add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=False, path_length=None), critical=True
        )
        if email:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False
            )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    cert = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    return Identity(cert, key)


@dataclass(frozen=True)
class Pki:
    root: Identity
    intermediate: Identity
    leaf: Identity  # carol, issued by the intermediate
    accepter: Identity  # issued by the intermediate
    expired: Identity  # issued by the intermediate, expired yesterday
    untrusted_root: Identity
    untrusted_leaf: Identity

    @classmethod
    def build(cls) -> Pki:
        root = _issue("Test Root CA", None, ca=True)
        intermediate = _issue("Test Intermediate CA", root, ca=True)
        now = datetime.datetime.now(datetime.UTC)
        untrusted_root = _issue("Untrusted Root CA", None, ca=True)
        return cls(
            root=root,
            intermediate=intermediate,
            leaf=_issue("Carol", intermediate, ca=False, email="carol@example.com"),
            accepter=_issue("Alice", intermediate, ca=False, email="alice@example.com"),
            expired=_issue(
                "Old",
                intermediate,
                ca=False,
                email="old@example.com",
                not_before=now - 30 * _DAY,
                not_after=now - _DAY,
            ),
            untrusted_root=untrusted_root,
            untrusted_leaf=_issue("Mallory", untrusted_root, ca=False, email="m@example.com"),
        )

    def write_root_dir(self, directory: Path) -> Path:
        (directory / "nested").mkdir(parents=True)
        (directory / "nested" / "root.pem").write_bytes(self.root.pem)
        return directory


# --- payloads and signatures ----------------------------------------------------------------------


def serialize(content: dict[str, Any]) -> bytes:
    return b"\x00" + _ZSTD.compress(packb(content))


def submit_payload(email: str = "carol@example.com", label: str = "Carol") -> bytes:
    return serialize(
        {
            "type": "async_enrollment_submit_payload",
            "verify_key": secrets.token_bytes(32),
            "public_key": secrets.token_bytes(32),
            "requested_device_label": "carol-laptop",
            "requested_human_handle": HumanHandle(email, label),
        }
    )


def accept_payload(
    user_id: uuid.UUID, device_id: uuid.UUID, human: HumanHandle, profile: str, root_vk: bytes
) -> bytes:
    return serialize(
        {
            "type": "async_enrollment_accept_payload",
            "user_id": user_id,
            "device_id": device_id,
            "device_label": "carol-laptop",
            "human_handle": human,
            "profile": profile,
            "root_verify_key": root_vk,
        }
    )


def openbao_signature(prefix: str, entity_id: str = "entity-1") -> dict[str, Any]:
    return {
        "type": "OPEN_BAO",
        "signature": "vault:v1:" + secrets.token_urlsafe(32),
        f"{prefix}_openbao_entity_id": entity_id,
    }


def pki_signature(
    prefix: str, signer: Identity, payload: bytes, intermediates: list[Identity]
) -> dict[str, Any]:
    return {
        "type": "PKI",
        "signature": signer.sign(payload),
        "algorithm": "RSASSA-PSS-SHA256",
        f"{prefix}_der_x509_certificate": signer.der,
        "intermediate_der_x509_certificates": [i.der for i in intermediates],
    }
