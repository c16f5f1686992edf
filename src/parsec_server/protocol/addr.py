"""Parsec URLs (protocol.md §2.5, observed-reference.md §3.4).

    parsec3://<host>[:<port>]/<OrgID>?[no_ssl=true&]a=<action>&p=<payload>
    http(s)://<host>[:<port>]/redirect/<OrgID>?a=<action>&p=<payload>

The port is left out when it is the scheme's default (443 with TLS, 80 without). The payload is
base64url without padding of msgpack(value): the 16-byte token as `bin` for invitations, an
optional token (`nil` for spontaneous organizations) for bootstrap.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlsplit

from parsec_server.protocol.codec import packb

__all__ = [
    "CLAIM_ACTIONS",
    "ServerAddr",
    "bootstrap_organization_url",
    "claim_url",
    "encode_payload",
]

# invitation type -> URL action
CLAIM_ACTIONS = {
    "USER": "claim_user",
    "DEVICE": "claim_device",
    "SHAMIR_RECOVERY": "claim_shamir_recovery",
}


@dataclass(frozen=True, slots=True)
class ServerAddr:
    """Where clients reach the server (`--server-addr`, or the admin request's own URL)."""

    hostname: str
    port: int | None = None  # None = scheme default
    use_ssl: bool = True

    @classmethod
    def parse(cls, url: str) -> ServerAddr:
        """`parsec3://host[:port][?no_ssl=true]` -> ServerAddr (ValueError if malformed)."""
        parts = urlsplit(url)
        if parts.scheme != "parsec3" or not parts.hostname:
            raise ValueError(f"not a parsec3:// server address: {url!r}")
        if parts.path not in ("", "/"):
            raise ValueError(f"unexpected path in server address: {url!r}")
        no_ssl = parse_qs(parts.query).get("no_ssl", ["false"])[-1].lower()
        if no_ssl not in ("true", "false"):
            raise ValueError(f"bad no_ssl value in {url!r}")
        return cls(parts.hostname, parts.port, use_ssl=no_ssl != "true")

    @property
    def netloc(self) -> str:
        default = 443 if self.use_ssl else 80
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        if self.port is None or self.port == default:
            return host
        return f"{host}:{self.port}"

    def to_url(self) -> str:
        return f"parsec3://{self.netloc}" + ("" if self.use_ssl else "?no_ssl=true")

    def to_http_url(self, path: str = "") -> str:
        return f"{'https' if self.use_ssl else 'http'}://{self.netloc}{path}"

    def action_url(self, organization_id: str, action: str, payload: str) -> str:
        query = ("" if self.use_ssl else "no_ssl=true&") + f"a={action}&p={payload}"
        return f"parsec3://{self.netloc}/{quote(organization_id, safe='')}?{query}"

    def action_redirection_url(self, organization_id: str, action: str, payload: str) -> str:
        return self.to_http_url(
            f"/redirect/{quote(organization_id, safe='')}?a={action}&p={payload}"
        )


def encode_payload(value: object) -> str:
    return base64.urlsafe_b64encode(packb(value)).decode("ascii").rstrip("=")


def bootstrap_organization_url(
    server: ServerAddr, organization_id: str, token: bytes | None, *, http_redirection: bool = False
) -> str:
    payload = encode_payload(token)
    if http_redirection:
        return server.action_redirection_url(organization_id, "bootstrap_organization", payload)
    return server.action_url(organization_id, "bootstrap_organization", payload)


def claim_url(
    server: ServerAddr,
    organization_id: str,
    invitation_type: str,
    token: bytes,
    *,
    http_redirection: bool = False,
) -> str:
    """`invitation_type`: USER, DEVICE or SHAMIR_RECOVERY."""
    action = CLAIM_ACTIONS[invitation_type]
    payload = encode_payload(token)
    if http_redirection:
        return server.action_redirection_url(organization_id, action, payload)
    return server.action_url(organization_id, action, payload)
