"""Raw HTTP/1.1 over asyncio streams: what a misbehaving client sends, byte for byte."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Answer:
    status: int | None  # None: the connection closed without an answer
    head: bytes
    closed: bool  # the server closed the connection after the answer
    seconds: float  # from the start of the exchange to the end of the head (or the close)


def rss_kib(pid: int) -> int:
    """Resident memory of a process (VmRSS, KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def read_answer(
    reader: asyncio.StreamReader,
    started: float,
    timeout: float = 10,  # noqa: ASYNC109
) -> Answer:
    """The answer's head, then whether the server closes the connection (within `timeout`)."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        partial = exc.partial if isinstance(exc, asyncio.IncompleteReadError) else b""
        return Answer(None, partial, True, time.monotonic() - started)
    seconds = time.monotonic() - started
    status = int(head.split(b" ", 2)[1])
    closed = False
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), timeout)
            if not chunk:
                closed = True
                break
    except ConnectionError:
        closed = True
    except TimeoutError:
        closed = False
    return Answer(status, head, closed, seconds)


async def send_flood(
    port: int,
    first: bytes,
    filler: bytes,
    total: int,
    timeout: float = 20,  # noqa: ASYNC109
) -> Answer:
    """Send `first` then `filler` repeatedly up to `total` bytes while reading: the answer and
    whether the connection was closed. Sending stops at the first error (the server closed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()

    async def pump() -> None:
        try:
            writer.write(first)
            sent = len(first)
            while sent < total:
                writer.write(filler)
                sent += len(filler)
                await writer.drain()
        except (ConnectionError, OSError):
            pass

    pumping = asyncio.create_task(pump())
    try:
        return await asyncio.wait_for(read_answer(reader, started), timeout)
    finally:
        pumping.cancel()
        writer.transport.abort()
