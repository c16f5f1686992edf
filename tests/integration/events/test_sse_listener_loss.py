"""A server process losing its LISTEN connection (here: its backend terminated by an administrator,
as a PostgreSQL restart would) tells its open event streams `missed_events` once the listener is back,
and a client reconnecting with a `Last-Event-ID` heard before the loss is told `missed_events` too (the
replay cache is emptied: what it would replay may be incomplete)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import pytest
from sse_support import ServerProcess, http_server, open_events

pytestmark = pytest.mark.timeout(60)

_Q_KILL_LISTENER = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND query LIKE 'LISTEN %'
"""


async def _terminate_listeners(db_url: str) -> int:
    conn = await asyncpg.connect(db_url)
    try:
        return int(await conn.fetchval(_Q_KILL_LISTENER))
    finally:
        await conn.close()


async def test_listener_loss_tells_streams_missed_events(
    spawn_server: Callable[..., ServerProcess], db_url: str
) -> None:
    proc = spawn_server()
    async with http_server(proc) as server:
        org = await server.bootstrap_org()
        alice = org.alice
        async with open_events(alice) as stream:
            await stream.next()  # organization config
            await alice.create_user("bob")
            heard = await stream.next()
            assert heard.rep()["event"] == "COMMON_CERTIFICATE" and heard.id is not None
            assert await _terminate_listeners(db_url) == 1
            msg = await asyncio.wait_for(stream.next(), 10)
            assert (msg.event, msg.fields.get("data")) == ("missed_events", "")
            # the stream goes on, live
            await alice.create_user("carol")
            assert (await asyncio.wait_for(stream.next_data(), 10))["event"] == "COMMON_CERTIFICATE"
        # what was heard before the loss can no longer be replayed from
        async with open_events(alice, **{"Last-Event-ID": heard.id}) as stream:
            await stream.next()
            msg = await asyncio.wait_for(stream.next(), 10)
            assert msg.event == "missed_events"
        log = proc.log_path.read_text()
        assert "event_listener_lost" in log and "event_listener_reconnected" in log
        assert "Traceback" not in log
        # health says the listener is connected again
        assert (await server.http.get("/health")).json()["events"] == "ok"
