"""Harness for the bad-input tests: a real server in-process, a bootstrapped organization, a raw
ASGI driver for byte-level requests, a log watcher, and the checks every reply must pass.

The server runs on an event loop owned by the fixture (`asyncio.Runner`), so Hypothesis drives plain
synchronous tests and each example is one `fz.run(coroutine)` on that loop:

    def test_x(fz: FuzzServer) -> None:
        reply = fz.run(fz.rpc("authenticated", packb({"cmd": "ping", "ping": "x"})))
        fz.check_rpc(reply)

protocol.md §1.4 lists the HTTP statuses an RPC route may answer; a 500, a traceback in the logs or
a request that does not finish are failures.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime
import logging
import os
import secrets
import time
import uuid
from collections.abc import Coroutine, Iterable, MutableMapping, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import nacl.signing
import zstandard
from hypothesis import HealthCheck, settings

from parsec_server.asgi.app import ParsecApp
from parsec_server.config import AccountConfig, ServerConfig
from parsec_server.crypto.tokens import generate_account_token, generate_authenticated_token
from parsec_server.protocol.codec import now, packb, unpackb
from parsec_server.protocol.registry import rep_statuses

T = TypeVar("T")

ADMIN_TOKEN = "t"
SERVER_ADDR = "parsec3://127.0.0.1:6777?no_ssl=true"
API_VERSION = "5.5"  # what the fuzz clients speak (official 3.9.3 clients)
ANNOUNCED_API_VERSION = "5.6"  # what the server answers (asgi/rpc.py)
MSGPACK = "application/msgpack"
REQUEST_TIMEOUT = 20.0  # seconds; longer means the server hangs on that input

# protocol.md §1.4 (+ 405 from our router); 500/503 are never acceptable for these inputs.
RPC_STATUSES = frozenset(
    {200, 401, 403, 404, 405, 406, 410, 413, 415, 422, 460, 461, 462, 463, 498}
)
# protocol.md §1.10: admin API answers 200/400/403/404/422 (FastAPI), plus 405 and 413 (body limit).
ADMIN_STATUSES = frozenset({200, 400, 403, 404, 405, 413, 422})
# Routes that exist but are not RPC (landing, health, redirect, unknown paths).
OTHER_STATUSES = frozenset({200, 302, 404, 405})

ROUTE_FAMILIES = (
    "anonymous",
    "anonymous_server",
    "invited",
    "authenticated",
    "tos",
    "authenticated_account",
)
_ZSTD = zstandard.ZstdCompressor()


def fuzz_settings(examples: int) -> settings:
    """Bounded Hypothesis runs: no deadline (a request may wait on PostgreSQL), no example database
    (nothing written in the tree), fixtures shared by the examples of a test on purpose.
    `PARSEC_FUZZ_SCALE=10` multiplies the example counts for a longer campaign."""
    return settings(
        max_examples=max(1, int(examples * float(os.environ.get("PARSEC_FUZZ_SCALE", "1")))),
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


# --- log watcher --------------------------------------------------------------------------------


class LogWatcher(logging.Handler):
    """Keeps ERROR records and any record carrying a traceback (`unhandled_error`, asyncio's
    "Task exception was never retrieved"...)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if (
            record.levelno >= logging.ERROR
            or record.exc_info
            or record.getMessage() == "unhandled_error"
        ):
            self.records.append(record)

    def take(self) -> list[logging.LogRecord]:
        out, self.records = self.records, []
        return out

    def assert_clean(self, context: str = "") -> None:
        bad = self.take()
        if bad:
            lines = []
            for r in bad:
                extra = {k: v for k, v in r.__dict__.items() if k in ("path", "method", "error")}
                lines.append(f"{r.levelname} {r.name}: {r.getMessage()} {extra}")
                if r.exc_info and r.exc_info[1] is not None:
                    lines.append(f"    {type(r.exc_info[1]).__name__}: {r.exc_info[1]}")
            raise AssertionError(
                f"error logged{' for ' + context if context else ''}:\n" + "\n".join(lines)
            )

    def __enter__(self) -> LogWatcher:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self)


# --- certificates and tokens --------------------------------------------------------------------


def serialize(content: dict[str, Any]) -> bytes:
    """`0x00 || zstd(msgpack(content))` (protocol.md §2.3)."""
    return b"\x00" + _ZSTD.compress(packb(content))


def sign(key: nacl.signing.SigningKey, content: dict[str, Any]) -> bytes:
    return key.sign(serialize(content)).signature + serialize(content)


def sign_serialized(key: nacl.signing.SigningKey, serialized: bytes) -> bytes:
    return key.sign(serialized).signature + serialized


def user_cert(
    author: uuid.UUID | None,
    ts: datetime.datetime,
    user_id: uuid.UUID,
    email: str | None,
    profile: str,
) -> dict[str, Any]:
    return {
        "type": "user_certificate",
        "author": author,
        "timestamp": ts,
        "user_id": user_id,
        "human_handle": None if email is None else [email, email.split("@")[0].capitalize()],
        "public_key": secrets.token_bytes(32),
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


def key_rotation_cert(
    author: uuid.UUID, ts: datetime.datetime, realm_id: uuid.UUID, key_index: int
) -> dict[str, Any]:
    return {
        "type": "realm_key_rotation_certificate",
        "author": author,
        "timestamp": ts,
        "realm_id": realm_id,
        "key_index": key_index,
        "encryption_algorithm": "BLAKE2_XSALSA20_POLY1305",
        "hash_algorithm": "SHA256",
        "key_canary": b"canary",
    }


def realm_name_cert(
    author: uuid.UUID, ts: datetime.datetime, realm_id: uuid.UUID, key_index: int
) -> dict[str, Any]:
    return {
        "type": "realm_name_certificate",
        "author": author,
        "timestamp": ts,
        "realm_id": realm_id,
        "key_index": key_index,
        "encrypted_name": b"name",
    }


def user_certs(
    author: uuid.UUID | None,
    key: nacl.signing.SigningKey,
    email: str,
    profile: str,
    ts: datetime.datetime | None = None,
    user_key: nacl.signing.SigningKey | None = None,
    device_ts: datetime.datetime | None = None,
) -> tuple[Device, dict[str, bytes]]:
    """A new user's four certificates (organization_bootstrap / user_create) and its device."""
    ts = ts or now()
    user_id, device_id = uuid.uuid4(), uuid.uuid4()
    dev_key = user_key or nacl.signing.SigningKey.generate()
    vk = bytes(dev_key.verify_key)
    user = user_cert(author, ts, user_id, email, profile)
    redacted_user = {**user, "human_handle": None}
    dts = device_ts or ts
    certs = {
        "user_certificate": sign(key, user),
        "redacted_user_certificate": sign(key, redacted_user),
        "device_certificate": sign(key, device_cert(author, dts, user_id, device_id, "dev1", vk)),
        "redacted_device_certificate": sign(
            key, device_cert(author, dts, user_id, device_id, None, vk)
        ),
    }
    return Device(user_id, device_id, dev_key, profile), certs


@dataclasses.dataclass
class Device:
    user_id: uuid.UUID
    device_id: uuid.UUID
    signing_key: nacl.signing.SigningKey
    profile: str

    def token(self, seconds: int | None = None) -> str:
        ts = int(time.time()) if seconds is None else seconds
        return generate_authenticated_token(self.device_id, ts, bytes(self.signing_key))

    def authorization(self, seconds: int | None = None) -> str:
        return f"Bearer {self.token(seconds)}"

    def sign(self, content: dict[str, Any]) -> bytes:
        return sign(self.signing_key, content)


# --- replies ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    request: str  # what was sent, for failure messages

    def rep(self) -> dict[str, Any]:
        data = unpackb(self.body)
        assert isinstance(data, dict), f"200 body is not a map: {self.body[:100]!r}"
        return data


def describe(method: str, path: str, headers: Iterable[tuple[Any, Any]], body: bytes) -> str:
    shown = body if len(body) <= 300 else body[:300] + b"...(%d bytes)" % len(body)
    return f"{method} {path} headers={list(headers)!r} body={shown!r}"


# --- the server ---------------------------------------------------------------------------------


class FuzzServer:
    """A started ParsecApp on its own event loop, an httpx client on it, and a bootstrapped org.

    Organization `org_id` (bootstrapped): alice (ADMIN), bob (STANDARD, shares `realm_id` as
    CONTRIBUTOR), realm `realm_id` (key index 1) with vlob `vlob_id` and block `block_id`, a pending
    user invitation `invitation_token`. Organization `fresh_org_id`: created, not bootstrapped
    (`fresh_bootstrap_token`). A Parsec account (`account_method_id`, `account_mac_key`:
    a client-provided method) with one vault item; no validation e-mail rate limit (the servers of a
    module share their database and client address)."""

    def __init__(self, db_url: str, logs: LogWatcher) -> None:
        self.db_url = db_url
        self.logs = logs
        self.runner = asyncio.Runner()
        self.app = ParsecApp(
            ServerConfig(
                db_url=db_url,
                administration_token=ADMIN_TOKEN,
                server_addr=SERVER_ADDR,
                validate_replies=True,
                account=AccountConfig(validation_email_cooldown=0, validation_email_max_per_hour=0),
                # cryptpad_register_session reaches its statement (else: cryptpad_unavailable)
                cryptpad_server_url="https://cryptpad.invalid",
            )
        )
        self.http: httpx.AsyncClient
        self.org_id = f"FuzzOrg{uuid.uuid4().hex[:8]}"
        self.fresh_org_id = f"FuzzFresh{uuid.uuid4().hex[:8]}"
        self.fresh_bootstrap_token: bytes = b""
        self.root_key = nacl.signing.SigningKey.generate()
        self.fresh_root_key = nacl.signing.SigningKey.generate()
        self.stranger_key = nacl.signing.SigningKey.generate()  # signs for no one
        self.alice: Device
        self.bob: Device
        self.realm_id = uuid.uuid4()
        self.vlob_id = uuid.uuid4()
        self.block_id = uuid.uuid4()
        self.invitation_token: bytes = b""
        self.account_method_id = uuid.uuid4()
        self.account_mac_key = secrets.token_bytes(32)
        self.last_common_ts: datetime.datetime  # bob's certificates
        self.last_realm_ts: datetime.datetime  # bob's realm_share

    def pools(self, family: str) -> Any:
        """Known ids/keys/tokens for fuzz_schema strategies; the usual certificate signer is alice,
        or the fresh organization's root key for the anonymous family (organization_bootstrap)."""
        from fuzz_schema import Pools

        a, b = self.alice, self.bob
        signers = [
            (a.signing_key, a.device_id),
            (b.signing_key, b.device_id),
            (self.root_key, None),
            (self.fresh_root_key, None),
            (self.stranger_key, uuid.uuid4()),
        ]
        if family == "anonymous":
            signers.insert(0, (self.fresh_root_key, None))
        return Pools(
            uuids={
                "UserID": [a.user_id, b.user_id],
                "DeviceID": [a.device_id, b.device_id],
                "VlobID": [self.realm_id, self.vlob_id],
                "BlockID": [self.block_id],
                "AccountAuthMethodID": [self.account_method_id],
            },
            tokens=[self.invitation_token, self.fresh_bootstrap_token],
            signers=signers,
            verify_keys=[
                bytes(self.fresh_root_key.verify_key),
                bytes(self.root_key.verify_key),
                bytes(a.signing_key.verify_key),
            ],
            emails=["alice@example.com", "bob@example.com", "zack@example.com"],
        )

    def world(self) -> Any:
        """What fuzz_smart strategies need to build valid certificate sets."""
        from fuzz_smart import World

        return World(
            self.alice,
            self.bob,
            self.realm_id,
            self.vlob_id,
            self.fresh_root_key,
            self.fresh_bootstrap_token,
            self.stranger_key,
        )

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coro)

    # lifecycle
    async def start(self) -> None:
        await self.app.startup()
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://testserver"
        )
        await self._populate()
        self.logs.assert_clean("setup")

    async def stop(self) -> None:
        try:
            if hasattr(self, "http"):
                await self.http.aclose()
        finally:
            await self.app.shutdown()

    def close(self) -> None:
        try:
            self.run(self.stop())
        finally:
            self.runner.close()

    # requests
    async def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        json: Any = None,
    ) -> Reply:
        sent_headers = dict(headers or {})
        async with asyncio.timeout(REQUEST_TIMEOUT):
            r = await self.http.request(
                method, path, headers=sent_headers, content=content, json=json
            )
        body = content if content is not None else repr(json).encode()
        return Reply(
            r.status_code,
            {k.lower(): v for k, v in r.headers.items()},
            r.content,
            describe(method, path, sent_headers.items(), body),
        )

    async def rpc(
        self,
        family: str,
        body: bytes,
        org_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """POST `body` to the route of `family` with the headers a correct client sends."""
        path, hdrs = self.route(family, org_id)
        hdrs.update(headers or {})
        return await self.request("POST", path, hdrs, body)

    def route(self, family: str, org_id: str | None = None) -> tuple[str, dict[str, str]]:
        org = org_id or self.org_id
        hdrs = {"Api-Version": API_VERSION, "Content-Type": MSGPACK}
        if family == "anonymous":
            return f"/anonymous/{org}", hdrs
        if family == "anonymous_server":
            return "/anonymous_server", hdrs
        if family == "invited":
            hdrs["Authorization"] = f"Bearer {self.invitation_token.hex()}"
            return f"/invited/{org}", hdrs
        if family == "authenticated_account":
            token = generate_account_token(
                self.account_method_id, int(time.time()), self.account_mac_key
            )
            hdrs["Authorization"] = f"Bearer {token}"
            return "/authenticated_account", hdrs
        hdrs["Authorization"] = self.alice.authorization()
        if family == "tos":
            return f"/authenticated/{org}/tos", hdrs
        assert family == "authenticated", family
        return f"/authenticated/{org}", hdrs

    async def raw(
        self,
        method: str,
        path: str,
        headers: list[tuple[bytes, bytes]],
        chunks: Sequence[bytes] = (),
        query: bytes = b"",
        stream: bool = False,
        disconnect_early: bool = False,
    ) -> Reply:
        """Drive the ASGI app directly: any header bytes, a body in `chunks` (`more_body`), no
        Content-Length added. `stream`: the client goes away after the first body part (SSE).
        `disconnect_early`: the client disconnects instead of sending the last chunk."""
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode("utf-8", "surrogateescape"),
            "query_string": query,
            "root_path": "",
            "headers": [(k.lower(), v) for k, v in headers],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 6777),
            "state": {},
        }
        parts = list(chunks) or [b""]
        done = asyncio.Event()
        status: list[int] = []
        resp_headers: dict[str, str] = {}
        body: list[bytes] = []
        sent = 0

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent < len(parts):
                if disconnect_early and sent == len(parts) - 1:
                    sent = len(parts)
                    return {"type": "http.disconnect"}
                chunk = parts[sent]
                sent += 1
                return {"type": "http.request", "body": chunk, "more_body": sent < len(parts)}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                assert not status, "response started twice"
                status.append(message["status"])
                for k, v in message.get("headers", []):
                    resp_headers[bytes(k).decode("latin-1").lower()] = bytes(v).decode("latin-1")
            elif message["type"] == "http.response.body":
                assert status, "body before response start"
                body.append(message.get("body", b""))
                if stream or not message.get("more_body", False):
                    done.set()

        async with asyncio.timeout(REQUEST_TIMEOUT):
            await self.app(scope, receive, send)
        total = b"".join(parts)
        return Reply(
            status[0] if status else -1,
            resp_headers,
            b"".join(body),
            describe(
                method, path + ("?" + query.decode("latin-1") if query else ""), headers, total
            ),
        )

    # checks
    def check_rpc(
        self, reply: Reply, family: str | None = None, cmd: str | None = None
    ) -> dict[str, Any] | None:
        """Never 500, a status of protocol.md §1.4; a 200 is a msgpack map with a string `status`
        that the command's schema allows (or `not_implemented`). Returns the decoded reply."""
        self.check_status(reply, RPC_STATUSES)
        if reply.status != 200:
            if reply.status not in (413, 422):
                assert reply.headers.get("api-version") == ANNOUNCED_API_VERSION, reply
            return None
        assert reply.headers.get("content-type") == MSGPACK, reply
        if not reply.body:  # GET /anonymous/<org> probe
            return None
        try:
            rep = unpackb(reply.body)
        except Exception as exc:
            raise AssertionError(f"200 body is not msgpack ({exc}) for {reply.request}") from None
        assert isinstance(rep, dict) and isinstance(rep.get("status"), str), (
            f"bad 200 body {rep!r} for {reply.request}"
        )
        if family is not None and cmd is not None and rep["status"] != "not_implemented":
            allowed = rep_statuses(family, cmd)
            assert rep["status"] in allowed, (
                f"status {rep['status']!r} not in {allowed} for {reply.request}"
            )
        return rep

    def check_admin(self, reply: Reply) -> None:
        self.check_status(reply, ADMIN_STATUSES)

    def check_status(self, reply: Reply, allowed: frozenset[int]) -> None:
        """Not a 500, a status in `allowed`, nothing logged at ERROR (logs are checked first so a
        failure never leaks into the next example)."""
        try:
            self.logs.assert_clean(reply.request)
        except AssertionError as exc:
            raise AssertionError(f"HTTP {reply.status}, {exc}") from None
        assert reply.status != 500, f"HTTP 500 for {reply.request}"
        assert reply.status in allowed, f"HTTP {reply.status} for {reply.request}"

    # setup
    async def _admin(self, method: str, path: str, json: Any = None) -> httpx.Response:
        return await self.http.request(
            method,
            f"/administration{path}",
            json=json,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )

    async def create_org(self, org_id: str) -> bytes:
        r = await self._admin("POST", "/organizations", {"organization_id": org_id})
        assert r.status_code == 200, r.text
        p = parse_qs(urlsplit(r.json()["bootstrap_url"]).query)["p"][0]
        token = unpackb(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
        assert isinstance(token, bytes)
        return token

    async def call(self, device: Device | None, cmd: str, **fields: Any) -> dict[str, Any]:
        """A well-formed request to the main organization (anonymous family when `device` is
        None); asserts HTTP 200."""
        family = "anonymous" if device is None else "authenticated"
        path, hdrs = self.route(family)
        if device is not None:
            hdrs["Authorization"] = device.authorization()
        r = await self.request("POST", path, hdrs, packb({"cmd": cmd, **fields}))
        assert r.status == 200, f"{cmd}: HTTP {r.status} {r.body[:200]!r}"
        return r.rep()

    async def _populate(self) -> None:
        token = await self.create_org(self.org_id)
        self.alice, certs = user_certs(None, self.root_key, "alice@example.com", "ADMIN")
        rep = await self.call(
            None,
            "organization_bootstrap",
            bootstrap_token=token,
            root_verify_key=bytes(self.root_key.verify_key),
            sequester_authority_certificate=None,
            **certs,
        )
        assert rep == {"status": "ok"}, rep
        a = self.alice
        self.last_common_ts = now()
        self.bob, certs = user_certs(
            a.device_id, a.signing_key, "bob@example.com", "STANDARD", self.last_common_ts
        )
        rep = await self.call(a, "user_create", **certs)
        assert rep == {"status": "ok"}, rep
        rep = await self.call(
            a,
            "realm_create",
            realm_role_certificate=a.sign(
                realm_role_cert(a.device_id, now(), self.realm_id, a.user_id, "OWNER")
            ),
        )
        assert rep == {"status": "ok"}, rep
        rep = await self.call(
            a,
            "realm_rotate_key",
            realm_key_rotation_certificate=a.sign(
                key_rotation_cert(a.device_id, now(), self.realm_id, 1)
            ),
            per_participant_keys_bundle_access={a.user_id: b"access"},
            per_sequester_service_keys_bundle_access=None,
            keys_bundle=b"bundle",
        )
        assert rep == {"status": "ok"}, rep
        self.last_realm_ts = now()
        rep = await self.call(
            a,
            "realm_share",
            realm_role_certificate=a.sign(
                realm_role_cert(
                    a.device_id, self.last_realm_ts, self.realm_id, self.bob.user_id, "CONTRIBUTOR"
                )
            ),
            recipient_keys_bundle_access=b"access",
            key_index=1,
        )
        assert rep == {"status": "ok"}, rep
        rep = await self.call(
            a,
            "vlob_create",
            realm_id=self.realm_id,
            vlob_id=self.vlob_id,
            key_index=1,
            timestamp=now(),
            blob=b"blob v1",
        )
        assert rep == {"status": "ok"}, rep
        rep = await self.call(
            a,
            "block_create",
            block_id=self.block_id,
            realm_id=self.realm_id,
            key_index=1,
            block=b"block data",
        )
        assert rep == {"status": "ok"}, rep
        rep = await self.call(
            a, "invite_new_user", claimer_email="zack@example.com", send_email=False
        )
        assert rep["status"] == "ok", rep
        self.invitation_token = rep["token"]
        self.fresh_bootstrap_token = await self.create_org(self.fresh_org_id)
        await self._create_account(f"fuzz-{uuid.uuid4().hex[:12]}@example.com")

    async def _create_account(self, email: str) -> None:
        """The account of the authenticated_account route; no SMTP server here: the code is read
        back from the database (the e-mail itself answers email_server_unavailable)."""
        anon_hdrs = {"Api-Version": API_VERSION, "Content-Type": MSGPACK}
        body = packb({"cmd": "account_create_send_validation_email", "email": email})
        r = await self.request("POST", "/anonymous_server", anon_hdrs, body)
        assert r.rep() == {"status": "email_server_unavailable"}, r
        async with self.app.backend.db.connection() as conn:
            code = await conn.fetchval(
                "SELECT code FROM account_validation_code WHERE purpose = 'CREATE' AND email = $1",
                email,
            )
        step = {
            "step": "NUMBER_1_CREATE",
            "validation_code": code,
            "human_handle": [email, "Bob"],
            "auth_method_password_algorithm": None,
            "auth_method_mac_key": self.account_mac_key,
            "auth_method_id": self.account_method_id,
            "vault_key_access": b"access",
        }
        body = packb({"cmd": "account_create_proceed", "account_create_step": step})
        r = await self.request("POST", "/anonymous_server", anon_hdrs, body)
        assert r.rep() == {"status": "ok"}, r
        path, hdrs = self.route("authenticated_account")
        item = b"vault item"
        body = packb({"cmd": "vault_item_upload", "item_fingerprint": b"f" * 32, "item": item})
        r = await self.request("POST", path, hdrs, body)
        assert r.rep() == {"status": "ok"}, r
