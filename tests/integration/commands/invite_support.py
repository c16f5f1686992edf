"""Support for the invitation / greeting / shamir / TOS tests: an in-process server on a fresh
database, a bootstrapped organization, and a small client that signs certificates and requests like
a real one.

Fixtures (import `server_fixture`, `org_fixture` into a test module): `server`, `org`. Everything
goes over HTTP through the ASGI app (httpx ASGITransport), with reply validation against the schemas
on.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import httpx
import nacl.public
import nacl.signing
import pytest
from core_helpers import (
    bootstrap_token_from_url,
    device_certs,
    revoked_user_cert,
    sign,
    user_cert,
    user_update_cert,
)

from parsec_server.asgi.app import ParsecApp
from parsec_server.config import EmailConfig, ServerConfig
from parsec_server.crypto.tokens import generate_authenticated_token
from parsec_server.protocol.codec import now, packb, unpackb
from parsec_server.protocol.ids import HumanHandle

ADMIN_TOKEN = "s3cr3t-admin-token"
SERVER_ADDR = "parsec3://parsec.example.com:6777?no_ssl=true"
MSGPACK = "application/msgpack"


@dataclass
class Identity:
    """A device with its secrets, as its client knows them."""

    org_id: str
    user_id: uuid.UUID
    device_id: uuid.UUID
    signing_key: nacl.signing.SigningKey
    private_key: nacl.public.PrivateKey
    email: str
    label: str
    profile: str

    @property
    def human(self) -> HumanHandle:
        return HumanHandle(self.email, self.label)

    def token(self) -> str:
        return generate_authenticated_token(
            self.device_id, int(time.time()), bytes(self.signing_key)
        )

    def sign(self, content: dict[str, Any]) -> bytes:
        return sign(self.signing_key, {"author": self.device_id, **content})

    def device_certs(
        self, ts: datetime, device_id: uuid.UUID, label: str | None, verify_key: bytes
    ) -> dict[str, bytes]:
        """device_create's certificates for a new device of this user, signed by this device."""
        return device_certs(
            self.signing_key, self.device_id, ts, self.user_id, device_id, label, verify_key
        )


def new_identity(
    org_id: str, name: str, profile: str, user_id: uuid.UUID | None = None
) -> Identity:
    return Identity(
        org_id=org_id,
        user_id=user_id or uuid.uuid4(),
        device_id=uuid.uuid4(),
        signing_key=nacl.signing.SigningKey.generate(),
        private_key=nacl.public.PrivateKey.generate(),
        email=f"{name.lower()}@example.com",
        label=name.capitalize(),
        profile=profile,
    )


def user_certificates(
    author: Identity | None, root: nacl.signing.SigningKey | None, new: Identity, ts: datetime
) -> dict[str, bytes]:
    """user_certificate, device_certificate and their redacted versions for `new`, signed by
    `author` (or the root key at bootstrap)."""
    key = root if author is None else author.signing_key
    author_id = None if author is None else author.device_id
    assert key is not None
    public_key = bytes(new.private_key.public_key)
    device = device_certs(
        key,
        author_id,
        ts,
        new.user_id,
        new.device_id,
        f"{new.label}'s laptop",
        bytes(new.signing_key.verify_key),
    )
    return {
        "user_certificate": sign(
            key, user_cert(author_id, ts, new.user_id, new.human, public_key, new.profile)
        ),
        "redacted_user_certificate": sign(
            key, user_cert(author_id, ts, new.user_id, None, public_key, new.profile)
        ),
        **device,
    }


class RpcError(AssertionError):
    pass


@dataclass
class Server:
    app: ParsecApp
    http: httpx.AsyncClient
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def backend(self) -> Any:
        return self.app.backend

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return await self.http.post(path, content=body, headers=headers)

    async def rpc(
        self, path: str, auth: str | None, cmd: str, api_version: str = "5.5", **fields: Any
    ) -> dict[str, Any]:
        headers = {"Api-Version": api_version, "Content-Type": MSGPACK}
        if auth is not None:
            headers["Authorization"] = f"Bearer {auth}"
        r = await self.post(path, packb({"cmd": cmd, **fields}), headers)
        if r.status_code != 200:
            raise RpcError(f"HTTP {r.status_code}: {r.text[:200]}", r.status_code)
        rep: dict[str, Any] = unpackb(r.content)
        return rep

    async def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.request(
            method,
            f"/administration{path}",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            **kwargs,
        )

    def watch(self, org_id: str) -> None:
        """Record every event of the organization (as the event bus delivers them) in `events`."""
        self.backend.events.subscribe(org_id, self.events.append)

    async def wait_event(self, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            for ev in self.events:
                if match(ev):
                    return ev
            await asyncio.sleep(0.01)
        raise AssertionError(f"no matching event in {self.events}")


def http_status(exc: RpcError) -> int:
    return int(exc.args[1])


def build_config(db_url: str, email: EmailConfig | None = None) -> ServerConfig:
    return ServerConfig(
        db_url=db_url,
        administration_token=ADMIN_TOKEN,
        server_addr=SERVER_ADDR,
        validate_replies=True,
        db_min_connections=1,
        db_max_connections=4,
        email=email or EmailConfig(),
    )


async def start_server(config: ServerConfig) -> tuple[ParsecApp, httpx.AsyncClient]:
    app = ParsecApp(config)
    await app.startup()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://parsec.test")
    return app, http


@pytest.fixture(name="server")
async def server_fixture(db_url: str) -> AsyncIterator[Server]:
    app, http = await start_server(build_config(db_url))
    try:
        yield Server(app, http)
    finally:
        await http.aclose()
        await app.shutdown()


@dataclass
class Org:
    """A bootstrapped organization whose first user, alice, is ADMIN."""

    server: Server
    org_id: str
    root: nacl.signing.SigningKey
    alice: Identity
    last_ts: datetime = field(default_factory=now)

    def ts(self) -> datetime:
        """A fresh certificate timestamp, strictly after every earlier one of this test."""
        t = max(now(), self.last_ts + timedelta(microseconds=1))
        self.last_ts = t
        return t

    # --- requests -------------------------------------------------------------------------------
    async def auth(self, who: Identity, cmd: str, **fields: Any) -> dict[str, Any]:
        return await self.server.rpc(f"/authenticated/{self.org_id}", who.token(), cmd, **fields)

    async def tos(self, who: Identity, cmd: str, **fields: Any) -> dict[str, Any]:
        return await self.server.rpc(
            f"/authenticated/{self.org_id}/tos", who.token(), cmd, **fields
        )

    async def invited(self, token: bytes, cmd: str, **fields: Any) -> dict[str, Any]:
        return await self.server.rpc(f"/invited/{self.org_id}", token.hex(), cmd, **fields)

    # --- users ------------------------------------------------------------------------------------
    async def create_user(
        self,
        name: str,
        profile: str = "STANDARD",
        author: Identity | None = None,
        user_id: uuid.UUID | None = None,
    ) -> Identity:
        new = new_identity(self.org_id, name, profile, user_id)
        rep = await self.auth(
            author or self.alice,
            "user_create",
            **user_certificates(author or self.alice, None, new, self.ts()),
        )
        assert rep == {"status": "ok"}, rep
        return new

    async def create_device(self, of: Identity) -> Identity:
        new = replace(of, device_id=uuid.uuid4(), signing_key=nacl.signing.SigningKey.generate())
        rep = await self.auth(
            of,
            "device_create",
            **of.device_certs(
                self.ts(), new.device_id, "second device", bytes(new.signing_key.verify_key)
            ),
        )
        assert rep == {"status": "ok"}, rep
        return new

    async def invite_user(self, email: str = "zack@example.com") -> bytes:
        """The token of a new user invitation by alice (no email sent)."""
        rep = await self.auth(self.alice, "invite_new_user", claimer_email=email, send_email=False)
        assert rep["status"] == "ok", rep
        token: bytes = rep["token"]
        return token

    async def revoke(self, who: Identity) -> None:
        alice = self.alice
        cert = sign(alice.signing_key, revoked_user_cert(alice.device_id, self.ts(), who.user_id))
        rep = await self.auth(self.alice, "user_revoke", revoked_user_certificate=cert)
        assert rep == {"status": "ok"}, rep

    async def set_profile(self, who: Identity, profile: str) -> None:
        alice = self.alice
        cert = sign(
            alice.signing_key, user_update_cert(alice.device_id, self.ts(), who.user_id, profile)
        )
        rep = await self.auth(self.alice, "user_update", user_update_certificate=cert)
        assert rep == {"status": "ok"}, rep


async def bootstrap_org(server: Server, **settings: Any) -> Org:
    org_id = f"Org{uuid.uuid4().hex[:12]}"
    r = await server.admin("POST", "/organizations", json={"organization_id": org_id, **settings})
    assert r.status_code == 200, r.text
    token = bootstrap_token_from_url(r.json()["bootstrap_url"])
    root = nacl.signing.SigningKey.generate()
    alice = new_identity(org_id, "alice", "ADMIN")
    certs: dict[str, Any] = user_certificates(None, root, alice, now())
    rep = await server.rpc(
        f"/anonymous/{org_id}",
        None,
        "organization_bootstrap",
        bootstrap_token=token,
        root_verify_key=bytes(root.verify_key),
        sequester_authority_certificate=None,
        **certs,
    )
    assert rep == {"status": "ok"}, rep
    server.watch(org_id)
    return Org(server, org_id, root, alice)


@pytest.fixture(name="org")
async def org_fixture(server: Server) -> Org:
    return await bootstrap_org(server)


# --- greeting -------------------------------------------------------------------------------------

GREETER_STEPS = [
    ("NUMBER_0_WAIT_PEER", "public_key"),
    ("NUMBER_1_GET_HASHED_NONCE", None),
    ("NUMBER_2_SEND_NONCE", "greeter_nonce"),
    ("NUMBER_3_GET_NONCE", None),
    ("NUMBER_4_WAIT_PEER_TRUST", None),
    ("5", None),
    ("NUMBER_6_GET_PAYLOAD", None),
    ("NUMBER_7_SEND_PAYLOAD", "greeter_payload"),
    ("NUMBER_8_WAIT_PEER_ACKNOWLEDGMENT", None),
]
CLAIMER_STEPS = [
    ("NUMBER_0_WAIT_PEER", "public_key"),
    ("NUMBER_1_SEND_HASHED_NONCE", "hashed_nonce"),
    ("NUMBER_2_GET_NONCE", None),
    ("NUMBER_3_SEND_NONCE", "claimer_nonce"),
    ("NUMBER_4_SIGNIFY_TRUST", None),
    ("NUMBER_5_WAIT_PEER_TRUST", None),
    ("NUMBER_6_SEND_PAYLOAD", "claimer_payload"),
    ("NUMBER_7_GET_PAYLOAD", None),
    ("NUMBER_8_ACKNOWLEDGE", None),
]


def greeter_step(i: int, data: bytes | None = None) -> dict[str, Any]:
    tag, name = GREETER_STEPS[i]
    return {"step": tag} if name is None else {"step": tag, name: data}


def claimer_step(i: int, data: bytes | None = None) -> dict[str, Any]:
    tag, name = CLAIMER_STEPS[i]
    return {"step": tag} if name is None else {"step": tag, name: data}
