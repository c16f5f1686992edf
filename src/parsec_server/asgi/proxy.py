"""`--proxy-trusted-addresses`: X-Forwarded-Proto/Host/For honoured only from trusted peers.

Behind a reverse proxy the server sees the proxy's address, plain HTTP and whatever Host the proxy
sends. When the connecting peer is trusted, the request is rewritten before routing as if it had
arrived directly: `scheme` from X-Forwarded-Proto (`http`/`https` only), the `host` header from
X-Forwarded-Host, `client` from X-Forwarded-For (the right-most address that is not itself a trusted
proxy). The bootstrap URLs of the administration API are built from these (asgi/admin.py), so they
name the public address and scheme. From any other peer the headers are ignored (a client could
otherwise choose the host of the URLs the server hands out). See docs/configuration.md.
"""

from __future__ import annotations

import ipaddress

from parsec_server.asgi.http import Scope

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


_KNOWN_PEERS = 4096


class TrustedProxies:
    """Which peers may set X-Forwarded-*: IP addresses, networks (CIDR), literals (e.g. a UNIX
    socket path, compared as text) or `*` for every peer."""

    def __init__(self, entries: tuple[str, ...]) -> None:
        self.entries = entries
        self.everyone = "*" in entries
        self.networks: list[_Network] = []
        self.literals: set[str] = set()
        # Peer address -> trusted: parsing an address costs microseconds, at every request, and
        # peers are few (proxies, or clients: bounded by clearing when full).
        self._known: dict[str, bool] = {}
        for entry in entries:
            entry = entry.strip()
            if not entry or entry == "*":
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.literals.add(entry)

    @classmethod
    def parse(cls, value: str) -> TrustedProxies:
        """From the option's comma-separated text (ValueError when it names nothing)."""
        entries = tuple(e.strip() for e in value.split(",") if e.strip())
        if not entries:
            raise ValueError("expected IP addresses, networks, literals or *, comma-separated")
        return cls(entries)

    def trusts(self, host: str | None) -> bool:
        if self.everyone:
            return True
        if host is None:
            return False
        known = self._known.get(host)
        if known is not None:
            return known
        if host in self.literals:
            trusted = True
        else:
            try:
                ip = ipaddress.ip_address(host)
            except ValueError:
                trusted = False
            else:
                trusted = any(ip in net for net in self.networks)
        if len(self._known) >= _KNOWN_PEERS:
            self._known.clear()
        self._known[host] = trusted
        return trusted

    def apply(self, scope: Scope) -> None:
        """Rewrite `scope` from the X-Forwarded-* headers when its peer is trusted."""
        client = scope.get("client")
        if not self.trusts(client[0] if client else None):
            return
        proto = fwd_host = fwd_for = None
        for name, value in scope["headers"]:
            if name == b"x-forwarded-proto":
                proto = value
            elif name == b"x-forwarded-host":
                fwd_host = value
            elif name == b"x-forwarded-for":
                fwd_for = value
        if proto is not None:
            # The first element: what the client itself used (later proxies append theirs).
            scheme = proto.decode("latin-1").split(",")[0].strip().lower()
            if scheme in ("http", "https"):
                scope["scheme"] = scheme
        if fwd_host is not None:
            host = fwd_host.decode("latin-1").split(",")[0].strip()
            if host and host.isprintable():
                scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"host"]
                scope["headers"].append((b"host", host.encode("latin-1")))
        if fwd_for is not None:
            chain = [a.strip() for a in fwd_for.decode("latin-1").split(",") if a.strip()]
            if chain:
                peer = chain[0]
                for address in reversed(chain):
                    if not self.trusts(address):
                        peer = address
                        break
                scope["client"] = (peer, 0)
