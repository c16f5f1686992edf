"""In-process harness for command tests: a real server (ParsecApp on a fresh migrated PostgreSQL
database) driven over ASGI by httpx, and a tiny client that builds real signed certificates (PyNaCl
Ed25519, zstd, msgpack through our codec) the way the official client does.

    async with running_server(db_url) as server:
        org = await server.bootstrap_org()           # alice, ADMIN
        bob = await org.alice.create_user("bob")
        rep = await bob.rpc("ping", ping="x")
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import nacl.signing
import pytest
import zstandard

from parsec_server.asgi.app import ParsecApp
from parsec_server.config import ServerConfig
from parsec_server.crypto.tokens import generate_authenticated_token
from parsec_server.protocol.codec import now, packb, unpackb
from parsec_server.protocol.ids import HumanHandle
from parsec_server.protocol.registry import decode_rep

ADMIN_TOKEN = "test-admin-token"
API_HEADERS = {"Api-Version": "5.5", "Content-Type": "application/msgpack"}
_ZSTD = zstandard.ZstdCompressor()


# --- certificates -------------------------------------------------------------------------------


def sign(key: nacl.signing.SigningKey, content: dict[str, Any]) -> bytes:
    """`signature || 0x00 || zstd(msgpack(content))` (protocol.md §2.3)."""
    serialized = b"\x00" + _ZSTD.compress(packb(content))
    return key.sign(serialized).signature + serialized


def user_cert(
    author: uuid.UUID | None,
    ts: datetime.datetime,
    user_id: uuid.UUID,
    human: HumanHandle | None,
    public_key: bytes,
    profile: str,
) -> dict[str, Any]:
    return {
        "type": "user_certificate",
        "author": author,
        "timestamp": ts,
        "user_id": user_id,
        "human_handle": None if human is None else list(human),
        "public_key": public_key,
        "algorithm": "X25519_XSALSA20_POLY1305",
        "profile": profile,
    }


def device_cert(
    author: uuid.UUID | None,
    ts: datetime.datetime,
    user_id: uuid.UUID,
    device_id: uuid.UUID,
    label: str | None,
    verify_key: bytes,
) -> dict[str, Any]:
    return {
        "type": "device_certificate",
        "purpose": "STANDARD",
        "author": author,
        "timestamp": ts,
        "user_id": user_id,
        "device_id": device_id,
        "device_label": label,
        "verify_key": verify_key,
        "algorithm": "ED25519",
    }


def device_certs(
    key: nacl.signing.SigningKey,
    author: uuid.UUID | None,
    ts: datetime.datetime,
    user_id: uuid.UUID,
    device_id: uuid.UUID,
    label: str | None,
    verify_key: bytes,
) -> dict[str, bytes]:
    """The two certificates of device_create (full and redacted), signed by `key`."""
    return {
        "device_certificate": sign(
            key, device_cert(author, ts, user_id, device_id, label, verify_key)
        ),
        "redacted_device_certificate": sign(
            key, device_cert(author, ts, user_id, device_id, None, verify_key)
        ),
    }


def revoked_user_cert(
    author: uuid.UUID, ts: datetime.datetime, user_id: uuid.UUID
) -> dict[str, Any]:
    return {
        "type": "revoked_user_certificate",
        "author": author,
        "timestamp": ts,
        "user_id": user_id,
    }


def user_update_cert(
    author: uuid.UUID, ts: datetime.datetime, user_id: uuid.UUID, profile: str
) -> dict[str, Any]:
    return {
        "type": "user_update_certificate",
        "author": author,
        "timestamp": ts,
        "user_id": user_id,
        "new_profile": profile,
    }


def realm_role_cert(
    author: uuid.UUID,
    ts: datetime.datetime,
    realm_id: uuid.UUID,
    user_id: uuid.UUID,
    role: str | None,
) -> dict[str, Any]:
    return {
        "type": "realm_role_certificate",
        "author": author,
        "timestamp": ts,
        "realm_id": realm_id,
        "user_id": user_id,
        "role": role,
    }


@dataclass
class NewUserCerts:
    """The four certificates of organization_bootstrap / user_create, and the new device's keys."""

    user_id: uuid.UUID
    device_id: uuid.UUID
    signing_key: nacl.signing.SigningKey
    human: HumanHandle
    profile: str
    timestamp: datetime.datetime
    user_certificate: bytes
    redacted_user_certificate: bytes
    device_certificate: bytes
    redacted_device_certificate: bytes

    def req(self) -> dict[str, Any]:
        return {
            "user_certificate": self.user_certificate,
            "device_certificate": self.device_certificate,
            "redacted_user_certificate": self.redacted_user_certificate,
            "redacted_device_certificate": self.redacted_device_certificate,
        }


def new_user_certs(
    author: uuid.UUID | None,
    key: nacl.signing.SigningKey,
    name: str = "alice",
    *,
    profile: str = "STANDARD",
    ts: datetime.datetime | None = None,
    human: HumanHandle | None = None,
    user_id: uuid.UUID | None = None,
    device_id: uuid.UUID | None = None,
) -> NewUserCerts:
    ts = ts or now()
    user_id = user_id or uuid.uuid4()
    device_id = device_id or uuid.uuid4()
    human = human or HumanHandle(f"{name.lower()}@example.com", name.capitalize())
    dev_key = nacl.signing.SigningKey.generate()
    public_key = secrets.token_bytes(32)
    vk = bytes(dev_key.verify_key)
    label = f"{name}-dev1"
    return NewUserCerts(
        user_id=user_id,
        device_id=device_id,
        signing_key=dev_key,
        human=human,
        profile=profile,
        timestamp=ts,
        user_certificate=sign(key, user_cert(author, ts, user_id, human, public_key, profile)),
        redacted_user_certificate=sign(
            key, user_cert(author, ts, user_id, None, public_key, profile)
        ),
        device_certificate=sign(key, device_cert(author, ts, user_id, device_id, label, vk)),
        redacted_device_certificate=sign(
            key, device_cert(author, ts, user_id, device_id, None, vk)
        ),
    )


# --- clients ------------------------------------------------------------------------------------


class HttpError(AssertionError):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}: {response.content[:200]!r}")
        self.status_code = response.status_code


@dataclass
class Device:
    server: Server
    organization_id: str
    user_id: uuid.UUID
    device_id: uuid.UUID
    signing_key: nacl.signing.SigningKey
    human: HumanHandle
    profile: str

    @property
    def verify_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    def sign(self, content: dict[str, Any]) -> bytes:
        return sign(self.signing_key, content)

    def headers(self) -> dict[str, str]:
        token = generate_authenticated_token(
            self.device_id, int(time.time()), bytes(self.signing_key)
        )
        return {**API_HEADERS, "Authorization": f"Bearer {token}"}

    async def post(self, body: bytes) -> httpx.Response:
        return await self.server.http.post(
            f"/authenticated/{self.organization_id}", content=body, headers=self.headers()
        )

    async def rpc(self, cmd: str, **fields: Any) -> dict[str, Any]:
        r = await self.post(packb({"cmd": cmd, **fields}))
        if r.status_code != 200:
            raise HttpError(r)
        return decode_rep(r.content)

    async def create_user(self, name: str, profile: str = "STANDARD", **kwargs: Any) -> Device:
        certs = new_user_certs(self.device_id, self.signing_key, name, profile=profile, **kwargs)
        rep = await self.rpc("user_create", **certs.req())
        assert rep == {"status": "ok"}, rep
        return Device(
            self.server,
            self.organization_id,
            certs.user_id,
            certs.device_id,
            certs.signing_key,
            certs.human,
            profile,
        )

    async def create_device(
        self, label: str = "dev2", ts: datetime.datetime | None = None
    ) -> Device:
        ts = ts or now()
        key = nacl.signing.SigningKey.generate()
        device_id = uuid.uuid4()
        vk = bytes(key.verify_key)
        rep = await self.rpc(
            "device_create",
            **device_certs(
                self.signing_key, self.device_id, ts, self.user_id, device_id, label, vk
            ),
        )
        assert rep == {"status": "ok"}, rep
        return Device(
            self.server,
            self.organization_id,
            self.user_id,
            device_id,
            key,
            self.human,
            self.profile,
        )

    async def revoke(
        self, user_id: uuid.UUID, ts: datetime.datetime | None = None
    ) -> dict[str, Any]:
        cert = self.sign(revoked_user_cert(self.device_id, ts or now(), user_id))
        return await self.rpc("user_revoke", revoked_user_certificate=cert)

    async def update_profile(
        self, user_id: uuid.UUID, profile: str, ts: datetime.datetime | None = None
    ) -> dict[str, Any]:
        cert = self.sign(user_update_cert(self.device_id, ts or now(), user_id, profile))
        return await self.rpc("user_update", user_update_certificate=cert)

    async def certificates(self, **after: Any) -> dict[str, Any]:
        rep = await self.rpc(
            "certificate_get",
            common_after=after.get("common_after"),
            sequester_after=after.get("sequester_after"),
            shamir_recovery_after=after.get("shamir_recovery_after"),
            realm_after=after.get("realm_after", {}),
        )
        assert rep["status"] == "ok", rep
        return rep


def bootstrap_token_from_url(url: str) -> bytes | None:
    """The bootstrap token in an administration API `bootstrap_url` (None: spontaneous)."""
    p = parse_qs(urlsplit(url).query)["p"][0]
    value = unpackb(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    assert value is None or isinstance(value, bytes)
    return value


@dataclass
class Org:
    server: Server
    organization_id: str
    root_key: nacl.signing.SigningKey
    alice: Device  # ADMIN, created at bootstrap
    bootstrap_certs: NewUserCerts = field(repr=False)


@dataclass
class Server:
    app: ParsecApp
    http: httpx.AsyncClient

    @property
    def backend(self) -> Any:
        return self.app.backend

    async def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", **kwargs.pop("headers", {})}
        return await self.http.request(method, f"/administration{path}", headers=headers, **kwargs)

    async def create_org(
        self, organization_id: str | None = None, **settings: Any
    ) -> tuple[str, bytes]:
        organization_id = organization_id or f"Org{uuid.uuid4().hex[:12]}"
        r = await self.admin(
            "POST", "/organizations", json={"organization_id": organization_id, **settings}
        )
        assert r.status_code == 200, r.text
        return organization_id, bootstrap_token_from_url(r.json()["bootstrap_url"])

    async def anonymous(self, organization_id: str, cmd: str, **fields: Any) -> dict[str, Any]:
        r = await self.http.post(
            f"/anonymous/{organization_id}",
            content=packb({"cmd": cmd, **fields}),
            headers=API_HEADERS,
        )
        if r.status_code != 200:
            raise HttpError(r)
        return decode_rep(r.content)

    async def bootstrap_req(
        self,
        organization_id: str,
        certs: NewUserCerts,
        root_key: nacl.signing.SigningKey,
        token: bytes | None,
        sequester_authority_certificate: bytes | None = None,
    ) -> dict[str, Any]:
        return await self.anonymous(
            organization_id,
            "organization_bootstrap",
            bootstrap_token=token,
            root_verify_key=bytes(root_key.verify_key),
            sequester_authority_certificate=sequester_authority_certificate,
            **certs.req(),
        )

    async def bootstrap_org(self, **settings: Any) -> Org:
        organization_id, token = await self.create_org(**settings)
        root_key = nacl.signing.SigningKey.generate()
        certs = new_user_certs(None, root_key, "alice", profile="ADMIN")
        rep = await self.bootstrap_req(organization_id, certs, root_key, token)
        assert rep == {"status": "ok"}, rep
        alice = Device(
            self,
            organization_id,
            certs.user_id,
            certs.device_id,
            certs.signing_key,
            certs.human,
            "ADMIN",
        )
        return Org(self, organization_id, root_key, alice, certs)


@contextlib.asynccontextmanager
async def running_server(db_url: str, **config: Any) -> AsyncIterator[Server]:
    cfg = ServerConfig(
        db_url=db_url,
        administration_token=ADMIN_TOKEN,
        server_addr="parsec3://127.0.0.1:6777?no_ssl=true",
        validate_replies=True,
        **config,
    )
    app = ParsecApp(cfg)
    await app.startup()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:6777"
        ) as http:
            yield Server(app, http)
    finally:
        await app.shutdown()


# --- fixtures ------------------------------------------------------------------------------------
# Import them into a test module: from core_helpers import org, server (with noqa F401).


@pytest.fixture
async def server(db_url: str) -> AsyncIterator[Server]:
    async with running_server(db_url) as s:
        yield s


@pytest.fixture
async def org(server: Server) -> Org:
    """A bootstrapped organization; alice (ADMIN) is its first user."""
    return await server.bootstrap_org()


# --- events -------------------------------------------------------------------------------------


class EventLog:
    """Events of one organization as this process receives them (after commit, through LISTEN)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self._changed.set()

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type_]

    async def wait_for(
        self, type_: str, count: int = 1, within: float = 5.0
    ) -> list[dict[str, Any]]:
        async with asyncio.timeout(within):
            while len(self.of_type(type_)) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.of_type(type_)


@contextlib.contextmanager
def capture_events(server: Server, organization_id: str) -> Any:
    log = EventLog()
    unsubscribe = server.backend.events.subscribe(organization_id, log)
    try:
        yield log
    finally:
        unsubscribe()


async def settle(server: Server, organization_id: str) -> None:
    """Wait until every event sent so far reached this process (a PINGED round trip)."""
    marker = uuid.uuid4().hex
    with capture_events(server, organization_id) as log:
        from parsec_server.events import types as event_types
        from parsec_server.events.bus import publish

        async with server.backend.db.connection() as conn:
            await publish(conn, event_types.pinged(organization_id, marker))
        async with asyncio.timeout(5):
            while not any(e.get("ping") == marker for e in log.events):
                await log.wait_for("PINGED", len(log.of_type("PINGED")) + 1)
