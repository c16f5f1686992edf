"""Helpers of the sequester tests: a sequestered organization (RSA sequester authority), service
certificates signed the official way (RSA-PSS-SHA256, armored), and a webhook HTTP server on
loopback that accepts, refuses, fails, hangs, or records what it was sent."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import json
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import nacl.signing
import zstandard
from aiohttp import web
from core_helpers import Device, Org, Server, new_user_certs, sign
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from parsec_server.protocol.codec import now, packb

_ZSTD = zstandard.ZstdCompressor()


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


def public_der(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def rsa_sign(key: rsa.RSAPrivateKey, content: dict[str, Any]) -> bytes:
    """`RSASSA-PSS-SHA256:` || signature || 0x00 || zstd(msgpack(content)) (protocol.md §2.3)."""
    serialized = b"\x00" + _ZSTD.compress(packb(content))
    signature = key.sign(
        serialized,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )
    return b"RSASSA-PSS-SHA256:" + signature + serialized


def service_cert(
    authority: rsa.RSAPrivateKey,
    service_id: uuid.UUID | None = None,
    label: str = "Service",
    ts: datetime.datetime | None = None,
) -> tuple[uuid.UUID, bytes]:
    service_id = service_id or uuid.uuid4()
    return service_id, rsa_sign(
        authority,
        {
            "type": "sequester_service_certificate",
            "timestamp": ts or now(),
            "service_id": service_id,
            "service_label": label,
            "encryption_key_der": public_der(rsa_key()),
        },
    )


def revoked_cert(
    authority: rsa.RSAPrivateKey, service_id: uuid.UUID, ts: datetime.datetime | None = None
) -> bytes:
    return rsa_sign(
        authority,
        {
            "type": "sequester_revoked_service_certificate",
            "timestamp": ts or now(),
            "service_id": service_id,
        },
    )


@dataclass
class SequesteredOrg:
    org: Org
    authority: rsa.RSAPrivateKey

    @property
    def id(self) -> str:
        return self.org.organization_id

    @property
    def alice(self) -> Device:
        return self.org.alice


async def bootstrap_sequestered(server: Server) -> SequesteredOrg:
    organization_id, token = await server.create_org()
    root = nacl.signing.SigningKey.generate()
    certs = new_user_certs(None, root, "alice", profile="ADMIN")
    authority = rsa_key()
    authority_cert = sign(
        root,
        {
            "type": "sequester_authority_certificate",
            "timestamp": certs.timestamp,
            "verify_key_der": public_der(authority),
        },
    )
    rep = await server.bootstrap_req(organization_id, certs, root, token, authority_cert)
    assert rep == {"status": "ok"}, rep
    alice = Device(
        server,
        organization_id,
        certs.user_id,
        certs.device_id,
        certs.signing_key,
        certs.human,
        "ADMIN",
    )
    return SequesteredOrg(Org(server, organization_id, root, alice, certs), authority)


async def add_service(
    server: Server, sorg: SequesteredOrg, config: dict[str, Any], label: str = "Service"
) -> uuid.UUID:
    service_id, cert = service_cert(sorg.authority, label=label)
    r = await server.admin(
        "POST",
        f"/organizations/{sorg.id}/sequester/services",
        json={"service_certificate": b64(cert), "config": config},
    )
    assert r.status_code == 200, r.text
    return service_id


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- webhook server ------------------------------------------------------------------------------


@dataclass
class Call:
    query: dict[str, str]
    body: bytes
    content_type: str | None


@dataclass
class Webhook:
    """What the loopback webhook server answers: `status` and `body`, after `delay` seconds."""

    url: str = ""
    status: int = 200
    body: bytes = b""
    delay: float = 0.0
    calls: list[Call] = field(default_factory=list)
    # run inside the handler before answering (e.g. check the server's database is free)
    during: Any = None


@contextlib.asynccontextmanager
async def webhook_server() -> AsyncIterator[Webhook]:
    hook = Webhook()

    async def handle(request: web.Request) -> web.Response:
        hook.calls.append(
            Call(dict(request.query), await request.read(), request.headers.get("Content-Type"))
        )
        if hook.during is not None:
            await hook.during()
        if hook.delay:
            await asyncio.sleep(hook.delay)
        return web.Response(status=hook.status, body=hook.body)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    hook.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield hook
    finally:
        await runner.cleanup()


def free_port_url() -> str:
    """A loopback URL where nothing listens (the port was just free)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/down"


def reason_body(reason: str | None) -> bytes:
    return json.dumps({"reason": reason}).encode()
