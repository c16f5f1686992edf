"""scws_service_mutual_challenges and the client features of server_config, on our server (real
PostgreSQL), plus the `run` options that configure them (one line and exit code 2 on a bad key).

A fixed vector checks our raw signer against the official one: the signature below was made by the
official library (`RsaPrivateKey.sign_pkcs1v15_unprefixed`, parsec-cloud 3.9.3) with this test key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from core_helpers import API_HEADERS, Server, running_server
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from parsec_server.cli.client_features import ClientFeatures
from parsec_server.cli.run import run_cmd
from parsec_server.config import OpenBaoConfig, ScwsConfig
from parsec_server.crypto import scws
from parsec_server.protocol.codec import packb
from parsec_server.protocol.registry import decode_rep

OFFICIAL_KEY = """-----BEGIN PRIVATE KEY-----
MIICdgIBADANBgkqhkiG9w0BAQEFAASCAmAwggJcAgEAAoGBAMX0WsmHaDFGn4/L
hj4CkvChvOJe58fg124RRH2EKCQS/UNksOfkD7PuHOg5q8CyaQFEp16Hm3YrsOeN
O5h4zPiFDRn3D5fpcfM1m2cx+qJJMDAeLZNgQUUyKxIDVyXOAxOpk69qotUCNZNS
JWGEwoAUTE6ANvAhg98E0kXcPCWJAgMBAAECgYA9/7BHmj9J36Kt+MKMvWWkNCPi
inLxqTwP3xyiazffRItKBklZ95XrdtJa8WUXr0kv+n6pHrPUKQ75FsTpljwrtNQY
VCg7GYV0cJZAgSCY9DmTXpcH+T4EZvdH3fGAN709hrfTN5BTXBLoTn3ho4npGXEC
Ov1w+qY/Oirr+Ls2uQJBAO4hXEXc4yNsSJTm3li2B9cZLrX8IsZKGm96Dr2ApL4a
Ss68DCVRJcdFw6Bzxyvpe59cnuUHsiUhoUwgnjqNceMCQQDUzzDOM3BUke1NbwCJ
ohE+WXYXxM1DzyLqdMNAVUrX6rblTUyff0umHiClEdwuctbEezOieObuJoB3Y4dO
+najAkBaNLT5mhVJA+nyzgoIXNxXdSims56Qst2UwQ34Z1UA1oDkE4QeVsES3bCf
hXw7fDTiR3nBlMq9GiI57llCIPa1AkEAyeLJHUWFUmWh52zf6LIcg7bhJoloZeTy
7dPZi4We3Blqazya7VEZFj3MoGzCIjqF7p4mjQL/qXxTMW/1ZIKN2wJAAjRN4eoR
8HNsZZRSsTxmbs5cI374l9GBm3tbJF5Dqa+LsdysLAVmniFJFdyLSTZg2gSrMc1/
ZS+NBT2fVNnZfQ==
-----END PRIVATE KEY-----
"""
OFFICIAL_PAYLOAD = b"8f2b1c0e9a7d4e3f"
OFFICIAL_SIGNATURE = bytes.fromhex(
    "6d52f083794c9e10fd4a982deda3c86fe9f6a88b52e1c2eac935fb00d81137c5fc76d24e134d14f961a703240a0c00d2"
    "8c2284c96c9cbeef5be9e5465284ce15bed3a59b91d013e95a264ffa69848a875c3f9bf6263a812ed5aadbd2db61abdc"
    "51bee43c7434452eb275c3ba80a3ff55e078ccb773a1705c2c7d8d2df6970789"
)
REVOKED_BLOCK = b"-----BEGIN PUBLIC KEY-----\n!REVOKED!\n-----END PUBLIC KEY-----\n"


def _pem_public(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _pem_private(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


class Keys:
    def __init__(self) -> None:
        self.idopte = [rsa.generate_private_key(65537, 2048) for _ in range(2)]
        self.web_app = rsa.generate_private_key(65537, 2048)
        # ids: 0 usable, 1 revoked, 2 usable
        self.public_file = _pem_public(self.idopte[0]) + REVOKED_BLOCK + _pem_public(self.idopte[1])

    def by_id(self, key_id: int) -> rsa.RSAPrivateKey:
        return {0: self.idopte[0], 2: self.idopte[1]}[key_id]

    def config(self) -> ScwsConfig:
        return ScwsConfig(
            idopte_public_keys=scws.load_idopte_public_keys(self.public_file),
            web_application_private_key=scws.load_web_application_private_key(
                _pem_private(self.web_app)
            ),
        )


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


async def anonymous_server(server: Server, cmd: str, **fields: Any) -> dict[str, Any]:
    r = await server.http.post(
        "/anonymous_server", content=packb({"cmd": cmd, **fields}), headers=API_HEADERS
    )
    assert r.status_code == 200, r.content
    return decode_rep(r.content)


async def challenge(server: Server, keys: Keys, key_id: int, **changes: Any) -> dict[str, Any]:
    payload = b"0123456789abcdef"
    signer = keys.by_id(key_id if key_id in (0, 2) else 0)
    fields: dict[str, Any] = {
        "scws_service_challenge_payload": payload,
        "scws_service_challenge_signature": scws.raw_sign(signer, payload),
        "scws_service_challenge_key_id": key_id,
        "web_application_challenge_payload": b"fedcba9876543210",
    }
    fields.update(changes)
    return await anonymous_server(server, "scws_service_mutual_challenges", **fields)


def test_raw_signature_is_the_official_one() -> None:
    key = scws.load_web_application_private_key(OFFICIAL_KEY)
    assert scws.raw_sign(key, OFFICIAL_PAYLOAD) == OFFICIAL_SIGNATURE
    assert scws.raw_verify(key.public_key(), OFFICIAL_PAYLOAD, OFFICIAL_SIGNATURE)
    assert not scws.raw_verify(key.public_key(), OFFICIAL_PAYLOAD + b"x", OFFICIAL_SIGNATURE)
    # 1024-bit key: 128 - 11 bytes at most
    assert scws.raw_sign(key, b"x" * 117) is not None
    assert scws.raw_sign(key, b"x" * 118) is None


@pytest.fixture
async def scws_server(db_url: str, keys: Keys) -> AsyncIterator[Server]:
    async with running_server(
        db_url,
        scws=keys.config(),
        cryptpad_server_url="https://cryptpad.example.com",
        openbao=OpenBaoConfig(
            server_url="https://openbao.example.com",
            secret_mount_path="kv",
            transit_mount_path="tr",
            auths=(("HEXAGONE", "auth/hex"), ("PRO_CONNECT", "auth/pc")),
        ),
        advisory_device_file_protection=("PKI", "PASSWORD+TOTP"),
    ) as s:
        yield s


async def test_mutual_challenges(scws_server: Server, keys: Keys) -> None:
    for key_id in (0, 2):
        rep = await challenge(scws_server, keys, key_id)
        assert rep["status"] == "ok", rep
        recovered = keys.web_app.public_key().recover_data_from_signature(
            rep["web_application_challenge_signature"], padding.PKCS1v15(), None
        )
        assert recovered == b"fedcba9876543210"
    unknown = {"status": "unknown_scws_service_challenge_key_id"}
    for key_id in (1, 3, 2**64 - 1):  # revoked, beyond the file, the largest Index
        assert await challenge(scws_server, keys, key_id) == unknown
    invalid = {"status": "invalid_scws_service_challenge_signature"}
    other = scws.raw_sign(keys.by_id(2), b"0123456789abcdef")
    assert await challenge(scws_server, keys, 0, scws_service_challenge_signature=other) == invalid
    assert await challenge(scws_server, keys, 0, scws_service_challenge_signature=b"") == invalid
    assert await challenge(scws_server, keys, 0, scws_service_challenge_payload=b"other") == invalid
    too_long = b"x" * 246  # 2048-bit key: 256 - 11 = 245 bytes at most
    assert await challenge(scws_server, keys, 0, web_application_challenge_payload=too_long) == {
        "status": "invalid_web_application_challenge_payload"
    }
    ok = await challenge(scws_server, keys, 0, web_application_challenge_payload=too_long[:-1])
    assert ok["status"] == "ok"


async def test_server_config_reports_the_features(scws_server: Server) -> None:
    rep = await anonymous_server(scws_server, "server_config")
    assert rep["cryptpad"] == {"type": "ENABLED", "server_url": "https://cryptpad.example.com"}
    assert rep["openbao"] == {
        "type": "ENABLED",
        "server_url": "https://openbao.example.com",
        "secret": {"type": "KV2", "mount_path": "kv"},
        "transit_mount_path": "tr",
        "auths": [
            {"id": "HEXAGONE", "mount_path": "auth/hex"},
            {"id": "PRO_CONNECT", "mount_path": "auth/pc"},
        ],
    }
    assert rep["advisory_device_file_protection"] == ["PKI", "PASSWORD+TOTP"]


async def test_defaults_disabled(db_url: str) -> None:
    async with running_server(db_url) as server:
        rep = await anonymous_server(server, "server_config")
        assert rep["cryptpad"] == {"type": "DISABLED"}
        assert rep["openbao"] == {"type": "DISABLED"}
        assert rep["advisory_device_file_protection"] == []
        challenge_rep = await anonymous_server(
            server,
            "scws_service_mutual_challenges",
            scws_service_challenge_payload=b"a",
            scws_service_challenge_signature=b"b",
            scws_service_challenge_key_id=0,
            web_application_challenge_payload=b"c",
        )
        assert challenge_rep == {"status": "not_available"}


# --- run options ------------------------------------------------------------------------------


@pytest.fixture
def key_files(tmp_path: Path, keys: Keys) -> Iterator[tuple[Path, Path]]:
    public = tmp_path / "IdoptePublicKeys"
    public.write_bytes(keys.public_file)
    private = tmp_path / "web.pem"
    private.write_text(_pem_private(keys.web_app))
    yield public, private


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """`run` with options that stop before anything listens or connects (exit 2 on a bad
    option); a good configuration is caught at the listen step with an impossible port."""
    result = CliRunner().invoke(
        run_cmd,
        ["--db", "postgresql://127.0.0.1:1/none", "--administration-token", "t", *args],
        env=env,
    )
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--openbao-server-url", "https://bao"], "At least one --openbao-auth-* option"),
        (["--advisory-device-file-protection", "TOTP+PKI"], "Invalid value"),
        (["--advisory-device-file-protection", "pki"], "Invalid value"),
    ],
)
def test_bad_feature_options(args: list[str], message: str) -> None:
    code, output = _run(*args)
    assert code == 2, output
    assert message in output
    assert "Traceback" not in output


def test_scws_options(key_files: tuple[Path, Path], tmp_path: Path) -> None:
    public, private = key_files
    code, output = _run("--scws-idopte-public-keys-file", str(public))
    assert (code, "SCWS needs both" in output) == (2, True), output
    code, output = _run(
        "--scws-web-application-private-key-file",
        str(private),
        "--scws-web-application-private-key-content",
        private.read_text(),
        "--scws-idopte-public-keys-file",
        str(public),
    )
    assert (code, "not both" in output) == (2, True), output
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n")
    code, output = _run(
        "--scws-idopte-public-keys-file",
        str(garbage),
        "--scws-web-application-private-key-file",
        str(private),
    )
    assert (code, "Invalid SCWS configuration: Idopte public key #0" in output) == (2, True), output
    code, output = _run(
        "--scws-idopte-public-keys-file",
        str(public),
        "--scws-web-application-private-key-file",
        str(public),  # a public key where the private one is expected
    )
    assert (code, "web application private key" in output) == (2, True), output
    assert "Traceback" not in output


def test_feature_options_reach_the_config(
    key_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Good options, through the official PARSEC_* variables: the config `run` builds."""
    public, private = key_files
    seen: list[Any] = []

    def fake_listen(host: str, port: int) -> Any:
        raise SystemExit(0)

    import parsec_server.cli.run as run_module

    real = ClientFeatures.from_options

    def capture(opts: dict[str, Any]) -> Any:
        features = real(opts)
        seen.append(features)
        return features

    monkeypatch.setattr(run_module, "_listen", fake_listen)
    monkeypatch.setattr(ClientFeatures, "from_options", staticmethod(capture))
    code, output = _run(
        env={
            "PARSEC_SCWS_IDOPTE_PUBLIC_KEYS_FILE": str(public),
            "PARSEC_SCWS_WEB_APPLICATION_PRIVATE_KEY_CONTENT": private.read_text(),
            "PARSEC_OPENBAO_SERVER_URL": "https://bao",
            "PARSEC_OPENBAO_AUTH_PRO_CONNECT_MOUNT_PATH": "pc",
            "PARSEC_ADVISORY_DEVICE_FILE_PROTECTION": "PKI KEYRING+TOTP",
            "PARSEC_CRYPTPAD_SERVER_URL": "https://pad",
        }
    )
    assert code == 0, output
    (features,) = seen
    assert features.cryptpad_server_url == "https://pad"
    assert features.advisory_device_file_protection == ("PKI", "KEYRING+TOTP")
    assert features.openbao == OpenBaoConfig(
        "https://bao", "secret", "transit", (("PRO_CONNECT", "pc"),)
    )
    assert features.scws is not None
    assert len(features.scws.idopte_public_keys) == 3
    assert features.scws.idopte_public_keys[1] is None
