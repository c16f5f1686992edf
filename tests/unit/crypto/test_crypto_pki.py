"""crypto/pki.py: the asynchronous enrollment payloads as the official 3.9.3 library dumps them,
refusals of malformed ones, and the X.509 chain checks (structure; trusted roots; signature)."""

from __future__ import annotations

import datetime
import uuid

import pytest
import zstandard
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from parsec_server.crypto import pki
from parsec_server.protocol.codec import packb
from parsec_server.protocol.ids import HumanHandle

# Dumped by parsec-cloud 3.9.3 (`AsyncEnrollmentSubmitPayload(...).dump()`): verify key of
# SigningKey(bytes(range(32))), public key of PrivateKey(bytes(range(32, 64))).
OFFICIAL_SUBMIT = bytes.fromhex(
    "0028b52ffd0058e50600e40c85a474797065bf6173796e635f656e726f6c6c6d656e745f7375626d69745f70617"
    "96c6f6164aa7665726966795f6b6579c42003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664"
    "125531b8aa7075626c6963358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254b67265"
    "717565737465645f6465766963655f6c6162656caf4d792064657631206d616368696e6568756d616e5f68616e64"
    "6c6592b1616c696365406578616d706c652e636f6db2416c69636579204d634661636503006111e550ca84060775"
    "06"
)
# `AsyncEnrollmentAcceptPayload(...)`: user a11cec00..., device de10a11c..., ADMIN.
OFFICIAL_ACCEPT = bytes.fromhex(
    "0028b52ffd0058b50600640c87a474797065bf6173796e635f656e726f6c6c6d656e745f6163636570745f706179"
    "6c6f6164a7757365725f6964d802a11cec001000a9646576696365de10a11c00ac6c6162656caf4d792064657631"
    "206d616368696e65ac68756d616e5f68616e646c6592b1616c696365406578616d706c652e636f6db2416c696365"
    "79204d6346616365a770726f66696c65a541444d494eaf726f6f745f7665726966795f6b6579c42003a107bff3ce"
    "10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b80500cf22006406ecfdbcdb360005"
)
VERIFY_KEY = bytes.fromhex("03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8")
PUBLIC_KEY = bytes.fromhex("358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254")
ALICE = HumanHandle("alice@example.com", "Alicey McAliceFace")


def test_official_submit_payload() -> None:
    assert pki.load_submit_payload(OFFICIAL_SUBMIT) == pki.SubmitPayload(
        verify_key=VERIFY_KEY,
        public_key=PUBLIC_KEY,
        requested_device_label="My dev1 machine",
        requested_human_handle=ALICE,
    )


def test_official_accept_payload() -> None:
    assert pki.load_accept_payload(OFFICIAL_ACCEPT) == pki.AcceptPayload(
        user_id=uuid.UUID("a11cec00100000000000000000000000"),
        device_id=uuid.UUID("de10a11c000000000000000000000000"),
        device_label="My dev1 machine",
        human_handle=ALICE,
        profile="ADMIN",
        root_verify_key=VERIFY_KEY,
    )


def _dump(content: dict[str, object]) -> bytes:
    return b"\x00" + zstandard.ZstdCompressor().compress(packb(content))


SUBMIT_FIELDS: dict[str, object] = {
    "type": "async_enrollment_submit_payload",
    "verify_key": VERIFY_KEY,
    "public_key": PUBLIC_KEY,
    "requested_device_label": "dev",
    "requested_human_handle": ["a@example.com", "A"],
}


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x01" + OFFICIAL_SUBMIT[1:],  # unknown format
        OFFICIAL_SUBMIT[:-3],  # truncated zstd frame
        OFFICIAL_ACCEPT,  # the other payload
        _dump({**SUBMIT_FIELDS, "verify_key": b"short"}),
        _dump({**SUBMIT_FIELDS, "requested_human_handle": ["not an email", "A"]}),
        _dump({**SUBMIT_FIELDS, "requested_device_label": ""}),
        _dump({k: v for k, v in SUBMIT_FIELDS.items() if k != "public_key"}),
        _dump([1, 2]),  # type: ignore[arg-type]
    ],
)
def test_invalid_submit_payloads(raw: bytes) -> None:
    with pytest.raises(pki.InvalidPayload):
        pki.load_submit_payload(raw)


def test_invalid_accept_profile() -> None:
    with pytest.raises(pki.InvalidPayload):
        pki.load_accept_payload(OFFICIAL_ACCEPT.replace(b"ADMIN", b"ADMIX"))


# --- X.509 ----------------------------------------------------------------------------------------

NOW = datetime.datetime.now(datetime.UTC)


def _cert(
    cn: str,
    issuer: tuple[x509.Certificate, rsa.RSAPrivateKey] | None,
    ca: bool,
    days: tuple[int, int] = (-1, 30),
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW + datetime.timedelta(days=days[0]))
        .not_valid_after(NOW + datetime.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256()), key


def _der(c: tuple[x509.Certificate, rsa.RSAPrivateKey]) -> bytes:
    return c[0].public_bytes(Encoding.DER)


Chain = dict[str, tuple[x509.Certificate, rsa.RSAPrivateKey]]


@pytest.fixture(scope="module")
def chain() -> Chain:
    root = _cert("root", None, ca=True)
    inter = _cert("inter", root, ca=True)
    return {
        "root": root,
        "inter": inter,
        "leaf": _cert("leaf", inter, ca=False),
        "expired": _cert("expired", inter, ca=False, days=(-30, -1)),
        "other_root": _cert("other", None, ca=True),
    }


def test_structure_only_without_roots(chain: Chain) -> None:
    leaf, inter = _der(chain["leaf"]), _der(chain["inter"])
    assert pki.check_chain(leaf, [inter], (), NOW) == [leaf, inter]
    assert pki.check_chain(leaf, [], (), NOW) == [leaf]  # issuer not given: fine without roots
    assert pki.check_chain(b"junk", [], (), NOW) == "invalid_der_x509_certificate"
    assert pki.check_chain(leaf, [b"junk"], (), NOW) == "invalid_der_x509_certificate"
    unused = [inter, _der(chain["other_root"])]
    assert pki.check_chain(leaf, unused, (), NOW) == "invalid_x509_trustchain"
    too_many = [inter] * (pki.MAX_INTERMEDIATES + 1)
    assert pki.check_chain(leaf, too_many, (), NOW) == "invalid_x509_trustchain"
    expired = _der(chain["expired"])
    assert pki.check_chain(expired, [inter], (), NOW) == [expired, inter]


def test_trusted_roots(chain: Chain) -> None:
    roots = (chain["root"][0],)
    leaf, inter = _der(chain["leaf"]), _der(chain["inter"])
    assert pki.check_chain(leaf, [inter], roots, NOW) == [leaf, inter]
    assert pki.check_chain(leaf, [], roots, NOW) == "invalid_x509_trustchain"
    assert pki.check_chain(_der(chain["expired"]), [inter], roots, NOW) == (
        "invalid_x509_trustchain"
    )
    assert pki.check_chain(leaf, [inter], (chain["other_root"][0],), NOW) == (
        "invalid_x509_trustchain"
    )


def test_signature(chain: Chain) -> None:
    leaf_cert, leaf_key = chain["leaf"]
    der = leaf_cert.public_bytes(Encoding.DER)
    for salt in (32, padding.PSS.DIGEST_LENGTH, padding.PSS.MAX_LENGTH):
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt)
        sig = leaf_key.sign(b"payload", pss, hashes.SHA256())
        assert pki.verify_signature(der, "RSASSA-PSS-SHA256", sig, b"payload")
        assert not pki.verify_signature(der, "RSASSA-PSS-SHA256", sig, b"other")
        assert not pki.verify_signature(der, "OTHER", sig, b"payload")
    assert not pki.verify_signature(b"junk", "RSASSA-PSS-SHA256", b"sig", b"payload")
