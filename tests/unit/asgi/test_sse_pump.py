"""The event stream's sender (asgi/sse.py `_pump`) keeps up with bursts: whatever is queued when it
wakes up goes out in one body, so a stream on a busy process does not overflow its queue (and get
cut with `missed_events`) while the events arrive faster than one per wake-up."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

from parsec_server.asgi import sse
from parsec_server.events.types import pinged


def _stream() -> Any:
    client = SimpleNamespace(
        user_id=uuid.uuid4(), device_id=uuid.uuid4(), device=SimpleNamespace(profile="STANDARD")
    )
    return sse._Stream(client)  # type: ignore[arg-type]


async def _run(bursts: int, per_burst: int) -> tuple[Any, list[bytes]]:
    stream = _stream()
    backend = SimpleNamespace(config=SimpleNamespace(sse_keepalive=None))
    never = asyncio.Event()
    bodies: list[bytes] = []

    async def receive() -> dict[str, Any]:
        await never.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        bodies.append(message["body"])
        await asyncio.sleep(0)  # the transport takes a turn of the loop, as a real one may

    pump = asyncio.ensure_future(sse._pump(backend, receive, send, stream, asyncio.Event()))  # type: ignore[arg-type]
    for burst in range(bursts):
        for i in range(per_burst):  # a burst the listener hands over between two turns
            stream.push(pinged("org", f"{burst}-{i}"))
        await asyncio.sleep(0)
    stream.push(sse._MISSED)
    stream.push(sse._CLOSE)
    await asyncio.wait_for(pump, 5)
    return stream, bodies


async def test_bursts_beyond_the_queue_size_are_all_delivered() -> None:
    per_burst = sse.QUEUE_MAX // 2
    stream, bodies = await _run(bursts=12, per_burst=per_burst)
    assert not stream.lagging
    payload = b"".join(bodies)
    assert payload.count(b"\nid:") == 12 * per_burst  # every event, none dropped
    assert sse.sse_wire.MISSED_EVENTS in payload  # queued markers are sent in order too
    assert len(bodies) < 12 * per_burst  # several events per body


async def test_a_lagging_stream_still_ends() -> None:
    stream = _stream()
    for i in range(sse.QUEUE_MAX + 1):
        stream.push(pinged("org", str(i)))
    assert stream.lagging
    backend = SimpleNamespace(config=SimpleNamespace(sse_keepalive=None))
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        return {}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(sse._pump(backend, receive, send, stream, asyncio.Event()), 5)  # type: ignore[arg-type]
    assert sent == [{"type": "http.response.body", "body": b"", "more_body": False}]
