"""--proxy-trusted-addresses decisions (asgi/proxy.py): addresses, networks, literals, `*`; the
per-peer memo gives the same answers and stays bounded."""

from __future__ import annotations

from parsec_server.asgi import proxy
from parsec_server.asgi.proxy import TrustedProxies


def test_addresses_networks_and_literals() -> None:
    trusted = TrustedProxies.parse("127.0.0.1, 10.0.0.0/8, ::1, unix:/run/proxy.sock")
    for _ in range(2):  # the second time from the memo
        assert trusted.trusts("127.0.0.1")
        assert trusted.trusts("10.20.30.40")
        assert trusted.trusts("::1")
        assert trusted.trusts("unix:/run/proxy.sock")
        assert not trusted.trusts("127.0.0.2")
        assert not trusted.trusts("192.168.1.1")
        assert not trusted.trusts("not an address")
        assert not trusted.trusts(None)
    assert TrustedProxies.parse("*").trusts("203.0.113.7")


def test_the_memo_is_bounded(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(proxy, "_KNOWN_PEERS", 8)
    trusted = TrustedProxies.parse("10.0.0.0/8")
    for i in range(100):
        assert trusted.trusts(f"10.0.0.{i}")
        assert not trusted.trusts(f"192.168.0.{i}")
        assert len(trusted._known) <= 8


def test_forwarded_headers_only_from_a_trusted_peer() -> None:
    trusted = TrustedProxies.parse("127.0.0.1")
    headers = [
        (b"host", b"internal:6777"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"parsec.example.com"),
        (b"x-forwarded-for", b"203.0.113.7, 127.0.0.1"),
    ]
    scope = {"client": ("127.0.0.1", 5000), "scheme": "http", "headers": list(headers)}
    trusted.apply(scope)
    assert scope["scheme"] == "https"
    assert (b"host", b"parsec.example.com") in scope["headers"]
    assert scope["client"] == ("203.0.113.7", 0)
    untrusted = {"client": ("198.51.100.1", 5000), "scheme": "http", "headers": list(headers)}
    trusted.apply(untrusted)
    assert untrusted["scheme"] == "http" and untrusted["client"] == ("198.51.100.1", 5000)
