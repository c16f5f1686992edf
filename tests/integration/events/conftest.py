"""Fixtures of the event stream tests: real `parsec-server run` processes on loopback (several may
share one database). Helpers: sse_support.py."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sse_support import ADMIN_TOKEN, EXE, ServerProcess, wait_ready

from parsec_server.embedded_pg import free_tcp_port


@pytest.fixture
def spawn_server(db_url: str, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start `parsec-server run` processes on the test's database; all are stopped after the
    test."""
    started: list[ServerProcess] = []

    def spawn(*extra: str) -> ServerProcess:
        port = free_tcp_port()
        log_path = tmp_path / f"server-{port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARSEC_")}
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [
                    *EXE,
                    "run",
                    "--db",
                    db_url,
                    "--blockstore",
                    "POSTGRESQL",
                    "--administration-token",
                    ADMIN_TOKEN,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--server-addr",
                    f"parsec3://127.0.0.1:{port}?no_ssl=true",
                    *extra,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
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
