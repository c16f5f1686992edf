"""Fixtures of the security regression tests (issue 11, point 6): real `parsec-server run`
processes on loopback, driven with raw sockets where HTTP clients would not misbehave enough."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "events"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "commands"))

from sse_support import ADMIN_TOKEN, EXE, ServerProcess, wait_ready

from parsec_server.embedded_pg import free_tcp_port

# Small bounds so that the tests are quick (the defaults are in docs/configuration.md).
FAST = (
    "--request-head-timeout",
    "1",
    "--keep-alive-timeout",
    "1",
    "--log-format",
    "console",
)


@pytest.fixture
def spawn_server(db_url: str, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start `parsec-server run` processes on the test's database (`token_args` replaces the
    administration token options, `env` adds variables); all are killed after the test."""
    started: list[ServerProcess] = []

    def spawn(
        *extra: str,
        token_args: tuple[str, ...] = ("--administration-token", ADMIN_TOKEN),
        env: dict[str, str] | None = None,
    ) -> ServerProcess:
        port = free_tcp_port()
        log_path = tmp_path / f"server-{port}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("PARSEC_")}
        full_env.update(env or {})
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [
                    *EXE,
                    "run",
                    "--db",
                    db_url,
                    *token_args,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--server-addr",
                    f"parsec3://127.0.0.1:{port}?no_ssl=true",
                    *FAST,
                    *extra,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=full_env,
            )
        server = ServerProcess(proc, port, log_path)
        started.append(server)
        wait_ready(server)
        return server

    yield spawn
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(10)
