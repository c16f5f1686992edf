"""Smaller findings of issue 11, 6: CR/LF in a /redirect path, log forging through an organization
id, reading on after a 413, junk after the padding of a signature token."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import time
import uuid
from collections.abc import Callable

import nacl.signing
import pytest
from raw_http import read_answer
from sse_support import ServerProcess

from parsec_server.crypto.tokens import (
    TokenError,
    generate_authenticated_token,
    parse_authorization,
)
from parsec_server.log import JsonFormatter, get_logger
from parsec_server.log import configure as configure_logging

pytestmark = pytest.mark.timeout(120)


async def _exchange(port: int, request: bytes, timeout: float = 5) -> tuple[int | None, bool]:  # noqa: ASYNC109
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        answer = await read_answer(reader, time.monotonic(), timeout)
        return answer.status, answer.closed
    finally:
        writer.transport.abort()


def test_redirect_with_crlf_in_the_path_is_400(spawn_server: Callable[..., ServerProcess]) -> None:
    server = spawn_server()
    request = b"GET /redirect/Org%0d%0aSet-Cookie:%20x=1?a=b HTTP/1.1\r\nHost: x\r\n\r\n"
    status, _ = asyncio.run(_exchange(server.port, request, timeout=2))
    assert status == 400, server.log()
    assert "unhandled_error" not in server.log()
    # a well-formed one still redirects
    status, _ = asyncio.run(
        _exchange(server.port, b"GET /redirect/Org?a=b HTTP/1.1\r\nHost: x\r\n\r\n", timeout=2)
    )
    assert status == 302


def test_an_organization_id_cannot_forge_log_lines(
    spawn_server: Callable[..., ServerProcess],
) -> None:
    server = spawn_server()
    forged = "12:00:00 [info   ] server_started forged=yes"
    path = "/anonymous/Org%0a" + forged.replace(" ", "%20").replace("[", "%5b").replace("]", "%5d")
    request = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nApi-Version: 5.5\r\n"
        "Content-Type: application/msgpack\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    status, _ = asyncio.run(_exchange(server.port, request, timeout=2))
    assert status == 404
    time.sleep(0.3)
    log = server.log()
    assert "rpc_refused" in log and "\\n12:00:00" in log, log
    assert not any(
        line.startswith("12:00:00 [info   ] server_started") for line in log.splitlines()
    )


def test_json_log_lines_escape_line_breaks() -> None:
    stream = io.StringIO()
    configure_logging("info", "json")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler.formatter, JsonFormatter)
    handler.stream = stream  # type: ignore[attr-defined]
    value = "a\nb\u2028c\x85d\x1b[31m"
    get_logger("security.test").info("rpc_refused", org=value)
    handler.flush()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and "\u2028" not in lines[0] and "\x85" not in lines[0]
    assert json.loads(lines[0])["org"] == value


def test_413_closes_the_connection(spawn_server: Callable[..., ServerProcess]) -> None:
    """A body declared and sent far beyond 1 MiB: 413 with `connection: close`, and the server
    closes instead of reading the rest (the client would otherwise send its 100 MiB)."""
    server = spawn_server()

    async def attack() -> tuple[int | None, bool, float, int]:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        head = (
            b"POST /anonymous/Org HTTP/1.1\r\nHost: x\r\nApi-Version: 5.5\r\n"
            b"Content-Type: application/msgpack\r\nContent-Length: %d\r\n\r\n" % (100 << 20)
        )
        sent = 0
        stop = asyncio.Event()

        async def pump() -> None:
            nonlocal sent
            try:
                writer.write(head)
                while sent < (100 << 20) and not stop.is_set():
                    writer.write(b"x" * 65536)
                    sent += 65536
                    await writer.drain()
            except (ConnectionError, OSError):
                pass

        started = time.monotonic()
        task = asyncio.create_task(pump())
        try:
            answer = await read_answer(reader, started, timeout=10)
            closed_after = time.monotonic() - started
            await asyncio.wait_for(task, 15)
        finally:
            stop.set()
            task.cancel()
            writer.transport.abort()
        return answer.status, answer.closed, closed_after, sent

    status, closed, seconds, sent = asyncio.run(attack())
    assert status == 413 and closed, (status, closed)
    assert sent < 60 << 20, f"the server read {sent} bytes of the body"
    assert seconds < 10


def _device_token() -> tuple[str, str]:
    key = nacl.signing.SigningKey.generate()
    token = generate_authenticated_token(uuid.uuid4(), int(time.time()), bytes(key))
    return token, token.rpartition(".")[2]


@pytest.mark.parametrize("junk", ["AAAA", "==", "!", "%00", "\u00e9"])
def test_signature_token_with_junk_after_the_padding_is_refused(junk: str) -> None:
    token, signature = _device_token()
    assert signature.endswith("=")  # 64 bytes: one padding character
    parse_authorization(f"Bearer {token}".encode())  # the clean token parses
    with pytest.raises(TokenError):
        parse_authorization(f"Bearer {token}{junk}".encode())


@pytest.mark.parametrize("change", ["missing padding", "inner junk", "blank"])
def test_signature_token_is_strict_base64(change: str) -> None:
    token, signature = _device_token()
    prefix = token[: -len(signature)]
    if change == "missing padding":
        bad = signature.rstrip("=")
    elif change == "inner junk":
        bad = signature[:10] + "!" + signature[10:]
    else:
        bad = signature[:10] + "\t" + signature[10:]
    with pytest.raises(TokenError):
        parse_authorization(f"Bearer {prefix}{bad}".encode())


def test_signature_token_in_the_standard_alphabet_is_accepted() -> None:
    """As by the official server: `+/` for `-_` (not junk, the same bytes)."""
    token, signature = _device_token()
    raw = b"\xfb\xff" + base64.urlsafe_b64decode(signature)[2:]
    std = base64.b64encode(raw).decode()
    assert "+" in std or "/" in std
    parsed = parse_authorization(f"Bearer {token[: -len(signature)]}{std}".encode())
    assert parsed.signature == raw


def test_console_tracebacks_cannot_start_a_line() -> None:
    stream = io.StringIO()
    configure_logging("info", "console")
    handler = logging.getLogger().handlers[0]
    handler.stream = stream  # type: ignore[attr-defined]
    try:
        raise ValueError("bad org 'x\n12:00:00 [info   ] forged'")
    except ValueError:
        get_logger("security.test").exception("unhandled_error", path="/x\n")
    handler.flush()
    lines = stream.getvalue().splitlines()
    assert "unhandled_error" in lines[0] and "path=/x\\n" in lines[0]
    assert all(line.startswith("    ") for line in lines[1:]), lines
