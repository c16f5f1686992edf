"""SCWS and the client features server_config reports (openbao, cryptpad, advisory device file
protection), against both servers.

Both servers read the same `PARSEC_*` variables (the official names), so this file checks whatever
configuration the suite's servers were started with: by default none (everything disabled,
scws_service_mutual_challenges not_available); `scripts/compat-scws.sh reference|ours` starts them
with CryptPad, OpenBao, advisory protections and SCWS keys it generates (an Idopte keys file with a
revoked key at id 1), and gives the tests the Idopte private keys to sign as the SCWS service would.
Signatures are made by the official library (`RsaPrivateKey.sign_pkcs1v15_unprefixed`) and checked
with `cryptography`.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import parsec._parsec as p
import pytest
from client import API_VERSION, MSGPACK
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

SC = p.anonymous_server_cmds.latest.server_config
SCWS = p.anonymous_server_cmds.latest.scws_service_mutual_challenges
HEADERS = {"Api-Version": API_VERSION, "Content-Type": MSGPACK}


def _send(http: httpx.Client, req: object, rep_module: object) -> object:
    r = http.post("/anonymous_server", content=req.dump(), headers=HEADERS)  # type: ignore[attr-defined]
    assert r.status_code == 200, r.content
    return rep_module.Rep.load(r.content)  # type: ignore[attr-defined]


def test_server_config_reports_the_configured_features(http: httpx.Client) -> None:
    rep = _send(http, SC.Req(), SC)
    assert isinstance(rep, SC.RepOk), rep
    env = os.environ
    cryptpad = env.get("PARSEC_CRYPTPAD_SERVER_URL")
    if cryptpad is None:
        assert isinstance(rep.cryptpad, SC.CryptPadConfigDisabled)
    else:
        assert isinstance(rep.cryptpad, SC.CryptPadConfigEnabled)
        assert rep.cryptpad.server_url == cryptpad
    openbao = env.get("PARSEC_OPENBAO_SERVER_URL")
    if openbao is None:
        assert isinstance(rep.openbao, SC.OpenBaoConfigDisabled)
    else:
        assert isinstance(rep.openbao, SC.OpenBaoConfigEnabled)
        assert rep.openbao.server_url == openbao
        assert rep.openbao.secret.mount_path == env.get(
            "PARSEC_OPENBAO_SECRET_MOUNT_PATH", "secret"
        )
        assert rep.openbao.transit_mount_path == env.get(
            "PARSEC_OPENBAO_TRANSIT_MOUNT_PATH", "transit"
        )
        expected = [
            (auth_id, env[var])
            for auth_id, var in (
                ("HEXAGONE", "PARSEC_OPENBAO_AUTH_HEXAGONE_MOUNT_PATH"),
                ("PRO_CONNECT", "PARSEC_OPENBAO_AUTH_PRO_CONNECT_MOUNT_PATH"),
            )
            if var in env
        ]
        assert [(a.id, a.mount_path) for a in rep.openbao.auths] == expected
    protections = env.get("PARSEC_ADVISORY_DEVICE_FILE_PROTECTION", "").split()
    assert rep.advisory_device_file_protection == protections


def _idopte_private_keys() -> list[p.RsaPrivateKey | None]:
    """The Idopte private keys the servers' public keys file was made from (None: revoked)."""
    path = os.environ.get("PARSEC_COMPAT_SCWS_IDOPTE_PRIVATE_KEYS_DIR")
    if path is None:
        pytest.skip("SCWS is not configured: run scripts/compat-scws.sh reference|ours")
    keys: list[p.RsaPrivateKey | None] = []
    for f in sorted(Path(path).glob("key-*.pem")):
        text = f.read_text()
        keys.append(None if "REVOKED" in f.name else p.RsaPrivateKey.load_pkcs8_pem(text))
    return keys


def _web_application_key() -> RSAPrivateKey:
    pem = Path(os.environ["PARSEC_SCWS_WEB_APPLICATION_PRIVATE_KEY_FILE"]).read_bytes()
    key = load_pem_private_key(pem, password=None)
    assert isinstance(key, RSAPrivateKey)
    return key


def _challenge(key_id: int, signer: p.RsaPrivateKey, **changes: object) -> object:
    payload = b"3f9a0c1d7e5b2a46"
    fields: dict[str, object] = {
        "scws_service_challenge_payload": payload,
        "scws_service_challenge_signature": signer.sign_pkcs1v15_unprefixed(payload),
        "scws_service_challenge_key_id": key_id,
        "web_application_challenge_payload": b"c0ffee0123456789",
    }
    fields.update(changes)
    return SCWS.Req(**fields)


def test_scws_not_available_without_configuration(http: httpx.Client) -> None:
    if "PARSEC_SCWS_IDOPTE_PUBLIC_KEYS_FILE" in os.environ:
        pytest.skip("SCWS is configured in this run")
    req = SCWS.Req(
        scws_service_challenge_payload=b"a",
        scws_service_challenge_signature=b"b",
        scws_service_challenge_key_id=0,
        web_application_challenge_payload=b"c",
    )
    assert isinstance(_send(http, req, SCWS), SCWS.RepNotAvailable)


def test_scws_mutual_challenges(http: httpx.Client) -> None:
    keys = _idopte_private_keys()
    assert keys[0] is not None and keys[1] is None and keys[2] is not None
    web_app = _web_application_key().public_key()
    for key_id in (0, 2):
        signer = keys[key_id]
        assert signer is not None
        rep = _send(http, _challenge(key_id, signer), SCWS)
        assert isinstance(rep, SCWS.RepOk), rep
        recovered = web_app.recover_data_from_signature(
            rep.web_application_challenge_signature, padding.PKCS1v15(), None
        )
        assert recovered == b"c0ffee0123456789"
    good = keys[0]
    assert good is not None
    # a revoked key id, an id beyond the file
    for key_id in (1, 3, 2**40):
        rep = _send(http, _challenge(key_id, good), SCWS)
        assert isinstance(rep, SCWS.RepUnknownScwsServiceChallengeKeyId), (key_id, rep)
    # signed with another key than the one the id names; a tampered signature
    assert isinstance(
        _send(http, _challenge(2, good), SCWS), SCWS.RepInvalidScwsServiceChallengeSignature
    )
    bad = _challenge(0, good, scws_service_challenge_signature=b"\x00" * 256)
    assert isinstance(_send(http, bad, SCWS), SCWS.RepInvalidScwsServiceChallengeSignature)
    # the signature check comes before the web application's payload
    too_long = b"x" * 300  # more than a 2048-bit key can sign with PKCS#1 v1.5 padding
    both = _challenge(
        0,
        good,
        web_application_challenge_payload=too_long,
        scws_service_challenge_signature=b"\x01" * 256,
    )
    assert isinstance(_send(http, both, SCWS), SCWS.RepInvalidScwsServiceChallengeSignature)
    rep = _send(http, _challenge(0, good, web_application_challenge_payload=too_long), SCWS)
    assert isinstance(rep, SCWS.RepInvalidWebApplicationChallengePayload), rep
