"""`--ssl-keyfile`/`--ssl-certfile`/`--ssl-ciphers`: the server speaks HTTPS itself."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
from conftest import EXE, TOKEN, clean_env, run_server, self_signed


def test_https_with_a_self_signed_certificate(db_url: str, tmp_path: Path) -> None:
    keyfile, certfile = self_signed(tmp_path)
    with run_server(
        db_url, tmp_path, "--ssl-keyfile", str(keyfile), "--ssl-certfile", str(certfile)
    ) as srv:
        assert f"parsec-server listening on https://127.0.0.1:{srv.port}" in srv.lines
        trust = ssl.create_default_context(cafile=str(certfile))
        with httpx.Client(base_url=srv.url("https"), verify=trust) as client:
            health = client.get("/health")
            assert health.status_code == 200 and health.json()["status"] == "ok"
            # The bootstrap URL says TLS (no `no_ssl=true`): the request came over HTTPS.
            r = client.post(
                "/administration/organizations",
                headers={"Authorization": f"Bearer {TOKEN}"},
                json={"organization_id": "OverTls"},
            )
            assert r.status_code == 200, r.text
            url = r.json()["bootstrap_url"]
            assert url.startswith(f"parsec3://127.0.0.1:{srv.port}/OverTls?")
            assert "no_ssl" not in url
        # A client that does not trust the certificate is refused; plain HTTP gets no answer.
        with pytest.raises(httpx.ConnectError):
            httpx.get(srv.url("https") + "/health")
        with pytest.raises(httpx.HTTPError):
            httpx.get(srv.url("http") + "/health", timeout=5)


def test_environment_variables_configure_tls(db_url: str, tmp_path: Path) -> None:
    keyfile, certfile = self_signed(tmp_path)
    env = clean_env(
        PARSEC_SSL_KEYFILE=str(keyfile),
        PARSEC_SSL_CERTFILE=str(certfile),
        PARSEC_SSL_CIPHERS="ECDHE+AESGCM,ECDHE+CHACHA20",
    )
    with run_server(db_url, tmp_path, env=env) as srv:
        trust = ssl.create_default_context(cafile=str(certfile))
        trust.maximum_version = ssl.TLSVersion.TLSv1_2  # so that the cipher list applies
        r = httpx.get(srv.url("https") + "/health", verify=trust)
        assert r.status_code == 200


@pytest.mark.parametrize(
    ("which", "fragment"),
    [
        ("key-only", "--ssl-keyfile and --ssl-certfile go together"),
        ("missing", "--ssl-certfile"),
        ("not-pem", "--ssl-certfile"),
        ("bad-ciphers", "--ssl-ciphers"),
    ],
)
def test_bad_tls_configuration_is_one_line_and_exit_2(
    tmp_path: Path, which: str, fragment: str
) -> None:
    keyfile, certfile = self_signed(tmp_path)
    args = ["--ssl-keyfile", str(keyfile), "--ssl-certfile", str(certfile)]
    if which == "key-only":
        args = args[:2]
    elif which == "missing":
        args[3] = str(tmp_path / "nowhere.pem")
    elif which == "not-pem":
        (tmp_path / "junk.pem").write_text("not a certificate\n")
        args[3] = str(tmp_path / "junk.pem")
    else:
        args += ["--ssl-ciphers", "NO-SUCH-CIPHER"]
    res = subprocess.run(
        [*EXE, "run", "--db", "postgresql://127.0.0.1:1/x", "--administration-token", "t", *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    assert res.returncode == 2, res.stderr
    assert fragment in res.stderr
    assert "Traceback" not in res.stderr
