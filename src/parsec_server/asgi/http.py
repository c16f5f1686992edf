"""Minimal ASGI helpers shared by the routes: read a bounded body, send a complete response."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

MAX_BODY = 1024 * 1024  # 1 MiB (protocol.md §1.2)


class BodyTooLarge(Exception):
    pass


class ClientDisconnected(Exception):
    pass


def header(scope: Scope, name: bytes) -> bytes | None:
    """First value of a (lower-case) request header."""
    for k, v in scope["headers"]:
        if k == name:
            return bytes(v)
    return None


_NO_LENGTH = object()


async def read_body(
    scope: Scope, receive: Receive, limit: int = MAX_BODY, length: Any = _NO_LENGTH
) -> bytes:
    """The request body (BodyTooLarge beyond `limit`). `length`: the Content-Length header's value
    when the caller has it already (None: no such header)."""
    if length is _NO_LENGTH:
        length = header(scope, b"content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise BodyTooLarge() from None
        if declared > limit or declared < 0:
            raise BodyTooLarge()
    msg = await receive()
    if not msg.get("more_body", False):  # the whole body at once: the usual case
        if msg["type"] == "http.disconnect":
            raise ClientDisconnected()
        body: bytes = msg.get("body", b"")
        if len(body) > limit:
            raise BodyTooLarge()
        return body
    chunks: list[bytes] = []
    size = 0
    while True:
        if msg["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk = msg.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge()
            chunks.append(chunk)
        if not msg.get("more_body", False):
            break
        msg = await receive()
    return b"".join(chunks)


async def send_response(
    send: Send, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """A complete response. A 413 closes the connection (`connection: close`): the rest of the
    oversized body is not read, only dropped for a moment (cli/httpproto.py)."""
    hdrs = [(b"content-length", str(len(body)).encode()), *headers]
    if status == 413:
        hdrs.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})


async def send_json(
    send: Send, status: int, doc: Any, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    body = json.dumps(doc, separators=(",", ":")).encode()
    await send_response(send, status, body, [(b"content-type", b"application/json"), *headers])


async def send_html(send: Send, status: int, html: str) -> None:
    await send_response(
        send, status, html.encode(), [(b"content-type", b"text/html; charset=utf-8")]
    )
