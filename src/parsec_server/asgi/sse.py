"""`GET /authenticated/<org>/events`: the Server-Sent Events stream (protocol.md §1.9, observed §3.3).

The first message (no `id:`) is the organization config; then events as `data:<base64 msgpack>\\nid:<hex>`;
`event:keepalive` after `--sse-keepalive` seconds of silence; `event:missed_events` when `Last-Event-ID` is
unknown to this process, and when this process's event listener (events/bus.py) was lost while the stream
was open (sent once the listener is back: the client's resync then covers every commit it did not hear of).
A stream is opened only with a live listener: otherwise, and when the database is unreachable, the request
gets 503 with `Retry-After`. The stream ends when its user is revoked or frozen, the organization expires or its
terms of service change, or the server shuts down.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from typing import Any

from parsec_server.asgi.http import Receive, Scope, Send, header
from parsec_server.asgi.rpc import (
    OUTAGE_ERRORS,
    ApiVersionError,
    parse_api_version,
    send_handshake_error,
    send_unavailable,
)
from parsec_server.commands.context import AuthenticatedClient, Backend
from parsec_server.commands.registry import AUTHENTICATED, HandshakeError
from parsec_server.crypto import tokens
from parsec_server.events.bus import LISTENER_BACK, LISTENER_LOST, Event, ListenerUnavailable
from parsec_server.events.types import INTERNAL, to_api_event
from parsec_server.log import get_logger
from parsec_server.protocol import sse as sse_wire
from parsec_server.protocol.ids import is_valid_organization_id
from parsec_server.protocol.registry import encode_rep
from parsec_server.storage import auth as auth_storage

log = get_logger("parsec_server.sse")

QUEUE_MAX = 100
_REPLAY_MAX = 100
_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]
_CLOSE = object()
_MISSED = object()


class _Stream:
    """One client's view: which events are for it, and its outgoing queue.

    A stream subscribes to the bus BEFORE reading its user's realms from the database, and buffers what it
    hears meanwhile (`pending`); `go_live` then applies those events on top of the database's answer, so a
    sharing committed during the registration is never missed (nor its first vlob events)."""

    def __init__(self, client: AuthenticatedClient) -> None:
        self.user_hex = client.user_id.hex
        self.device_hex = client.device_id.hex
        self.is_admin = client.device.profile == "ADMIN"
        self.realms: set[str] = set()
        self.pending: list[Event] | None = []
        # What the sender (`_pump`) has to send; it sleeps on `waiter` while this is empty.
        self.queue: deque[Any] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.lagging = False
        self.deaf = False  # the event listener was lost since this stream subscribed
        self.owe_missed = False  # ...and is back: `missed_events` is due

    def go_live(
        self, realms: set[uuid.UUID], missed: list[Event] | None, replay: bool
    ) -> list[bytes]:
        """Start delivering. `missed`: the events cached after the client's `Last-Event-ID` (None: that id
        is unknown), when `replay`. Returns the frames to send right after the organization config; must
        run without awaiting anything (no event may slip between the replay and the live queue)."""
        self.realms = {r.hex for r in realms}
        pending, self.pending = self.pending or [], None
        frames: list[bytes] = []
        if self.owe_missed:
            self.owe_missed = False
            frames.append(sse_wire.MISSED_EVENTS)
        elif replay:
            if missed is None:
                frames.append(sse_wire.MISSED_EVENTS)
            else:
                heard = {ev["id"] for ev in pending}  # delivered below, through the queue
                mine = [
                    ev
                    for ev in missed
                    if ev["id"] not in heard and ev["type"] not in INTERNAL and self.wants(ev)
                ]
                if len(mine) > _REPLAY_MAX:
                    frames.append(sse_wire.MISSED_EVENTS)
                else:
                    frames.extend(_frame(ev) for ev in mine)
        for ev in pending:
            self.on_event(ev)
        return frames

    def wants(self, ev: Event) -> bool:
        t = ev["type"]
        if t == "VLOB":
            return ev["realm_id"] in self.realms and ev["author"] != self.device_hex
        if t == "REALM_CERTIFICATE":
            return ev["realm_id"] in self.realms or ev.get("user_id") == self.user_hex
        if t == "INVITATION":
            greeters = ev.get("greeters")
            if ev.get("to_admins"):
                return self.is_admin
            return greeters is not None and self.user_hex in greeters
        if t.startswith("GREETING_ATTEMPT_"):
            return ev.get("greeter") == self.user_hex
        if t == "ASYNC_ENROLLMENT":
            return self.is_admin
        return t in ("PINGED", "COMMON_CERTIFICATE", "SEQUESTER_CERTIFICATE")

    def after_delivery(self, ev: Event) -> None:
        if ev["type"] == "REALM_CERTIFICATE" and ev.get("user_id") == self.user_hex:
            if ev.get("role_removed"):
                self.realms.discard(ev["realm_id"])
            else:
                self.realms.add(ev["realm_id"])

    def ends_on(self, ev: Event) -> bool:
        t = ev["type"]
        if t in ("ORGANIZATION_EXPIRED", "ORGANIZATION_TOS_UPDATED"):
            return True
        if t == "USER_REVOKED_OR_FROZEN":
            return ev.get("user_id") == self.user_hex
        if t == "USER_UPDATED" and ev.get("user_id") == self.user_hex and ev.get("profile"):
            self.is_admin = ev["profile"] == "ADMIN"
        return False

    def push(self, item: Any) -> None:
        if len(self.queue) >= QUEUE_MAX:
            self.lagging = True  # dropped: the stream ends, the client reconnects and resyncs
        else:
            self.queue.append(item)
        self.wake()

    def wake(self) -> None:
        """Wake the sender if it sleeps (an item is queued, the keepalive is due, or it must stop)."""
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def on_event(self, ev: Event) -> None:
        t = ev["type"]
        if t == LISTENER_LOST:
            self.deaf = True
            return
        if t == LISTENER_BACK:
            if self.deaf:
                self.deaf = False
                if self.pending is not None:
                    self.owe_missed = True
                else:
                    self.push(_MISSED)
            return
        if self.pending is not None:
            self.pending.append(ev)
            return
        if ev["type"] in INTERNAL:
            if self.ends_on(ev):
                self.push(_CLOSE)
            return
        if self.wants(ev):
            self.push(ev)
            self.after_delivery(ev)


_FRAME_KEY = "_sse_frame"  # the event's frame, kept in the event once encoded (never published)


def _frame(ev: Event) -> bytes:
    """The event's SSE frame: the same bytes for every stream, so encoded once per event and process
    (an event goes to every stream of its realm: 2,000 streams encoded it 2,000 times)."""
    frame: bytes | None = ev.get(_FRAME_KEY)
    if frame is None:
        frame = ev[_FRAME_KEY] = sse_wire.frame(encode_rep(to_api_event(ev)), ev["id"])
    return frame


def organization_config_frame(client: AuthenticatedClient) -> bytes:
    org = client.org
    payload = sse_wire.organization_config(
        user_profile_outsider_allowed=org.user_profile_outsider_allowed,
        active_users_limit=org.active_users_limit,
        sse_keepalive_seconds=client.backend.config.sse_keepalive,
        realm_minimum_archiving_period_before_deletion=org.minimum_archiving_period,
    )
    return sse_wire.frame(payload)


async def handle_events(
    backend: Backend,
    scope: Scope,
    receive: Receive,
    send: Send,
    org_id: str,
    shutting_down: asyncio.Event,
) -> None:
    try:
        revision = parse_api_version(scope)
        if not is_valid_organization_id(org_id):
            raise HandshakeError(404)
        if header(scope, b"accept") != b"text/event-stream":
            raise HandshakeError(406)
        auth = tokens.parse_authorization(header(scope, b"authorization"))
        client = await backend.auth.authenticated_client(
            backend, org_id, auth, revision, AUTHENTICATED
        )
    except HandshakeError as exc:
        return await send_handshake_error(send, exc.status)
    except tokens.TokenError:
        return await send_handshake_error(send, 401)
    except ApiVersionError:
        return await send_handshake_error(send, 422)
    except OUTAGE_ERRORS as exc:
        return await send_unavailable(backend, send, exc)
    if shutting_down.is_set():
        from parsec_server.asgi.http import send_json

        return await send_json(send, 503, {"detail": "Server is shutting down"})

    stream = _Stream(client)
    unsubscribe = backend.events.subscribe(org_id, stream.on_event)
    try:
        # Events committed before this stream registered are in flight until the barrier returns: they
        # belong to the replay cache (Last-Event-ID), not to the live stream. The barrier also proves the
        # listener live after `subscribe` (a stream must not open deaf).
        try:
            await backend.events.barrier(strict=True)
            if stream.pending is not None:
                stream.pending.clear()
            async with backend.db.connection() as conn:
                realms = await auth_storage.user_realms(
                    conn, client.org.internal_id, client.device.user_internal_id
                )
        except ListenerUnavailable:
            return await send_unavailable(backend, send, None)
        except OUTAGE_ERRORS as exc:
            return await send_unavailable(backend, send, exc)
        raw_last_id = header(scope, b"last-event-id")
        last_id = _parse_event_id(raw_last_id)
        missed = backend.events.events_after(last_id, org_id) if last_id is not None else None
        replay = stream.go_live(realms, missed, replay=last_id is not None)
        await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
        await send(
            {
                "type": "http.response.body",
                "body": organization_config_frame(client),
                "more_body": True,
            }
        )
        for frame in replay:
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await _pump(backend, receive, send, stream, shutting_down)
    except OSError:
        pass  # the client went away
    finally:
        unsubscribe()


def _parse_event_id(raw: bytes | None) -> str | None:
    """The `Last-Event-ID` header as an event id (hex); an invalid one is ignored."""
    if raw is None:
        return None
    try:
        return uuid.UUID(raw.decode("latin-1").strip()).hex
    except ValueError:
        return None


async def _pump(
    backend: Backend, receive: Receive, send: Send, stream: _Stream, shutting_down: asyncio.Event
) -> None:
    """Send what the stream queues, a keepalive after `sse_keepalive` seconds of silence; stop when
    the client goes away, the server stops, the stream is told to end or lags.

    One future per wake-up and one timer per keepalive period: this runs for every stream of a
    realm at each of its events (2,000 streams: 2,000 wake-ups per vlob write). A new `queue.get()`
    task and an `asyncio.wait` on three futures with a timeout per wake-up cost as much as the rest
    of the delivery (bench/sse_scale.py). Everything queued when the sender wakes up goes out in
    one body: taken one per wake-up, a busy process's streams fell behind a burst of writes and
    overflowed (bench/scaleout.py)."""
    keepalive = backend.config.sse_keepalive
    if keepalive is not None and keepalive <= 0:
        keepalive = None
    loop = asyncio.get_running_loop()
    disconnected = asyncio.ensure_future(_wait_disconnect(receive))
    stopping = asyncio.ensure_future(shutting_down.wait())

    def wake(_: object = None) -> None:
        stream.wake()

    disconnected.add_done_callback(wake)
    stopping.add_done_callback(wake)
    timer: asyncio.TimerHandle | None = None
    last_sent = loop.time()

    def keepalive_due() -> None:
        nonlocal timer
        timer = None
        stream.wake()

    queue = stream.queue
    try:
        while not (disconnected.done() or stopping.done()):
            if not queue and not stream.lagging:
                if keepalive is not None and timer is None:
                    # armed once per period, not per wake-up: when it fires early (events were
                    # sent meanwhile), the sender arms it again from the last send
                    timer = loop.call_at(last_sent + keepalive, keepalive_due)
                waiter = stream.waiter = loop.create_future()
                await waiter
                if disconnected.done() or stopping.done():
                    break
                if not queue and not stream.lagging:
                    if keepalive is not None and loop.time() >= last_sent + keepalive:
                        await send(
                            {
                                "type": "http.response.body",
                                "body": sse_wire.KEEPALIVE,
                                "more_body": True,
                            }
                        )
                        last_sent = loop.time()
                    continue
            if stream.lagging:
                break
            body: list[bytes] = []
            end = False
            while queue:
                item = queue.popleft()
                if item is _CLOSE:
                    end = True
                    break
                body.append(sse_wire.MISSED_EVENTS if item is _MISSED else _frame(item))
            if body:
                await send(
                    {"type": "http.response.body", "body": b"".join(body), "more_body": True}
                )
                last_sent = loop.time()
            if end:
                break
        if not disconnected.done():
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except OSError:
        pass
    finally:
        stream.waiter = None
        if timer is not None:
            timer.cancel()
        disconnected.cancel()
        stopping.cancel()


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return
