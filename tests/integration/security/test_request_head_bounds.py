"""Unbounded request heads (issue 11, 6): a flood of headers, one huge header value, a huge URL or
Authorization got no answer while the server's memory grew by hundreds of MiB. Now: 431 (414 for
the URL) after at most --max-request-head-size bytes, the connection closed, memory flat."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from raw_http import rss_kib, send_flood
from sse_support import ServerProcess

pytestmark = pytest.mark.timeout(120)

FLOOD = 4 * 1024 * 1024  # bytes sent by each attacker: far beyond the bound, bounded for the test
MAX_RSS_GROWTH_KIB = 50 * 1024

CASES = {
    "many headers": (b"GET / HTTP/1.1\r\nHost: x\r\n", b"X-Junk: " + b"a" * 90 + b"\r\n", 431),
    "one huge header value": (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ", b"a" * 65536, 431),
    "huge URL": (b"GET /", b"a" * 65536, 414),
    "huge Authorization": (
        b"POST /authenticated/Org HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer PARSEC-SIGN-",
        b"A" * 65536,
        431,
    ),
    "huge header name": (b"GET / HTTP/1.1\r\nHost: x\r\nX", b"a" * 65536, 431),
}


@pytest.mark.parametrize("case", list(CASES))
def test_oversized_head_is_refused_and_closed(
    spawn_server: Callable[..., ServerProcess], case: str
) -> None:
    server = spawn_server()
    first, filler, status = CASES[case]
    before = rss_kib(server.proc.pid)

    async def attack() -> None:
        answers = await asyncio.gather(
            *(send_flood(server.port, first, filler, FLOOD) for _ in range(3))
        )
        for answer in answers:
            assert answer.status == status, (answer, server.log())
            assert answer.closed, answer
            assert b"connection: close" in answer.head.lower()

    asyncio.run(attack())
    growth = rss_kib(server.proc.pid) - before
    assert growth < MAX_RSS_GROWTH_KIB, f"RSS grew by {growth} KiB"
    log = server.log()
    # one warning for the burst, not one per connection
    assert log.count("http_request_refused") == 1, log


def test_too_many_headers_is_431(spawn_server: Callable[..., ServerProcess]) -> None:
    server = spawn_server("--max-request-headers", "20")

    async def attack() -> None:
        head = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 25 + b"\r\n"
        answer = await send_flood(server.port, head, b"", len(head))
        assert answer.status == 431 and answer.closed, answer
        head = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 15 + b"\r\n"
        answer = await send_flood(server.port, head, b"", len(head), timeout=5)
        assert answer.status == 200, answer

    asyncio.run(attack())


def test_a_large_head_within_the_bound_is_served(
    spawn_server: Callable[..., ServerProcess],
) -> None:
    """60 KiB of headers in 4 KiB lines (under the 64 KiB default): answered normally."""
    server = spawn_server()

    async def request() -> None:
        lines = b"".join(b"X-%d: %s\r\n" % (i, b"b" * 4000) for i in range(15))
        full = b"GET /health HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n"
        answer = await send_flood(server.port, full, b"", len(full), timeout=5)
        assert answer.status == 200, answer

    asyncio.run(request())
