"""Observability of the HTTP layer: Prometheus metrics (`--metrics`, `GET /metrics`) and the access
log (`--access-log`), docs/observability.md.

Both hook into `ParsecApp._http` only when enabled: with both off a request pays nothing. When on,
a request costs one `send` wrapper, a `perf_counter` pair and one dict look-up of the pre-bound
label children (`_children`); no label object is built per request.

Label values are bounded: families and routes are fixed sets, `command` is a command the protocol
registry decoded (`scope["parsec.cmd"]`, set by asgi/rpc.py), `status` the reply's `status` field or
the HTTP status. No organization, user or client-supplied text becomes a label.

Gauges that describe the server's state (database pool, event streams, events dispatched, migrations)
are read at scrape time from counters kept by the pool and the event bus (`_LiveCollector`), so the
lower layers import nothing from here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from time import perf_counter
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from parsec_server.asgi.http import Message, Receive, Scope, Send, send_response
from parsec_server.log import get_logger
from parsec_server.storage.migrations.source import discover

if TYPE_CHECKING:
    from parsec_server.commands.context import Backend

access_log = get_logger("parsec_server.access")

# Route families: the label `family` (first path segment, bounded).
_FAMILIES = {
    "authenticated": "authenticated",
    "anonymous": "anonymous",
    "invited": "invited",
    "anonymous_server": "anonymous_server",
    "authenticated_account": "authenticated_account",
    "administration": "administration",
    "redirect": "redirect",
    "health": "health",
    "healthz": "health",
    "metrics": "metrics",
    "": "landing",
}
# Commands whose `store_unavailable` reply means the blockstore failed.
_BLOCK_COMMANDS = frozenset({"block_read", "block_create"})
# Request latency buckets, seconds (an RPC typically takes 1-20 ms).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Route = Callable[[Scope, Receive, Send], Awaitable[None]]
BackendRef = Callable[[], "Backend | None"]


def request_family(path: str) -> str:
    """The bounded `family` label of a request path."""
    parts = path.split("/", 3)  # "", head, org, rest
    head = parts[1] if len(parts) > 1 else ""
    if head == "authenticated" and len(parts) > 3:
        return "tos" if parts[3] == "tos" else "events" if parts[3] == "events" else "other"
    return _FAMILIES.get(head, "other")


def safe_path(path: str) -> str:
    """The path as the access log shows it: the routes carry no secret (tokens travel in headers,
    the `/redirect/...` query string is dropped); an unknown path is cut to 200 characters."""
    return path if len(path) <= 200 else path[:200] + "..."


class _LiveCollector(Collector):
    """Server state read at scrape time (the pool and the event bus keep plain counters)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        backend = self._metrics.backend()
        if backend is None:
            return
        pool = backend.db.pool
        stats = pool.stats()
        g = GaugeMetricFamily(
            "parsec_db_pool_connections",
            "Database connections of this process's pool, by state (open = in use + idle).",
            labels=["state"],
        )
        g.add_metric(["open"], stats.open)
        g.add_metric(["in_use"], stats.open - stats.idle)
        g.add_metric(["idle"], stats.idle)
        g.add_metric(["waiting"], stats.waiting)
        yield g
        yield GaugeMetricFamily(
            "parsec_db_pool_max_connections",
            "Upper bound of the pool (--db-max-connections).",
            value=stats.max_size,
        )
        events = backend.events
        yield GaugeMetricFamily(
            "parsec_sse_streams_open",
            "Event streams (GET /authenticated/<org>/events) open in this process.",
            value=events.subscriber_count(),
        )
        yield CounterMetricFamily(
            "parsec_events_dispatched",
            "Events received from PostgreSQL and dispatched to this process's streams and caches.",
            value=events.dispatched,
        )
        yield GaugeMetricFamily(
            "parsec_events_listener_connected",
            "1 when the event listener (LISTEN connection) is connected.",
            value=1 if events.connected.is_set() else 0,
        )
        m = GaugeMetricFamily(
            "parsec_migrations",
            "Schema migrations known to this server, by state in the database (read at scrape).",
            labels=["state"],
        )
        applied, pending = self._metrics.migrations
        if applied >= 0:
            m.add_metric(["applied"], applied)
            m.add_metric(["pending"], pending)
        yield m


class Metrics:
    """The Prometheus registry of one application (not the process-global one: tests run several)."""

    def __init__(self, backend: BackendRef) -> None:
        self.backend = backend
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "parsec_requests",
            "HTTP requests answered, by family, command (RPC) and status (RPC reply status or HTTP).",
            ["family", "command", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "parsec_request_duration_seconds",
            "Time to answer a request (event streams excluded), by family and command.",
            ["family", "command"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self._blockstore_errors = Counter(
            "parsec_blockstore_errors",
            "Block requests answered store_unavailable (the object store failed or lacks the block).",
            ["command"],
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, str], tuple[Counter, Histogram | None]] = {}
        self.migrations: tuple[int, int] = (-1, -1)  # (applied, pending), refreshed per scrape
        self._known_migrations = frozenset(m.index for m in discover())
        self.registry.register(_LiveCollector(self))

    def record(self, family: str, command: str, status: str, seconds: float) -> None:
        key = (family, command, status)
        pair = self._children.get(key)
        if pair is None:
            latency = None if family == "events" else self._latency.labels(family, command)
            pair = self._children[key] = (self._requests.labels(family, command, status), latency)
            if status == "store_unavailable" and command in _BLOCK_COMMANDS:
                self._blockstore_errors.labels(command)  # the series exists from the first one
        pair[0].inc()
        if pair[1] is not None:
            pair[1].observe(seconds)
        if status == "store_unavailable" and command in _BLOCK_COMMANDS:
            self._blockstore_errors.labels(command).inc()

    async def refresh_migrations(self, backend: Backend) -> None:
        try:
            async with backend.db.connection() as conn:
                rows = await conn.fetch("SELECT number FROM schema_migration")
        except Exception:  # the database is down: keep the last value
            return
        numbers = {r["number"] for r in rows}
        known = self._known_migrations
        self.migrations = (len(known & numbers), len(known - numbers))

    async def serve(self, backend: Backend, send: Send) -> None:
        await self.refresh_migrations(backend)
        body = generate_latest(self.registry)
        await send_response(send, 200, body, [(b"content-type", CONTENT_TYPE_LATEST.encode())])


class Observer:
    """Wraps one request to count it (metrics) and/or log it (access log)."""

    def __init__(self, metrics: Metrics | None, access: bool) -> None:
        self.metrics = metrics
        self.access = access

    async def observe(self, scope: Scope, receive: Receive, send: Send, route: Route) -> None:
        started = perf_counter()
        status = 0

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await route(scope, receive, observed_send)
        finally:
            seconds = perf_counter() - started
            path: str = scope["path"]
            family = request_family(path)
            command: str = scope.get("parsec.cmd", "")
            reply: str | None = scope.get("parsec.status")
            # status 0: no response started (the client left, or the server stopped, first)
            label = reply if reply is not None and status == 200 else str(status)
            if self.metrics is not None:
                self.metrics.record(family, command, label, seconds)
            if self.access and access_log.isEnabledFor(logging.INFO):
                client = scope.get("client")
                access_log.info(
                    "access",
                    method=scope["method"],
                    path=safe_path(path),
                    http_status=status,
                    ms=round(seconds * 1000, 2),
                    family=family,
                    cmd=command or None,
                    status=reply,
                    peer=f"{client[0]}:{client[1]}" if client else None,
                )


__all__ = ["BUCKETS", "Metrics", "Observer", "access_log", "request_family", "safe_path"]
