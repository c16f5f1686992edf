"""Events between server processes: PostgreSQL NOTIFY in the writing transaction, LISTEN in every process.

`publish(conn, event)` queues a notification inside the caller's transaction: PostgreSQL delivers it only on
commit, to every process LISTENing (this one included). Each process keeps the last `CACHE_SIZE` events for
`Last-Event-ID` replay and hands every event to its local subscribers (SSE streams) and to the auth cache.

Wire payload (JSON, < 8000 bytes): `{"id": <hex uuid>, "org": <organization id>, "type": <EVENT TYPE>, ...}`.
Field values: UUIDs as hex strings, datetimes as integer microseconds, bytes as base64.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

import asyncpg

from parsec_server.log import get_logger

log = get_logger("parsec_server.events")

CHANNEL = "parsec_events"
CACHE_SIZE = 1024
BARRIER = "_BARRIER"  # a process's own marker (see EventBus.barrier), never dispatched
_Q_NOTIFY = "SELECT pg_notify($1, $2)"

Event = dict[str, Any]
Subscriber = Callable[[Event], None]


class Database(Protocol):
    """What the bus needs of storage.db.Database (events sit below storage: no import)."""

    url: str

    async def fetchval(self, query: str, *args: Any) -> Any: ...


class EventListener(Protocol):
    """Told of every event, e.g. the authentication cache (asgi/auth.py) that drops stale entries."""

    def on_event(self, event: Event) -> None: ...

    def clear(self) -> None: ...


def new_event(org: str, type_: str, **fields: Any) -> Event:
    return {"id": uuid.uuid4().hex, "org": org, "type": type_, **fields}


async def publish(conn: asyncpg.Connection, event: Event) -> None:
    """Queue `event` for delivery when the current transaction commits."""
    await conn.execute(_Q_NOTIFY, CHANNEL, json.dumps(event, separators=(",", ":")))


class EventBus:
    def __init__(self, db: Database, auth: EventListener | None = None) -> None:
        self.db = db
        self.auth = auth
        self._subscribers: dict[str, set[Subscriber]] = {}
        self._recent: OrderedDict[str, Event] = OrderedDict()
        self._conn: asyncpg.Connection | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._stopping = False
        self._barriers: dict[str, asyncio.Future[None]] = {}
        self.connected = asyncio.Event()

    # --- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        await self._connect()
        self._watchdog = asyncio.create_task(self._keep_connected())

    async def stop(self) -> None:
        self._stopping = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 5)
            except (TimeoutError, OSError, asyncpg.PostgresError):
                conn.terminate()

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self.db.url, timeout=10)
        await conn.add_listener(CHANNEL, self._on_notify)
        conn.add_termination_listener(lambda _c: self.connected.clear())
        self._conn = conn
        self.connected.set()

    async def _keep_connected(self) -> None:
        """Reconnect the LISTEN connection if it drops; caches are flushed since events may have been missed."""
        delay = 0.5
        while not self._stopping:
            await asyncio.sleep(1)
            if self._conn is not None and not self._conn.is_closed():
                delay = 0.5
                continue
            self.connected.clear()
            try:
                await self._connect()
                log.warning("event_listener_reconnected")
                if self.auth is not None:
                    self.auth.clear()
                self._recent.clear()
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.error("event_listener_reconnect_failed", error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    # --- dispatch ----------------------------------------------------------------------------------
    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            event = json.loads(payload)
        except ValueError:
            log.error("bad_event_payload", payload=payload[:200])
            return
        self.dispatch(event)

    async def barrier(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - bounds a wait_for
        """Return once every event committed before this call has been dispatched by this process.

        PostgreSQL delivers notifications to a listener in commit order: once our own marker comes back,
        everything committed before it has come back too. An event stream calls this when it registers, so
        that events of earlier commits still in flight neither reach it live nor miss the replay cache.
        """
        marker = uuid.uuid4().hex
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._barriers[marker] = future
        try:
            await self.db.fetchval(
                _Q_NOTIFY, CHANNEL, json.dumps({"id": marker, "org": "", "type": BARRIER})
            )
            await asyncio.wait_for(future, timeout)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            log.warning(
                "event_barrier_timeout"
            )  # degrade to the race the barrier closes, never fail
        finally:
            self._barriers.pop(marker, None)

    def dispatch(self, event: Event) -> None:
        if event["type"] == BARRIER:
            waiter = self._barriers.get(event["id"])
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return
        recent = self._recent
        recent[event["id"]] = event
        if len(recent) > CACHE_SIZE:
            recent.popitem(last=False)
        if self.auth is not None:
            self.auth.on_event(event)
        for sub in tuple(self._subscribers.get(event["org"], ())):
            try:
                sub(event)
            except Exception:
                log.exception("event_subscriber_failed", type=event.get("type"))

    def subscribe(self, org: str, callback: Subscriber) -> Callable[[], None]:
        subs = self._subscribers.setdefault(org, set())
        subs.add(callback)

        def unsubscribe() -> None:
            subs.discard(callback)
            if not subs:
                self._subscribers.pop(org, None)

        return unsubscribe

    def events_after(self, last_event_id: str, org: str) -> list[Event] | None:
        """Events of `org` after `last_event_id`, or None when that id is no longer (or never was) cached."""
        if last_event_id not in self._recent:
            return None
        out: list[Event] = []
        seen = False
        for eid, ev in self._recent.items():
            if seen and ev["org"] == org:
                out.append(ev)
            elif eid == last_event_id:
                seen = True
        return out
