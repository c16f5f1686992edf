"""The request body from the socket to the application (cli/httpproto.py, `on_body`): a body that
arrives in one piece is handed over without a copy; one in several pieces arrives whole and in
order. A real loopback socket and the protocol `run` gives uvicorn, with a minimal ASGI app."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from parsec_server.asgi.http import read_body
from parsec_server.cli.httpproto import guarded_protocol
from parsec_server.config import HttpLimits


async def _serve_one(
    pieces: list[bytes], delay_receive: float
) -> tuple[bytes, list[bytes], list[bytes]]:
    """Send one POST whose body is `pieces` (written apart, 50 ms between them); the app waits
    `delay_receive` before reading. Returns the body the app read, the chunks httptools gave
    `on_body`, and the bodies of the app's `http.request` messages."""
    seen_chunks: list[bytes] = []
    messages: list[bytes] = []
    result: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def recording_receive() -> dict[str, Any]:
            msg: dict[str, Any] = await receive()
            messages.append(msg.get("body", b""))
            return msg

        await asyncio.sleep(delay_receive)
        body = await read_body(scope, recording_receive)
        result.set_result(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    config = uvicorn.Config(app, lifespan="off", log_config=None)
    config.load()
    state = ServerState()
    base: Any = guarded_protocol(HttpLimits())

    class Recording(base):  # type: ignore[misc,valid-type]
        def on_body(self, body: bytes) -> None:
            seen_chunks.append(body)
            super().on_body(body)

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Recording(config=config, server_state=state, app_state={}), "127.0.0.1", 0
    )
    try:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        size = sum(len(p) for p in pieces)
        writer.write(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % size + pieces[0])
        for piece in pieces[1:]:
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(piece)
        await writer.drain()
        body = await asyncio.wait_for(result, 10)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200")
        writer.close()
        await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()
    return body, seen_chunks, messages


async def test_body_in_one_piece_is_not_copied() -> None:
    payload = os.urandom(16 * 1024)
    body, chunks, messages = await _serve_one([payload], delay_receive=0.1)
    assert body == payload
    assert len(chunks) == 1 and len(messages) == 1
    # the very object httptools made from the socket's bytes (uvicorn alone: two copies)
    assert messages[0] is chunks[0]
    assert body is chunks[0]


async def test_body_in_pieces_arrives_whole() -> None:
    payload = os.urandom(3 * 20 * 1024)
    pieces = [payload[:20480], payload[20480:40960], payload[40960:]]
    # the app reads only after every piece is in: chunks pile up before a receive
    body, chunks, _ = await _serve_one(pieces, delay_receive=0.4)
    assert len(chunks) >= 2
    assert body == payload
    # and read as they come
    body, chunks, messages = await _serve_one(pieces, delay_receive=0.0)
    assert body == payload
    assert b"".join(messages) == payload
