"""`--metrics`: GET /metrics in the Prometheus text format, scraped after real requests and parsed
with prometheus_client's own parser (docs/observability.md)."""

from __future__ import annotations

import uuid
from typing import Any

from core_helpers import API_HEADERS, Org, Server, running_server, settle
from prometheus_client.parser import text_string_to_metric_families
from test_block import create, read
from test_realm import new_realm


async def scrape(server: Server) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = await server.http.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_move_with_real_requests(db_url: str) -> None:
    async with running_server(db_url, metrics=True) as server:
        org: Org = await server.bootstrap_org()
        before = await scrape(server)
        assert (
            value(
                before, "parsec_requests_total", family="authenticated", command="ping", status="ok"
            )
            == 0
        )
        for i in range(3):
            assert await org.alice.rpc("ping", ping=str(i)) == {"status": "ok", "pong": str(i)}
        # a block the database knows but the store lost: store_unavailable, a blockstore error
        realm_id = await new_realm(org.alice)
        block_id = uuid.uuid4()
        assert (await create(org.alice, realm_id, block_id=block_id))["status"] == "ok"
        await server.backend.blockstore.delete(org.organization_id, block_id)
        assert await read(org.alice, realm_id, block_id) == {"status": "store_unavailable"}
        # refused at the handshake (415) and an unknown route (404)
        r = await server.http.post(
            f"/authenticated/{org.organization_id}",
            content=b"x",
            headers={**API_HEADERS, "Content-Type": "text/plain"},
        )
        assert r.status_code == 415
        assert (await server.http.get("/nowhere")).status_code == 404
        await settle(server, org.organization_id)
        # an event stream registered in this process
        unsubscribe = server.backend.events.subscribe(org.organization_id, lambda _event: None)
        try:
            after = await scrape(server)
        finally:
            unsubscribe()

    ping = {"family": "authenticated", "command": "ping"}
    assert value(after, "parsec_requests_total", **ping, status="ok") == 3
    assert value(after, "parsec_request_duration_seconds_count", **ping) == 3
    assert value(after, "parsec_request_duration_seconds_bucket", **ping, le="+Inf") == 3
    assert value(after, "parsec_request_duration_seconds_sum", **ping) > 0
    bootstrap = {"family": "anonymous", "command": "organization_bootstrap", "status": "ok"}
    assert value(after, "parsec_requests_total", **bootstrap) == 1
    assert (
        value(after, "parsec_requests_total", family="administration", command="", status="200")
        == 1
    )
    assert (
        value(after, "parsec_requests_total", family="authenticated", command="", status="415") == 1
    )
    assert value(after, "parsec_requests_total", family="other", command="", status="404") == 1
    assert (
        value(
            after,
            "parsec_requests_total",
            family="authenticated",
            command="block_read",
            status="store_unavailable",
        )
        == 1
    )
    assert value(after, "parsec_blockstore_errors_total", command="block_read") == 1
    assert value(after, "parsec_blockstore_errors_total", command="block_create") == 0
    # the previous scrape is counted too
    assert value(after, "parsec_requests_total", family="metrics", command="", status="200") == 1
    # state read at scrape time
    assert value(after, "parsec_db_pool_connections", state="open") >= 1
    assert value(after, "parsec_db_pool_connections", state="in_use") >= 0
    assert value(after, "parsec_db_pool_max_connections") == 10
    assert value(after, "parsec_sse_streams_open") == 1
    assert value(after, "parsec_events_dispatched_total") > value(
        before, "parsec_events_dispatched_total"
    )
    assert value(after, "parsec_events_listener_connected") == 1
    assert value(after, "parsec_migrations", state="applied") >= 1
    assert value(after, "parsec_migrations", state="pending") == 0
    # no organization id in any label
    assert all(org.organization_id not in str(labels) for _name, labels in after)


async def test_pending_migrations_are_counted(db_url: str) -> None:
    async with running_server(db_url, metrics=True) as server:
        async with server.backend.db.connection() as conn:
            last = await conn.fetchval("SELECT max(number) FROM schema_migration")
            await conn.execute("DELETE FROM schema_migration WHERE number = $1", last)
        samples = await scrape(server)
    assert value(samples, "parsec_migrations", state="pending") == 1


async def test_metrics_are_off_by_default(db_url: str) -> None:
    async with running_server(db_url) as server:
        assert server.app.observer is None
        r = await server.http.get("/metrics")
        assert r.status_code == 404


async def test_a_request_ended_before_any_response_counts_as_status_0() -> None:
    from parsec_server.asgi.http import Message, Receive, Scope, Send
    from parsec_server.asgi.metrics import Metrics, Observer

    metrics = Metrics(lambda: None)

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        return None  # e.g. the client left while its body was read

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent")

    scope = {"type": "http", "path": "/anonymous/Org", "method": "POST"}
    await Observer(metrics, access=False).observe(scope, receive, send, route)
    value = metrics.registry.get_sample_value(
        "parsec_requests_total", {"family": "anonymous", "command": "", "status": "0"}
    )
    assert value == 1
