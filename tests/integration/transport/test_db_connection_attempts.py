"""`--maximum-database-connection-attempts` / `--pause-before-retry-database-connection` (official
names): at start, `run` waits for a database that is not reachable yet instead of exiting 6 at once."""

from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from conftest import EXE, TOKEN, clean_env, run_server

from parsec_server.embedded_pg import free_tcp_port


def test_gives_up_after_the_attempts(tmp_path: Path) -> None:
    port = free_tcp_port()  # nothing listens there
    res = subprocess.run(
        [*EXE, "run", "--db", f"postgresql://postgres@127.0.0.1:{port}/x",
         "--administration-token", TOKEN, "--port", str(free_tcp_port()),
         "--maximum-database-connection-attempts", "2",
         "--pause-before-retry-database-connection", "0.1"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )  # fmt: skip
    assert res.returncode == 6, res.stderr
    assert res.stderr.count("database_connection_retry") == 2
    assert "Traceback" not in res.stderr


def test_default_fails_at_once(tmp_path: Path) -> None:
    port = free_tcp_port()
    res = subprocess.run(
        [*EXE, "run", "--db", f"postgresql://postgres@127.0.0.1:{port}/x",
         "--administration-token", TOKEN, "--port", str(free_tcp_port())],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )  # fmt: skip
    assert res.returncode == 6
    assert "database_connection_retry" not in res.stderr


class _LateForwarder:
    """A TCP port that refuses connections until `open()`, then forwards them to the database."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_tcp_port()
        self.listener: socket.socket | None = None
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def open(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.listener.settimeout(0.2)
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)

    def _accept(self) -> None:
        assert self.listener is not None
        while not self.stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                t = threading.Thread(target=self._pipe, args=(a, b), daemon=True)
                t.start()
                self.threads.append(t)

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            a.close()

    def close(self) -> None:
        self.stop.set()
        if self.threads:
            self.threads[0].join(5)  # the accept loop: it polls `stop` every 0.2 s
        if self.listener is not None:
            self.listener.close()


def test_waits_for_a_database_that_comes_up(db_url: str, tmp_path: Path) -> None:
    real = urlsplit(db_url)
    fwd = _LateForwarder((real.hostname or "127.0.0.1", real.port or 5432))
    late_url = db_url.replace(f"{real.hostname}:{real.port}", f"127.0.0.1:{fwd.port}")
    opener = threading.Timer(1.0, fwd.open)  # the database "starts" a second after the server
    opener.start()
    try:
        with run_server(
            late_url,
            tmp_path,
            "--maximum-database-connection-attempts",
            "100",
            "--pause-before-retry-database-connection",
            "0.2",
        ) as srv:
            assert "database_connection_retry" in srv.stderr.read_text()
            assert httpx.get(srv.url() + "/health").json()["database"] == "ok"
    finally:
        opener.cancel()
        fwd.close()
