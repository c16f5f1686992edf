"""Helpers of the event stream tests: `parsec-server run` processes, an async SSE reader.

The command-test helpers (tests/integration/commands/core_helpers.py: certificates, Device,
Server) work against server processes too: a `Server` only needs an HTTP client (`http_server`)."""

from __future__ import annotations

import base64
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "commands"))

from core_helpers import ADMIN_TOKEN, Device, Server

from parsec_server.protocol.registry import decode_rep

EXE = [sys.executable, "-m", "parsec_server.cli.main"]
__all__ = [
    "ADMIN_TOKEN",
    "EXE",
    "ServerProcess",
    "SseReader",
    "http_server",
    "open_events",
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
