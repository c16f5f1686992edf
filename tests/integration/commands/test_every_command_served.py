"""Every command of every family in the protocol schemas (3.9.3 + the API 5.6 additions) has a
handler and answers with one of its own statuses, never `not_implemented`.

The command list comes from the JSON5 schemas themselves (tools/gen_protocol.py), not from our
generated modules or registry. Each command is then sent over HTTP to a real server (in-process, real
PostgreSQL) on its route with a valid authentication: the official library's request bytes
(tests/unit/protocol/vectors/requests.json, API 5.6: api56.json). No allowlist: a command without a
handler fails here.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import sys
import time
import uuid
from collections.abc import AsyncIterator, MutableMapping
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from core_helpers import API_HEADERS, Org, Server, running_server

from parsec_server.commands import registry
from parsec_server.crypto.tokens import generate_account_token
from parsec_server.protocol.codec import packb, unpackb
from parsec_server.protocol.registry import decode_rep

ROOT = Path(__file__).resolve().parents[3]
VECTORS = ROOT / "tests" / "unit" / "protocol" / "vectors"


@cache
def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_protocol", ROOT / "tools" / "gen_protocol.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_protocol", module)
    spec.loader.exec_module(module)
    return module


def _schema_dir() -> Path | None:
    for candidate in (
        ROOT.parent / "shared" / "parsec-spec" / "schema",
        Path("/work/shared/parsec-spec/schema"),
    ):
        if (candidate / "protocol").is_dir():
            return candidate
    return None


def schema_commands() -> list[tuple[str, str]]:
    """(family, command) of every schema command: 3.9.3 and the additions beside it."""
    schema_dir = _schema_dir()
    if schema_dir is None:
        return []
    gen = _generator()
    return [(family, c.cmd) for family in gen.FAMILIES for c in gen.load_family(schema_dir, family)]


COMMANDS = schema_commands()


def _vectors() -> dict[tuple[str, str], bytes]:
    import json

    out: dict[tuple[str, str], bytes] = {}
    requests = json.loads((VECTORS / "requests.json").read_text(encoding="utf-8"))
    api56 = json.loads((VECTORS / "api56.json").read_text(encoding="utf-8"))["requests"]
    for v in [*requests, *api56]:
        out.setdefault((v["family"], v["cmd"]), bytes.fromhex(v["hex"]))
    return out


def test_schemas_list_every_family() -> None:
    if not COMMANDS:
        pytest.skip("JSON5 schemas not available (../shared/parsec-spec/schema absent)")
    families = {family for family, _ in COMMANDS}
    assert families == {
        "anonymous",
        "anonymous_server",
        "invited",
        "authenticated",
        "tos",
        "authenticated_account",
    }
    assert ("authenticated", "cryptpad_register_session") in COMMANDS  # API 5.6
    assert len(COMMANDS) == 79


# Served on its own transport, not as an RPC command: events_listen is the SSE stream
# `GET /authenticated/<org>/events` (protocol.md §1.9; sent as RPC the official server answers 500).
SSE = ("authenticated", "events_listen")


@pytest.mark.parametrize(("family", "cmd"), COMMANDS, ids=[f"{f}-{c}" for f, c in COMMANDS])
def test_command_has_a_handler(family: str, cmd: str) -> None:
    if (family, cmd) == SSE:
        from parsec_server.asgi import sse

        assert callable(sse.handle_events), "no SSE handler for events_listen"
        return
    registry.load_all()
    assert (family, cmd) in registry.HANDLERS, f"{family}/{cmd}: no handler (not_implemented)"


# --- over HTTP --------------------------------------------------------------------------------


class Routes:
    """A path and valid headers for each family, in one bootstrapped organization."""

    def __init__(self, server: Server, org: Org) -> None:
        self.server = server
        self.org = org
        self.invitation_token = b""
        self.account: tuple[uuid.UUID, bytes] | None = None

    async def prepare(self) -> None:
        rep = await self.org.alice.rpc(
            "invite_new_user", claimer_email="zack@example.com", send_email=False
        )
        assert rep["status"] == "ok", rep
        self.invitation_token = rep["token"]
        self.account = await self._account("alice@example.com")

    async def _account(self, email: str) -> tuple[uuid.UUID, bytes] | None:
        """A Parsec account (validation code read back from the database): None when the account
        commands cannot make one (then the authenticated_account commands fail below)."""
        anon = {**API_HEADERS}
        body = packb({"cmd": "account_create_send_validation_email", "email": email})
        await self.server.http.post("/anonymous_server", content=body, headers=anon)
        try:
            async with self.server.backend.db.connection() as conn:
                code = await conn.fetchval(
                    "SELECT code FROM account_validation_code WHERE email = $1", email
                )
        except Exception:
            return None
        method_id, mac_key = uuid.uuid4(), b"k" * 32
        step = {
            "step": "NUMBER_1_CREATE",
            "validation_code": code,
            "human_handle": [email, "Alice"],
            "auth_method_password_algorithm": None,
            "auth_method_mac_key": mac_key,
            "auth_method_id": method_id,
            "vault_key_access": b"access",
        }
        body = packb({"cmd": "account_create_proceed", "account_create_step": step})
        r = await self.server.http.post("/anonymous_server", content=body, headers=anon)
        if r.status_code != 200 or unpackb(r.content).get("status") != "ok":
            return None
        return method_id, mac_key

    def route(self, family: str) -> tuple[str, dict[str, str]]:
        org_id = self.org.organization_id
        alice = self.org.alice
        if family == "anonymous":
            return f"/anonymous/{org_id}", {**API_HEADERS}
        if family == "anonymous_server":
            return "/anonymous_server", {**API_HEADERS}
        if family == "invited":
            auth = f"Bearer {self.invitation_token.hex()}"
            return f"/invited/{org_id}", {**API_HEADERS, "Authorization": auth}
        if family == "authenticated":
            return f"/authenticated/{org_id}", alice.headers()
        if family == "tos":
            return f"/authenticated/{org_id}/tos", alice.headers()
        assert family == "authenticated_account", family
        if self.account is None:
            return "/authenticated_account", {**API_HEADERS}
        method_id, mac_key = self.account
        token = generate_account_token(method_id, int(time.time()), mac_key)
        return "/authenticated_account", {**API_HEADERS, "Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def vectors() -> dict[tuple[str, str], bytes]:
    return _vectors()


@pytest.fixture
async def routes(db_url: str) -> AsyncIterator[Routes]:
    async with running_server(db_url, cryptpad_server_url="https://cryptpad.invalid") as server:
        routes = Routes(server, await server.bootstrap_org())
        await routes.prepare()
        yield routes


async def test_every_command_answers_with_its_own_statuses(
    routes: Routes, vectors: dict[tuple[str, str], bytes]
) -> None:
    """One request per schema command (79): HTTP 200 and a status of the command's schema. The
    failures are listed together, so one run names every command still missing."""
    if not COMMANDS:
        pytest.skip("JSON5 schemas not available (../shared/parsec-spec/schema absent)")
    from parsec_server.protocol.generated import FAMILIES

    problems: list[str] = []
    for family, cmd in COMMANDS:
        if (family, cmd) == SSE:
            problems += await _events_listen(routes)
            continue
        body = vectors.get((family, cmd))
        if body is None:
            problems.append(f"{family}/{cmd}: no request vector")
            continue
        path, headers = routes.route(family)
        r = await routes.server.http.post(path, content=body, headers=headers)
        if r.status_code != 200:
            problems.append(f"{family}/{cmd}: HTTP {r.status_code} {r.content[:80]!r}")
            continue
        status = unpackb(r.content).get("status")
        if status == "not_implemented":
            problems.append(f"{family}/{cmd}: not_implemented")
        elif cmd not in FAMILIES[family].REPS or status not in FAMILIES[family].REPS[cmd]:
            problems.append(f"{family}/{cmd}: status {status!r} is not in its schema")
    assert not problems, "\n".join(problems)


async def _events_listen(routes: Routes) -> list[str]:
    """events_listen over SSE: the stream opens and its first event is the events_listen ok reply
    ORGANIZATION_CONFIG. Driven on the ASGI app directly (httpx's in-process transport waits for
    the end of a response, and an event stream has none): the client disconnects after it."""
    _, headers = routes.route("authenticated")
    headers = {**headers, "Accept": "text/event-stream"}
    headers.pop("Content-Type", None)
    path = f"/authenticated/{routes.org.organization_id}/events"
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 6777),
    }
    sent: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
    gone = asyncio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        await sent.put(message)

    task = asyncio.create_task(routes.server.app(scope, receive, send))
    try:
        async with asyncio.timeout(10):
            start = await sent.get()
            if start.get("status") != 200:
                return [f"authenticated/events_listen (SSE): HTTP {start.get('status')}"]
            body = b""
            while b"\n\n" not in body.partition(b"data:")[2]:
                body += (await sent.get()).get("body", b"")
    finally:
        gone.set()
        async with asyncio.timeout(10):
            await task
    data = body.partition(b"data:")[2].partition(b"\n")[0]
    rep = decode_rep(base64.b64decode(data))
    if (rep.get("status"), rep.get("event")) != ("ok", "ORGANIZATION_CONFIG"):
        return [f"authenticated/events_listen (SSE): first event {rep!r}"]
    return []
