"""Harness of the account tests: a real server (in process, real PostgreSQL) whose validation
e-mails go to a real SMTP server on loopback (aiosmtpd), and a small account client that signs its
requests with the MAC token of protocol.md §1.6.

    async with account_server(db_url) as (server, box):
        acct = await create_account(server, box, "zoe@example.com")
        assert (await acct.rpc("ping", ping="x"))["pong"] == "x"
"""

from __future__ import annotations

import contextlib
import re
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "commands"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "email"))

import smtp_mailbox
from core_helpers import API_HEADERS, Server, running_server

from parsec_server.config import AccountConfig, EmailConfig
from parsec_server.crypto.tokens import generate_account_token
from parsec_server.protocol.codec import packb
from parsec_server.protocol.ids import HumanHandle
from parsec_server.protocol.registry import decode_rep

ARGON2ID = {"type": "ARGON2ID", "memlimit_kb": 131072, "opslimit": 3, "parallelism": 1}
CODE_RE = re.compile(r"Your validation code: ([A-Z0-9]{6})")


class HttpError(AssertionError):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}: {response.content[:200]!r}")
        self.status_code = response.status_code


class Mailbox(smtp_mailbox.Mailbox):
    """What the loopback SMTP server accepted."""

    def last_code(self, address: str) -> str:
        msg = self.to(address)[-1]
        body = msg.get_body(("plain",))
        assert body is not None
        found = CODE_RE.search(body.get_content())
        assert found is not None, body.get_content()
        return found.group(1)


@contextlib.asynccontextmanager
async def account_server(
    db_url: str,
    *,
    cooldown: int = 0,
    per_hour: int = 0,
    mode: str = "ENABLED_WITH_VAULT",
    template_dir: Path | None = None,
    metrics: bool = False,
) -> AsyncIterator[tuple[Server, Mailbox]]:
    box = Mailbox()
    config = AccountConfig(
        mode=mode,  # type: ignore[arg-type]
        validation_email_cooldown=cooldown,
        validation_email_max_per_hour=per_hour,
        fake_password_algorithm_seed=b"s" * 32,
    )
    with smtp_mailbox.smtp_server(box) as port:
        async with running_server(
            db_url,
            email=EmailConfig(host="127.0.0.1", port=port, template_dir=template_dir),
            account=config,
            metrics=metrics,
        ) as server:
            yield server, box


async def anonymous_server(server: Server, cmd: str, **fields: Any) -> dict[str, Any]:
    r = await server.http.post(
        "/anonymous_server", content=packb({"cmd": cmd, **fields}), headers=API_HEADERS
    )
    if r.status_code != 200:
        raise HttpError(r)
    return decode_rep(r.content)


@dataclass
class Account:
    server: Server
    email: str
    auth_method_id: uuid.UUID
    mac_key: bytes

    def headers(self, seconds: int | None = None) -> dict[str, str]:
        ts = int(time.time()) if seconds is None else seconds
        token = generate_account_token(self.auth_method_id, ts, self.mac_key)
        return {**API_HEADERS, "Authorization": f"Bearer {token}"}

    async def post(self, body: bytes, seconds: int | None = None) -> httpx.Response:
        return await self.server.http.post(
            "/authenticated_account", content=body, headers=self.headers(seconds)
        )

    async def rpc(self, cmd: str, **fields: Any) -> dict[str, Any]:
        r = await self.post(packb({"cmd": cmd, **fields}))
        if r.status_code != 200:
            raise HttpError(r)
        return decode_rep(r.content)

    def with_method(self, auth_method_id: uuid.UUID, mac_key: bytes) -> Account:
        return Account(self.server, self.email, auth_method_id, mac_key)


def new_method() -> tuple[uuid.UUID, bytes]:
    return uuid.uuid4(), secrets.token_bytes(32)


async def create_account(
    server: Server, box: Mailbox, address: str, label: str = "Zoe", key_access: bytes = b"ka1"
) -> Account:
    rep = await anonymous_server(server, "account_create_send_validation_email", email=address)
    assert rep == {"status": "ok"}, rep
    code = box.last_code(address)
    method_id, mac_key = new_method()
    rep = await anonymous_server(
        server,
        "account_create_proceed",
        account_create_step={
            "step": "NUMBER_1_CREATE",
            "validation_code": code,
            "human_handle": HumanHandle(address, label),
            "auth_method_password_algorithm": ARGON2ID,
            "auth_method_mac_key": mac_key,
            "auth_method_id": method_id,
            "vault_key_access": key_access,
        },
    )
    assert rep == {"status": "ok"}, rep
    return Account(server, address, method_id, mac_key)
