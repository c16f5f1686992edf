"""Events between server processes: PostgreSQL NOTIFY in the writing transaction, LISTEN in every process.

`publish(conn, event)` queues a notification inside the caller's transaction: PostgreSQL delivers it only on
commit, to every process LISTENing (this one included). Each process keeps the last `CACHE_SIZE` events for
`Last-Event-ID` replay and hands every event to its local subscribers (SSE streams) and to the auth cache.

Wire payload (JSON, < 8000 bytes): `{"id": <hex uuid>, "org": <organization id>, "type": <EVENT TYPE>, ...}`.
Field values: UUIDs as hex strings, datetimes as integer microseconds, bytes as base64.

Losing the LISTEN connection (PostgreSQL restarted or killed, network cut) loses every notification of the
commits made until it is back: PostgreSQL delivers a notification only to the sessions listening when the
transaction commits. So no commit may be assumed delivered across a loss:

* the moment the loss is noticed (asyncpg's termination callback, or a liveness probe of the listener
  connection that times out), the replay cache and the authentication cache are emptied, and every
  subscriber is told `LISTENER_LOST`; the reconnection starts at once (no back-off on the first attempts);
* once a new LISTEN connection is up, every subscriber is told `LISTENER_BACK`: an SSE stream that heard
  `LISTENER_LOST` then sends `missed_events` (the client resynchronises from that moment on, which covers
  every commit it could not hear about);
* a stream registers only through `barrier()`, which needs a live listener (see `barrier`).

A commit made after the old listener died but before this process noticed is covered too: the streams open
then are still subscribed when the loss is noticed (or were closed: their `Last-Event-ID` is no longer in the
emptied cache, so the reconnecting client gets `missed_events`).
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
# Told to every subscriber (never cached, never sent to clients): the LISTEN connection was lost / is back.
LISTENER_LOST = "_LISTENER_LOST"
LISTENER_BACK = "_LISTENER_BACK"
# Reconnection delays of the listener: the first attempts at once, then one attempt a second.
RECONNECT_DELAYS = (0.0, 0.05, 0.1, 0.2, 0.5, 1.0)
CONNECT_TIMEOUT = 5.0  # seconds for one connection attempt of the listener
PROBE_INTERVAL = 5.0  # seconds between two liveness probes of an idle listener connection
PROBE_TIMEOUT = 5.0  # a probe unanswered after this long: the listener is taken as lost
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


class ListenerUnavailable(Exception):
    """The LISTEN connection is down: events committed now would not be heard by this process."""


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
        self._lost = asyncio.Event()  # set by the termination callback: wakes the watchdog at once
        self.generation = 0  # LISTEN connections opened so far (1 after start)
        self.losses = 0  # LISTEN connections lost so far
        self.lost_at: float | None = None  # loop time of the current loss
        self.dispatched = 0  # events dispatched so far (barriers excluded), for the metrics

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
        conn = await asyncpg.connect(self.db.url, timeout=CONNECT_TIMEOUT)
        try:
            await conn.add_listener(CHANNEL, self._on_notify)
        except BaseException:
            conn.terminate()
            raise
        conn.add_termination_listener(self._on_terminated)
        self._conn = conn
        self.generation += 1
        self.connected.set()

    def _on_terminated(self, conn: object) -> None:
        if conn is self._conn:
            self._listener_lost("connection_lost")

    def _listener_lost(self, why: str) -> None:
        """Called once per lost connection, the moment the loss is known (no await: nothing slips in)."""
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()
        if self._stopping:
            return
        self.connected.clear()
        self.losses += 1
        self.lost_at = asyncio.get_running_loop().time()
        self._recent.clear()
        if self.auth is not None:
            self.auth.clear()
        log.warning("event_listener_lost", reason=why)
        for waiter in self._barriers.values():  # their markers may never come back
            if not waiter.done():
                waiter.set_exception(ListenerUnavailable("event listener lost"))
        self._tell_all({"id": "", "org": "", "type": LISTENER_LOST})
        self._lost.set()

    def _tell_all(self, event: Event) -> None:
        for subs in tuple(self._subscribers.values()):
            for sub in tuple(subs):
                try:
                    sub(event)
                except Exception:
                    log.exception("event_subscriber_failed", type=event["type"])

    async def _probe(self, conn: asyncpg.Connection) -> None:
        """A half-open connection (network cut, PostgreSQL frozen) is noticed by a round trip only."""
        round_trip = conn.execute("SELECT 1")
        try:
            await asyncio.wait_for(round_trip, PROBE_TIMEOUT)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            if conn is self._conn:
                self._listener_lost("probe_failed")

    async def _keep_connected(self) -> None:
        """Probe the LISTEN connection while it is up; reconnect at once when it is lost."""
        while not self._stopping:
            conn = self._conn
            if conn is not None:
                self._lost.clear()
                try:
                    await asyncio.wait_for(self._lost.wait(), PROBE_INTERVAL)
                    continue  # lost: reconnect below on the next turn
                except TimeoutError:
                    pass
                await self._probe(conn)
                continue
            attempt = 0
            while self._conn is None and not self._stopping:
                delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
                if delay:
                    await asyncio.sleep(delay)
                attempt += 1
                try:
                    await self._connect()
                except (
                    TimeoutError,
                    OSError,
                    asyncpg.PostgresError,
                    asyncpg.InterfaceError,
                ) as exc:
                    if attempt == 1 or attempt % 10 == 0:
                        log.error(
                            "event_listener_reconnect_failed", attempts=attempt, error=str(exc)
                        )
                    continue
                if self.auth is not None:
                    self.auth.clear()  # entries cached while deaf may be stale
                down = asyncio.get_running_loop().time() - (self.lost_at or 0.0)
                log.warning(
                    "event_listener_reconnected", attempts=attempt, down_seconds=round(down, 3)
                )
                self._tell_all({"id": "", "org": "", "type": LISTENER_BACK})

    # --- dispatch ----------------------------------------------------------------------------------
    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            event = json.loads(payload)
        except ValueError:
            log.error("bad_event_payload", payload=payload[:200])
            return
        self.dispatch(event)

    async def barrier(self, timeout: float = 5.0, *, strict: bool = False) -> None:  # noqa: ASYNC109
        """Return once every event committed before this call has been dispatched by this process.

        PostgreSQL delivers notifications to a listener in commit order: once our own marker comes back,
        everything committed before it has come back too. An event stream calls this when it registers, so
        that events of earlier commits still in flight neither reach it live nor miss the replay cache;
        its marker coming back also proves the listener live after the stream subscribed (from then on,
        a commit the stream does not hear about means a loss, which the stream is told of).

        `strict`: raise ListenerUnavailable when the marker does not come back within `timeout` (the
        listener is down or reconnecting); otherwise log and return (degrade, never fail).
        """
        marker = uuid.uuid4().hex
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._barriers[marker] = future
        try:
            async with asyncio.timeout(timeout):
                await self.connected.wait()
                await self.db.fetchval(
                    _Q_NOTIFY, CHANNEL, json.dumps({"id": marker, "org": "", "type": BARRIER})
                )
                await future
        except (
            TimeoutError,
            OSError,
            ListenerUnavailable,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
        ) as exc:
            if strict:
                raise ListenerUnavailable(str(exc) or type(exc).__name__) from exc
            log.warning("event_barrier_timeout")
        finally:
            self._barriers.pop(marker, None)

    def dispatch(self, event: Event) -> None:
        if event["type"] == BARRIER:
            waiter = self._barriers.get(event["id"])
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return
        self.dispatched += 1
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

    def subscriber_count(self) -> int:
        """Subscribers (event streams) of this process, all organizations together."""
        return sum(len(subs) for subs in self._subscribers.values())

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
