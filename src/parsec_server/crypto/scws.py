"""SCWS mutual authentication (scws_service_mutual_challenges, docs/scws.md): the RSA operations.

SCWS (Idopte's smart-card web service) and the web application authenticate each other with raw
PKCS#1 v1.5 signatures *without* DigestInfo (the challenge itself is padded and signed, what
OpenSSL's `RSA_private_encrypt` / PHP's `openssl_private_encrypt` do in Idopte's example):

* the SCWS service signs the web application's challenge with one of Idopte's keys; the server checks
  it with the public key at that index of the operator's `IdoptePublicKeys` file;
* the server signs the SCWS service's challenge with the web application private key.

`cryptography` verifies such signatures (`recover_data_from_signature`, no hash) but cannot make one,
so `raw_sign` pads and exponentiates itself: CRT with the key's own parameters, the two secret
exponentiations with GMP's constant-time `powmod_sec` (gmpy2: 2 x ~1 ms for a 2048-bit key, against
~2 x 9 ms for Python's `pow`, which would hold the event loop that long), the message blinded by a
random factor, the result checked with the public exponent before it leaves (a faulty computation
never reveals the key).
"""

from __future__ import annotations

import re
import secrets

import gmpy2
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

__all__ = [
    "ScwsKeyError",
    "load_idopte_public_keys",
    "load_web_application_private_key",
    "raw_sign",
    "raw_verify",
]

_PEM_PUBLIC_KEY = re.compile(rb"-----BEGIN PUBLIC KEY-----.*?-----END PUBLIC KEY-----", re.DOTALL)
_REVOKED = b"!REVOKED!"
_PKCS1_OVERHEAD = 11  # 00 01, at least 8 bytes of FF, 00


class ScwsKeyError(ValueError):
    """A key file the server cannot use (the message says which and why)."""


def load_idopte_public_keys(pem: bytes) -> tuple[RSAPublicKey | None, ...]:
    """The `IdoptePublicKeys` file: its PEM public keys in order (the key id is the index). A block
    holding `!REVOKED!` is a revoked key: None, so that later keys keep their ids."""
    keys: list[RSAPublicKey | None] = []
    for number, match in enumerate(_PEM_PUBLIC_KEY.finditer(pem)):
        block = match.group()
        if _REVOKED in block:
            keys.append(None)
            continue
        try:
            key = load_pem_public_key(block)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise ScwsKeyError(
                f"Idopte public key #{number} is not a valid PEM key: {exc}"
            ) from None
        if not isinstance(key, RSAPublicKey):
            raise ScwsKeyError(f"Idopte public key #{number} is not an RSA key")
        keys.append(key)
    if not keys:
        raise ScwsKeyError("no PEM public key (-----BEGIN PUBLIC KEY-----) in the Idopte keys file")
    return tuple(keys)


def load_web_application_private_key(pem: str) -> RSAPrivateKey:
    """The web application's RSA private key, PEM (PKCS#8 as the official server wants; PKCS#1
    `BEGIN RSA PRIVATE KEY` is accepted too), unencrypted."""
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ScwsKeyError(
            f"the web application private key is not a valid PEM key: {exc}"
        ) from None
    if not isinstance(key, RSAPrivateKey):
        raise ScwsKeyError("the web application private key is not an RSA key")
    return key


def raw_verify(key: RSAPublicKey, data: bytes, signature: bytes) -> bool:
    """Is `signature` the raw PKCS#1 v1.5 signature (no DigestInfo) of exactly `data`?"""
    try:
        recovered = key.recover_data_from_signature(signature, padding.PKCS1v15(), None)
    except (InvalidSignature, ValueError):
        return False
    return secrets.compare_digest(recovered, data)


def raw_sign(key: RSAPrivateKey, data: bytes) -> bytes | None:
    """The raw PKCS#1 v1.5 signature (no DigestInfo) of `data`; None when `data` does not fit in the
    padding (longer than the modulus size - 11 bytes)."""
    size = (key.key_size + 7) // 8
    if len(data) > size - _PKCS1_OVERHEAD:
        return None
    encoded = b"\x00\x01" + b"\xff" * (size - 3 - len(data)) + b"\x00" + data
    m = int.from_bytes(encoded, "big")
    priv = key.private_numbers()
    n, e = priv.public_numbers.n, priv.public_numbers.e
    while True:
        r = secrets.randbelow(n - 3) + 2
        if gmpy2.gcd(r, n) == 1:
            break
    c = m * pow(r, e, n) % n  # blinded: (m * r^e)^d = m^d * r
    m1 = int(gmpy2.powmod_sec(c, priv.dmp1, priv.p))
    m2 = int(gmpy2.powmod_sec(c, priv.dmq1, priv.q))
    h = priv.iqmp * (m1 - m2) % priv.p
    s = (m2 + h * priv.q) * int(gmpy2.invert(r, n)) % n
    if pow(s, e, n) != m:
        raise ArithmeticError("RSA signature check failed")
    return s.to_bytes(size, "big")
