"""Connections that never finish a request (issue 11, 6): idle and slowloris connections stayed open
forever and nothing capped their number. Now: --request-head-timeout closes a connection whose head
is not complete in time, --keep-alive-timeout closes idle connections between requests,
--max-connections caps a process (503, one warning per episode). Event streams and slow uploads,
whose heads are complete, are not cut. The fixtures make both timeouts 1 s."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import pytest
from raw_http import read_answer
from sse_support import ServerProcess, http_server, open_events

from parsec_server.protocol.codec import packb

pytestmark = pytest.mark.timeout(120)


async def _closed_within(reader: asyncio.StreamReader, limit: float) -> tuple[float, bytes]:
    """Seconds until the server closes the connection, and what it sent."""
    started = time.monotonic()
    data = b""
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), limit)
            if not chunk:
                break
            data += chunk
    except ConnectionError:
        pass
    return time.monotonic() - started, data


def test_idle_and_slowloris_connections_are_closed(
    spawn_server: Callable[..., ServerProcess],
) -> None:
    server = spawn_server()

    async def attack() -> None:
        silent = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(50)]
        slow = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(20)]

        async def slowloris(writer: asyncio.StreamWriter) -> None:
            try:
                writer.write(b"GET / HTTP/1.1\r\n")
                for i in range(100):
                    await asyncio.sleep(0.1)
                    writer.write(b"X-%d: a\r\n" % i)
            except (ConnectionError, OSError):
                pass

        trickles = [asyncio.create_task(slowloris(w)) for _, w in slow]
        results = await asyncio.gather(
            *(_closed_within(r, 5) for r, _ in silent), *(_closed_within(r, 5) for r, _ in slow)
        )
        for task in trickles:
            task.cancel()
        for _, w in silent + slow:
            w.transport.abort()
        for seconds, data in results[:50]:
            assert seconds < 3 and data == b"", (seconds, data)
        for seconds, data in results[50:]:
            assert seconds < 3 and data.startswith(b"HTTP/1.1 408 "), (seconds, data)

    asyncio.run(attack())


def test_idle_keep_alive_connection_is_closed(spawn_server: Callable[..., ServerProcess]) -> None:
    server = spawn_server()

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await read_answer(reader, time.monotonic(), timeout=5)
        writer.transport.abort()
        assert answer.status == 200 and answer.closed, answer

    asyncio.run(client())


def test_event_stream_and_slow_upload_outlive_the_timeouts(
    spawn_server: Callable[..., ServerProcess],
) -> None:
    server = spawn_server("--sse-keepalive", "1")

    async def scenario() -> None:
        async with http_server(server) as srv:
            org = await srv.bootstrap_org()
            alice = org.alice
            async with open_events(alice, read_timeout=10) as events:
                started = time.monotonic()
                kept = 0
                while time.monotonic() - started < 3.5:  # beyond both 1 s timeouts
                    msg = await events.next()
                    kept += msg.event == "keepalive"
                assert kept >= 2
            # an upload whose body trickles in for longer than the head timeout
            body = packb(
                {
                    "cmd": "block_create",
                    "block_id": uuid.uuid4(),
                    "realm_id": uuid.uuid4(),
                    "key_index": 1,
                    "block": b"b" * (512 * 1024),
                }
            )
            headers = alice.headers()
            head = (
                f"POST /authenticated/{alice.organization_id} HTTP/1.1\r\nHost: x\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                + f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(head)
            step = len(body) // 6 + 1
            for i in range(0, len(body), step):
                writer.write(body[i : i + step])
                await writer.drain()
                await asyncio.sleep(0.4)
            answer = await read_answer(reader, time.monotonic(), timeout=5)
            writer.transport.abort()
            assert answer.status == 200, answer  # (realm_not_found inside: the body was read)

    asyncio.run(scenario())


def test_connection_cap(spawn_server: Callable[..., ServerProcess]) -> None:
    server = spawn_server("--max-connections", "5", "--request-head-timeout", "30")

    async def flood() -> None:
        held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(5)]
        refused = []
        for _ in range(10):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            refused.append(await read_answer(reader, time.monotonic(), timeout=5))
            writer.transport.abort()
        for answer in refused:
            assert answer.status == 503 and answer.closed, answer
        for _, writer in held:
            writer.transport.abort()
        await asyncio.sleep(0.5)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await read_answer(reader, time.monotonic(), timeout=5)
        writer.transport.abort()
        assert answer.status == 200, answer

    asyncio.run(flood())
    time.sleep(0.3)
    log = server.log()
    assert log.count("connection_cap_reached") == 1, log
    assert log.count("connection_cap_cleared") == 1, log
    assert "refused=10" in log, log


def test_pipelined_requests_are_all_answered(spawn_server: Callable[..., ServerProcess]) -> None:
    """The head accounting restarts at each request: 40 pipelined requests in one write (more
    bytes in all than one head may take) are all answered."""
    server = spawn_server("--max-request-head-size", "1024")

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        one = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 40 + b"\r\n\r\n"
        writer.write(one * 40)
        statuses = []
        for _ in range(40):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            statuses.append(int(head.split(b" ", 2)[1]))
            length = next(
                int(line.split(b":")[1])
                for line in head.lower().split(b"\r\n")
                if line.startswith(b"content-length:")
            )
            await reader.readexactly(length)
        writer.transport.abort()
        assert statuses == [200] * 40

    asyncio.run(client())
