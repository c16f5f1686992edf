"""No silent event loss across PostgreSQL restarts (issue 11 point 1): real `parsec-server run`
processes (one, and two on the same database) with SSE streams open, vlobs written under load, and the
database restarted (fast stop + start) or killed (SIGKILL of the postmaster + start).

Every write acknowledged while a stream is open must reach that stream, or the stream must get
`missed_events`, or be closed and be told `missed_events` when it reconnects with `Last-Event-ID`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "events"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "commands"))

from core_helpers import Device, HttpError, Server
from sse_support import (
    ServerProcess,
    http_server,
    open_events,
    server_spawner,
    shared_realm,
)

from parsec_server.protocol.codec import now

pytestmark = pytest.mark.timeout(180)

LOAD_BEFORE = 0.8  # seconds of writes before the restart
LOAD_AFTER = 2.0  # seconds of writes after PostgreSQL is back
WRITERS = 3
DOWN = 0.3  # seconds PostgreSQL stays down


@pytest.fixture
def servers(own_db_url: str, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    with server_spawner(own_db_url, tmp_path, ("--blockstore", "POSTGRESQL")) as spawn:
        yield [spawn(), spawn()]


@dataclass
class Watch:
    """What one open stream saw."""

    name: str
    vlobs: set[uuid.UUID] = field(default_factory=set)
    missed: int = 0  # missed_events received (live, or on reconnecting with Last-Event-ID)
    closed: int = 0
    last_id: str | None = None


async def _watch(bob: Device, http: httpx.AsyncClient, watch: Watch, stop: asyncio.Event) -> None:
    """Read bob's stream on one process until `stop`; reconnect with Last-Event-ID when it closes
    (retrying while the server answers 503)."""
    while not stop.is_set():
        headers = {"Last-Event-ID": watch.last_id} if watch.last_id else {}
        try:
            async with open_events(bob, http=http, read_timeout=60, **headers) as stream:
                await stream.next()  # organization config
                while True:
                    msg = await stream.next()
                    if msg.event == "missed_events":
                        watch.missed += 1
                    elif msg.event != "keepalive":
                        watch.last_id = msg.id
                        rep = msg.rep()
                        if rep["event"] == "VLOB":
                            watch.vlobs.add(rep["vlob_id"])
        except (EOFError, httpx.HTTPError, AssertionError):
            watch.closed += 1
            await asyncio.sleep(0.05)


@dataclass
class Load:
    acked: list[tuple[float, uuid.UUID]] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)


async def _write(alice: Device, realm_id: uuid.UUID, load: Load, until: asyncio.Event) -> None:
    while not until.is_set():
        vlob_id = uuid.uuid4()
        try:
            rep = await alice.rpc(
                "vlob_create",
                realm_id=realm_id,
                vlob_id=vlob_id,
                key_index=1,
                timestamp=now(),
                blob=b"x",
            )
        except HttpError as exc:
            key = f"http {exc.status_code}"
            load.refused[key] = load.refused.get(key, 0) + 1
            await asyncio.sleep(0.01)
            continue
        except httpx.HTTPError as exc:
            key = type(exc).__name__
            load.refused[key] = load.refused.get(key, 0) + 1
            await asyncio.sleep(0.01)
            continue
        assert rep == {"status": "ok"}, rep
        load.acked.append((time.monotonic(), vlob_id))


def _listener_downtime(server: ServerProcess) -> list[float]:
    text = server.log_path.read_text(errors="replace")
    return [
        float(x) for x in re.findall(r"event_listener_reconnected.*?down_seconds=([0-9.]+)", text)
    ]


@pytest.mark.parametrize("processes", [1, 2])
@pytest.mark.parametrize("how", ["fast_restart", "kill_restart"])
async def test_no_silent_event_loss_across_pg_restart(
    own_pg: Any, servers: list[ServerProcess], how: str, processes: int
) -> None:
    procs = servers[:processes]
    async with http_server(procs[0]) as s1:
        org = await s1.bootstrap_org()
        alice = org.alice
        bob = await alice.create_user("bob")
        realm_id = await shared_realm(alice, bob)
        clients = [httpx.AsyncClient(base_url=p.url, timeout=20) for p in procs]
        writers_http = [httpx.AsyncClient(base_url=p.url, timeout=20) for p in procs]
        try:
            # two streams per process (bob's), alice writes through every process in turn
            watches = [Watch(f"p{i}s{j}") for i in range(len(procs)) for j in range(2)]
            stop = asyncio.Event()
            readers = [
                asyncio.create_task(_watch(bob, clients[i // 2], w, stop))
                for i, w in enumerate(watches)
            ]
            await asyncio.sleep(0.5)  # streams registered
            load, done = Load(), asyncio.Event()
            writers = []
            for k in range(WRITERS):
                writer = dataclasses.replace(
                    alice,
                    server=Server(app=None, http=writers_http[k % len(procs)]),  # type: ignore[arg-type]
                )
                writers.append(asyncio.create_task(_write(writer, realm_id, load, done)))
            await asyncio.sleep(LOAD_BEFORE)
            before = len(load.acked)
            t_down = time.monotonic()
            await asyncio.to_thread(own_pg.stop if how == "fast_restart" else own_pg.kill)
            await asyncio.sleep(DOWN)  # writes meanwhile are refused
            # started from this thread (blocking the loop a moment): the postmaster dies with the
            # thread that started it
            own_pg.start()
            t_up = time.monotonic()
            await asyncio.sleep(LOAD_AFTER)
            done.set()
            await asyncio.gather(*writers)
            # a last write: once every stream heard it (or was flagged), nothing is in flight
            sentinel = uuid.uuid4()
            rep = await alice.rpc(
                "vlob_create",
                realm_id=realm_id,
                vlob_id=sentinel,
                key_index=1,
                timestamp=now(),
                blob=b"s",
            )
            assert rep == {"status": "ok"}
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not all(sentinel in w.vlobs for w in watches):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            stop.set()
            for r in readers:
                r.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
        finally:
            for c in clients + writers_http:
                await c.aclose()

    acked = {v for _, v in load.acked}
    after_restart = [v for t, v in load.acked if t > t_up]
    first_ok = min((t for t, _ in load.acked if t > t_up), default=None)
    report = {
        "how": how,
        "processes": processes,
        "acked": len(acked),
        "acked_before_restart": before,
        "acked_after_pg_up": len(after_restart),
        "refused": load.refused,
        "pg_down_seconds": round(t_up - t_down, 3),
        "first_ack_after_pg_up_seconds": round(first_ok - t_up, 3) if first_ok else None,
        "listener_down_seconds": [_listener_downtime(p) for p in procs],
        "streams": {
            w.name: {
                "delivered": len(acked & w.vlobs),
                "not_delivered": len(acked - w.vlobs),
                "missed_events": w.missed,
                "closed": w.closed,
            }
            for w in watches
        },
    }
    print(report)
    assert before > 0 and after_restart, report  # the restart happened under load
    # what clients saw while the database was down: 503 (+ Retry-After), never a 500
    assert set(load.refused) <= {"http 503"}, report
    for w in watches:
        assert sentinel in w.vlobs, (w.name, report)
        lost = acked - w.vlobs
        # every acknowledged write reached the stream, or the stream was told it missed events
        assert not lost or w.missed > 0, (w.name, len(lost), report)
    # the listener of every process came back (and said so)
    assert all(_listener_downtime(p) for p in procs), report
