"""The event stream's sender (asgi/sse.py `_pump`) keeps up with bursts: whatever is queued when it
wakes up goes out in one body, so a stream on a busy process does not overflow its queue (and get
cut with `missed_events`) while the events arrive faster than one per wake-up. And what one event
costs per stream stays small (an event of a shared realm goes to every stream of its members):
encoded once for all streams, no task started per delivery, one keepalive timer per period."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from parsec_server.asgi import sse
from parsec_server.events.types import pinged
from parsec_server.events.types import vlob as vlob_event
from parsec_server.protocol import sse as sse_wire
from parsec_server.protocol.registry import encode_rep

TS = datetime(2026, 12, 4, tzinfo=UTC)


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


# --- fan-out: what one event costs per stream (2,000 streams get every write of a shared realm) ----


def _live_stream(realm: uuid.UUID) -> Any:
    stream = _stream()
    stream.go_live({realm}, None, replay=False)
    return stream


async def _fan_out(streams: list[Any], events: list[dict[str, Any]]) -> list[list[bytes]]:
    """Every event to every stream as the bus does (one `on_event` per stream), each stream's sender
    running; returns the bodies each stream sent, once all events went out."""
    backend = SimpleNamespace(config=SimpleNamespace(sse_keepalive=30))
    never = asyncio.Event()
    bodies: list[list[bytes]] = [[] for _ in streams]

    async def receive() -> dict[str, Any]:
        await never.wait()
        return {"type": "http.disconnect"}

    def sender(k: int) -> Any:
        async def send(message: dict[str, Any]) -> None:
            bodies[k].append(message["body"])

        return send

    stop = asyncio.Event()
    pumps = [
        asyncio.ensure_future(sse._pump(backend, receive, sender(k), s, stop))  # type: ignore[arg-type]
        for k, s in enumerate(streams)
    ]
    await asyncio.sleep(0)
    for ev in events:
        for s in streams:
            s.on_event(ev)
        await asyncio.sleep(0)
    for _ in range(100):
        if all(b"".join(b).count(b"\nid:") == len(events) for b in bodies):
            break
        await asyncio.sleep(0)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*pumps), 5)
    return bodies


async def test_an_event_is_encoded_once_for_all_its_streams(monkeypatch: Any) -> None:
    realm = uuid.uuid4()
    streams = [_live_stream(realm) for _ in range(20)]
    ev = vlob_event("org", realm, uuid.uuid4(), uuid.uuid4(), TS, 3, b"blob", TS, TS)
    encoded: list[str] = []
    real = sse.to_api_event

    def counting(event: dict[str, Any]) -> dict[str, Any]:
        encoded.append(event["id"])
        return real(event)

    monkeypatch.setattr(sse, "to_api_event", counting)
    bodies = await _fan_out(streams, [ev])
    frame = sse_wire.frame(encode_rep(real(ev)), ev["id"])
    assert [b"".join(b) for b in bodies] == [frame] * 20  # every stream, the same bytes
    assert encoded == [ev["id"]]  # encoded once, not once per stream


async def test_delivering_an_event_starts_no_task_per_stream() -> None:
    """A stream's sender sleeps on one future per wake-up: no new task (formerly `queue.get()` in
    a task and `asyncio.wait` on it per event: as costly as the rest of a delivery)."""
    realm = uuid.uuid4()
    streams = [_live_stream(realm) for _ in range(10)]
    events = [
        vlob_event("org", realm, uuid.uuid4(), uuid.uuid4(), TS, 1, b"b", TS, TS) for _ in range(30)
    ]
    loop = asyncio.get_running_loop()
    created: list[Any] = []
    default = loop.get_task_factory()

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> Any:
        created.append(getattr(coro, "__qualname__", coro))
        if default is not None:
            return default(loop, coro, **kw)
        return asyncio.Task(coro, loop=loop, **kw)

    loop.set_task_factory(factory)  # type: ignore[arg-type]
    try:
        bodies = await _fan_out(streams, events)
    finally:
        loop.set_task_factory(default)
    assert all(b"".join(b).count(b"\nid:") == 30 for b in bodies)
    # the senders themselves and their two watchers (disconnect, shutdown) per stream; nothing per event
    assert len(created) <= 3 * len(streams), created[:10]


async def test_keepalive_counts_from_the_last_send() -> None:
    """The keepalive timer is armed once per period: when it fires after events went out, the
    keepalive waits for a full period of silence after the last one."""
    period = 0.3
    backend = SimpleNamespace(config=SimpleNamespace(sse_keepalive=period))
    stream = _stream()
    sent: list[tuple[float, bytes]] = []
    loop = asyncio.get_running_loop()

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        return {}

    async def send(message: dict[str, Any]) -> None:
        sent.append((loop.time(), message["body"]))

    stop = asyncio.Event()
    start = loop.time()
    pump = asyncio.ensure_future(sse._pump(backend, receive, send, stream, stop))  # type: ignore[arg-type]
    await asyncio.sleep(period * 0.6)
    stream.push(pinged("org", "late"))
    await asyncio.sleep(period * 2.5)
    stop.set()
    await asyncio.wait_for(pump, 5)
    event_at = next(t for t, body in sent if b"\nid:" in body)
    keepalives = [t for t, body in sent if body == sse_wire.KEEPALIVE]
    assert event_at >= start
    assert keepalives, sent  # silence after the event: a keepalive came
    assert keepalives[0] >= event_at + period - 0.01  # not at the first period's end
