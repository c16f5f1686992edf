"""deploy/healthcheck.py (the image's `parsec-healthcheck`) against small local HTTP servers.

The end-to-end check against a real parsec-server is in test_image_entrypoint.py.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType

import pytest
from deploy_support import DEPLOY

SCRIPT = DEPLOY / "healthcheck.py"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("parsec_healthcheck", SCRIPT)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({}, "http://127.0.0.1:6777/health"),
        ({"PARSEC_HOST": "0.0.0.0", "PARSEC_PORT": "8080"}, "http://127.0.0.1:8080/health"),
        ({"PARSEC_HOST": "::"}, "http://127.0.0.1:6777/health"),
        ({"PARSEC_HOST": "10.1.2.3"}, "http://10.1.2.3:6777/health"),
        ({"PARSEC_HOST": "::1", "PARSEC_PORT": " 7000 "}, "http://[::1]:7000/health"),
    ],
)
def test_health_url_follows_the_server_settings(env: dict[str, str], url: str) -> None:
    assert _module().health_url(env) == url


@pytest.fixture
def fake_server() -> Iterator[tuple[int, list[tuple[int, bytes]]]]:
    """A server answering GET /health with the queued (status, body) replies."""
    replies: list[tuple[int, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = replies.pop(0) if self.path == "/health" else (404, b"")
            self.send_response(status)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], replies
    finally:
        server.shutdown()
        server.server_close()


def _check(port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PARSEC_HOST": "0.0.0.0", "PARSEC_PORT": str(port)},
    )


def test_healthy_on_200(fake_server: tuple[int, list[tuple[int, bytes]]]) -> None:
    port, replies = fake_server
    replies.append((200, json.dumps({"status": "ok", "database": "ok"}).encode()))
    res = _check(port)
    assert res.returncode == 0
    assert "healthy" in res.stdout and "'database': 'ok'" in res.stdout


def test_unhealthy_on_503(fake_server: tuple[int, list[tuple[int, bytes]]]) -> None:
    port, replies = fake_server
    replies.append((503, json.dumps({"status": "unavailable", "database": "unreachable"}).encode()))
    res = _check(port)
    assert res.returncode == 1
    assert "503" in res.stderr and "unreachable" in res.stderr


def test_unhealthy_when_nothing_listens() -> None:
    from parsec_server.embedded_pg import free_tcp_port

    res = _check(free_tcp_port())
    assert res.returncode == 1
    assert res.stderr.startswith("unhealthy:")
