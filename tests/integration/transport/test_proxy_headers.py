"""`--proxy-trusted-addresses`: behind a reverse proxy, the bootstrap URL of `POST
/administration/organizations` names the public host and scheme given by X-Forwarded-Host/Proto, and
the audit line the client address of X-Forwarded-For, only when the proxy is trusted."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from conftest import EXE, TOKEN, RunningServer, clean_env, run_server

FORWARDED = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "parsec.example.com",
    "X-Forwarded-For": "203.0.113.7",
}


def _create(srv: RunningServer, org: str, headers: dict[str, str]) -> str:
    r = httpx.post(
        srv.url() + "/administration/organizations",
        headers={"Authorization": f"Bearer {TOKEN}", **headers},
        json={"organization_id": org},
    )
    assert r.status_code == 200, r.text
    url: str = r.json()["bootstrap_url"]
    redirect: str = r.json()["bootstrap_url_as_http_redirection"]
    # Both URLs name the same server.
    assert urlsplit(redirect).netloc == urlsplit(url).netloc
    return url


def _audit_mentions(srv: RunningServer, text: str) -> bool:
    time.sleep(0.2)  # the log line is written after the reply
    return text in srv.stderr.read_text()


def test_trusted_proxy_sets_the_public_address(db_url: str, tmp_path: Path) -> None:
    # The default trusts 127.0.0.1 only, where the test client connects from.
    with run_server(db_url, tmp_path) as srv:
        url = _create(srv, "BehindProxy", FORWARDED)
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc, parts.path) == (
            "parsec3",
            "parsec.example.com",
            "/BehindProxy",
        )
        assert "no_ssl" not in parse_qs(parts.query)
        assert _audit_mentions(srv, "203.0.113.7")

        # A proxy that ends TLS elsewhere on a non-default port, and says plain HTTP.
        url = _create(
            srv,
            "BehindProxy2",
            {"X-Forwarded-Proto": "http", "X-Forwarded-Host": "parsec.example.com:8080"},
        )
        assert url.startswith("parsec3://parsec.example.com:8080/BehindProxy2?")
        assert parse_qs(urlsplit(url).query)["no_ssl"] == ["true"]

        # Without the headers: what the request named (Host), as before.
        url = _create(srv, "Direct", {})
        assert url.startswith(f"parsec3://127.0.0.1:{srv.port}/Direct?")
        assert "no_ssl=true" in url


@pytest.mark.parametrize("how", ["option", "variable", "forwarded_allow_ips"])
def test_untrusted_peer_headers_are_ignored(db_url: str, tmp_path: Path, how: str) -> None:
    args: tuple[str, ...] = ()
    env = clean_env()
    if how == "option":
        args = ("--proxy-trusted-addresses", "10.0.0.0/8, 192.168.1.1")
    elif how == "variable":
        env["PARSEC_PROXY_TRUSTED_ADDRESSES"] = "10.0.0.0/8"
    else:
        env["FORWARDED_ALLOW_IPS"] = "10.0.0.0/8"
    with run_server(db_url, tmp_path, *args, env=env) as srv:
        url = _create(srv, "NotFooled", FORWARDED)
        assert url.startswith(f"parsec3://127.0.0.1:{srv.port}/NotFooled?")
        assert "no_ssl=true" in url
        assert not _audit_mentions(srv, "203.0.113.7")


def test_forwarded_for_chain_skips_trusted_proxies(db_url: str, tmp_path: Path) -> None:
    with run_server(db_url, tmp_path, "--proxy-trusted-addresses", "127.0.0.1,10.0.0.0/8") as srv:
        _create(
            srv,
            "Chain",
            {"X-Forwarded-For": "198.51.100.1, 203.0.113.9, 10.1.2.3"},
        )
        # The right-most address that is not a trusted proxy: the client as our proxies saw it
        # (198.51.100.1 was written by the client itself and cannot be believed).
        assert _audit_mentions(srv, "203.0.113.9")
        assert not _audit_mentions(srv, "198.51.100.1")


def test_bad_option_value_is_one_line(tmp_path: Path) -> None:
    res = subprocess.run(
        [
            *EXE,
            "run",
            "--db",
            "postgresql://127.0.0.1:1/x",
            "--administration-token",
            "t",
            "--proxy-trusted-addresses",
            " , ",
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    assert res.returncode == 2
    assert "--proxy-trusted-addresses" in res.stderr and "Traceback" not in res.stderr
