from __future__ import annotations

import pytest
from protocol_vectors import load

from parsec_server.protocol.addr import ServerAddr, bootstrap_organization_url, claim_url

URLS = load("misc.json")["urls"]
TYPES = {"claim_user": "USER", "claim_device": "DEVICE", "claim_shamir_recovery": "SHAMIR_RECOVERY"}


@pytest.mark.parametrize(
    "case", URLS, ids=lambda c: f"{c['action']}-{c['host']}-{c['port']}-{c['token'] is None}"
)
def test_urls_like_official(case: dict) -> None:  # type: ignore[type-arg]
    server = ServerAddr(case["host"], case["port"], case["use_ssl"])
    token = bytes.fromhex(case["token"]) if case["token"] else None
    if case["action"] == "bootstrap_organization":
        assert bootstrap_organization_url(server, "CoolOrg", token) == case["url"]
        assert (
            bootstrap_organization_url(server, "CoolOrg", token, http_redirection=True)
            == case["redirect"]
        )
    else:
        assert token is not None
        kind = TYPES[case["action"]]
        assert claim_url(server, "CoolOrg", kind, token) == case["url"]
        assert claim_url(server, "CoolOrg", kind, token, http_redirection=True) == case["redirect"]


def test_observed_bootstrap_payload() -> None:
    # observed-reference.md §3.1: p=xBBcan9btf0qxJ6t6wn7-V8H
    token = bytes.fromhex("5c6a7f5bb5fd2ac49eadeb09fbf95f07")
    url = bootstrap_organization_url(ServerAddr("127.0.0.1", 6770, False), "Org", token)
    assert url.endswith("&p=xBBcan9btf0qxJ6t6wn7-V8H")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("parsec3://127.0.0.1:6770?no_ssl=true", ServerAddr("127.0.0.1", 6770, False)),
        ("parsec3://example.com", ServerAddr("example.com", None, True)),
        ("parsec3://example.com:4433/", ServerAddr("example.com", 4433, True)),
        ("parsec3://example.com?no_ssl=false", ServerAddr("example.com", None, True)),
    ],
)
def test_server_addr_parse(url: str, expected: ServerAddr) -> None:
    assert ServerAddr.parse(url) == expected


@pytest.mark.parametrize(
    "url", ["http://example.com", "parsec3://", "parsec3://h/Org", "parsec3://h?no_ssl=maybe"]
)
def test_server_addr_parse_errors(url: str) -> None:
    with pytest.raises(ValueError):
        ServerAddr.parse(url)


def test_server_addr_urls() -> None:
    assert ServerAddr("h", 6770, False).to_url() == "parsec3://h:6770?no_ssl=true"
    assert ServerAddr("h", 443, True).to_url() == "parsec3://h"
    assert ServerAddr("h", 8080, False).to_http_url("/x") == "http://h:8080/x"
