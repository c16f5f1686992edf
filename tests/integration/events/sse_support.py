"""Helpers of the event stream tests: `parsec-server run` processes, an async SSE reader.

The command-test helpers (tests/integration/commands/core_helpers.py: certificates, Device,
Server) work against server processes too: a `Server` only needs an HTTP client (`http_server`)."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "commands"))

from core_helpers import ADMIN_TOKEN, Device, Server, realm_role_cert

from parsec_server.embedded_pg import free_tcp_port
from parsec_server.protocol.codec import now
from parsec_server.protocol.registry import decode_rep

EXE = [sys.executable, "-m", "parsec_server.cli.main"]
__all__ = [
    "ADMIN_TOKEN",
    "EXE",
    "ServerProcess",
    "ServerSpawner",
    "SseReader",
    "http_server",
    "open_events",
    "server_spawner",
    "shared_realm",
    "wait_ready",
]


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def terminate(self, timeout: float = 15) -> float:
        """SIGTERM; the seconds it took to exit."""
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout)
        return time.monotonic() - started


def wait_ready(server: ServerProcess, deadline: float = 30) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if server.proc.poll() is not None:
            raise AssertionError(f"server exited ({server.proc.returncode}):\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"server not ready:\n{server.log()}")


class ServerSpawner:
    """Starts `parsec-server run` processes on one database, on loopback; `server_spawner` kills
    those still running when it ends."""

    def __init__(self, db_url: str, log_dir: Path, common: tuple[str, ...] = ()) -> None:
        self.db_url, self.log_dir, self.common = db_url, log_dir, common
        self.started: list[ServerProcess] = []

    def __call__(
        self,
        *extra: str,
        token_args: tuple[str, ...] = ("--administration-token", ADMIN_TOKEN),
        env: dict[str, str] | None = None,
    ) -> ServerProcess:
        """One more process (`extra` options after the common ones; `token_args` replaces the
        administration token options, `env` adds variables), once its /health answers."""
        port = free_tcp_port()
        log_path = self.log_dir / f"server-{port}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("PARSEC_")}
        full_env.update(env or {})
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [
                    *EXE,
                    "run",
                    "--db",
                    self.db_url,
                    *token_args,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--server-addr",
                    f"parsec3://127.0.0.1:{port}?no_ssl=true",
                    *self.common,
                    *extra,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=full_env,
            )
        server = ServerProcess(proc, port, log_path)
        self.started.append(server)
        wait_ready(server)
        return server


@contextlib.contextmanager
def server_spawner(
    db_url: str, log_dir: Path, common: tuple[str, ...] = ()
) -> Iterator[ServerSpawner]:
    spawner = ServerSpawner(db_url, log_dir, common)
    try:
        yield spawner
    finally:
        for server in spawner.started:
            if server.proc.poll() is None:
                server.proc.kill()
                server.proc.wait(10)


async def shared_realm(alice: Device, bob: Device) -> uuid.UUID:
    """A realm of alice (first key done) shared with bob as CONTRIBUTOR."""
    realm_id = uuid.uuid4()
    cert = alice.sign(realm_role_cert(alice.device_id, now(), realm_id, alice.user_id, "OWNER"))
    assert await alice.rpc("realm_create", realm_role_certificate=cert) == {"status": "ok"}
    rotation = alice.sign(
        {
            "type": "realm_key_rotation_certificate",
            "author": alice.device_id,
            "timestamp": now(),
            "realm_id": realm_id,
            "key_index": 1,
            "encryption_algorithm": "BLAKE2_XSALSA20_POLY1305",
            "hash_algorithm": "SHA256",
            "key_canary": b"c",
        }
    )
    rep = await alice.rpc(
        "realm_rotate_key",
        realm_key_rotation_certificate=rotation,
        keys_bundle=b"kb",
        per_participant_keys_bundle_access={alice.user_id: b"a"},
        per_sequester_service_keys_bundle_access=None,
    )
    assert rep == {"status": "ok"}, rep
    cert = alice.sign(realm_role_cert(alice.device_id, now(), realm_id, bob.user_id, "CONTRIBUTOR"))
    rep = await alice.rpc(
        "realm_share", realm_role_certificate=cert, recipient_keys_bundle_access=b"b", key_index=1
    )
    assert rep == {"status": "ok"}, rep
    return realm_id


@contextlib.asynccontextmanager
async def http_server(process: ServerProcess) -> AsyncIterator[Server]:
    """A `Server` (core_helpers) talking to a server process."""
    async with httpx.AsyncClient(base_url=process.url, timeout=20) as http:
        yield Server(app=None, http=http)  # type: ignore[arg-type]


@dataclass
class SseMessage:
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def event(self) -> str | None:
        return self.fields.get("event")

    @property
    def id(self) -> str | None:
        return self.fields.get("id")

    def rep(self) -> dict[str, Any]:
        return decode_rep(base64.b64decode(self.fields["data"]))


class SseReader:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self) -> SseMessage:
        msg = SseMessage()
        async for line in self._lines:
            if line == "":
                if msg.fields:
                    return msg
                continue
            name, _, value = line.partition(":")
            msg.fields[name] = value
        raise EOFError("stream closed")

    async def next_data(self) -> dict[str, Any]:
        """The next event's `events_listen` reply (keepalives skipped)."""
        while True:
            msg = await self.next()
            if msg.event != "keepalive":
                return msg.rep()


@contextlib.asynccontextmanager
async def open_events(
    device: Device, http: httpx.AsyncClient | None = None, read_timeout: float = 10, **headers: str
) -> AsyncIterator[SseReader]:
    client = http or device.server.http
    h = {**device.headers(), "Accept": "text/event-stream", **headers}
    h.pop("Content-Type", None)
    async with client.stream(
        "GET",
        f"/authenticated/{device.organization_id}/events",
        headers=h,
        timeout=httpx.Timeout(read_timeout),
    ) as response:
        assert response.status_code == 200, (
            f"HTTP {response.status_code}: {(await response.aread())!r}"
        )
        yield SseReader(response)
