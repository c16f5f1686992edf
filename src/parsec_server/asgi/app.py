"""The ASGI application: routes, lifespan (database pool, event listener) and the landing/health pages.

Written directly against ASGI (no framework): the RPC path is the hot path and every layer costs CPU.
"""

from __future__ import annotations

import asyncio
from typing import Any

from parsec_server import __version__
from parsec_server.asgi import admin, rpc, sse
from parsec_server.asgi.auth import AuthCache
from parsec_server.asgi.cors import Cors
from parsec_server.asgi.http import (
    Receive,
    Scope,
    Send,
    header,
    send_html,
    send_json,
    send_response,
)
from parsec_server.asgi.metrics import Metrics, Observer
from parsec_server.asgi.proxy import TrustedProxies
from parsec_server.blockstore import build_blockstore
from parsec_server.commands import registry
from parsec_server.commands.context import Backend
from parsec_server.config import ServerConfig
from parsec_server.events.bus import EventBus
from parsec_server.log import get_logger
from parsec_server.storage.db import COMMAND_TIMEOUT, Database

log = get_logger("parsec_server.asgi")

LANDING = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Parsec server</title></head>
<body><h1>Parsec server</h1>
<p>This is a <a href="https://parsec.cloud">Parsec</a> server (parsec-server {version}, API 5.6).
Use a Parsec client to connect to it.</p></body></html>
"""
NOT_FOUND = (
    "<!doctype html><html><head><title>404</title></head><body><h1>404 Not Found</h1></body></html>"
)


class ParsecApp:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.backend: Backend | None = None
        self.shutting_down = asyncio.Event()
        registry.load_all()
        # --metrics / --access-log (asgi/metrics.py): None when both are off, then a request pays nothing.
        self.metrics = Metrics(lambda: self.backend) if config.metrics else None
        self.observer = (
            Observer(self.metrics, config.access_log)
            if config.metrics or config.access_log
            else None
        )
        if self.observer is None:
            self._http = self._route  # type: ignore[method-assign]
        # --proxy-trusted-addresses (asgi/proxy.py) and --cors-allow-origins (asgi/cors.py).
        self.proxies = (
            TrustedProxies(config.proxy_trusted_addresses)
            if config.proxy_trusted_addresses
            else None
        )
        self.cors = Cors(config.cors_allow_origins) if config.cors_allow_origins else None

    # --- lifecycle ---------------------------------------------------------------------------------
    async def startup(self) -> None:
        db = await Database.open(
            self.config.db_url,
            self.config.db_min_connections,
            self.config.db_max_connections,
            command_timeout=COMMAND_TIMEOUT,
        )
        try:
            blockstore = build_blockstore(self.config.blockstore, db)
            await blockstore.start()
            auth = AuthCache()
            events = EventBus(db, auth)
            await events.start()
        except BaseException:
            await db.close()
            raise
        self.backend = Backend(self.config, db, blockstore, events, auth)
        log.info("server_started", **self.config.redacted())

    async def shutdown(self) -> None:
        self.shutting_down.set()
        backend, self.backend = self.backend, None
        if backend is not None:
            await backend.events.stop()
            await backend.blockstore.stop()
            await backend.db.close()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.error("startup_failed", error=str(exc))
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --- routing -----------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if self.proxies is not None:
                self.proxies.apply(scope)
            cors = self.cors
            if cors is not None:
                origin = header(scope, b"origin")
                if origin is not None:
                    if scope["method"] == "OPTIONS":
                        wanted = header(scope, b"access-control-request-method")
                        if wanted is not None:
                            return await cors.preflight(scope, send, origin, wanted)
                    send = cors.wrap_send(origin, send)
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        observer = self.observer
        if observer is None:  # no extra frame then: __init__ binds _http to _route
            return await self._route(scope, receive, send)
        await observer.observe(scope, receive, send, self._route)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        backend = self.backend
        if backend is None:
            await send_json(send, 503, {"detail": "Server is starting or stopping"})
            return
        path: str = scope["path"]
        method: str = scope["method"]
        parts = path.strip("/").split("/")
        head = parts[0]
        n = len(parts)
        try:
            if head == "authenticated" and n >= 2:
                if n == 2:
                    if method == "POST":
                        return await rpc.handle_rpc(
                            backend, scope, receive, send, registry.AUTHENTICATED, parts[1]
                        )
                elif n == 3 and parts[2] == "tos":
                    if method == "POST":
                        return await rpc.handle_rpc(
                            backend, scope, receive, send, registry.TOS, parts[1]
                        )
                elif n == 3 and parts[2] == "events":
                    if method == "GET":
                        return await sse.handle_events(
                            backend, scope, receive, send, parts[1], self.shutting_down
                        )
                else:
                    return await send_html(send, 404, NOT_FOUND)
                return await _method_not_allowed(send)
            if head == "anonymous" and n == 2:
                if method == "POST":
                    return await rpc.handle_rpc(
                        backend, scope, receive, send, registry.ANONYMOUS, parts[1]
                    )
                if method == "GET":
                    return await rpc.handle_anonymous_probe(backend, scope, send, parts[1])
                return await _method_not_allowed(send)
            if head == "invited" and n == 2:
                if method == "POST":
                    return await rpc.handle_rpc(
                        backend, scope, receive, send, registry.INVITED, parts[1]
                    )
                return await _method_not_allowed(send)
            if path == "/anonymous_server":
                if method == "POST":
                    return await rpc.handle_rpc(
                        backend, scope, receive, send, registry.ANONYMOUS_SERVER, None
                    )
                return await _method_not_allowed(send)
            if path == "/authenticated_account":
                if method == "POST":
                    return await rpc.handle_rpc(
                        backend, scope, receive, send, registry.AUTHENTICATED_ACCOUNT, None
                    )
                return await _method_not_allowed(send)
            if head == "administration":
                return await admin.handle_admin(backend, scope, receive, send, parts[1:])
            if head == "redirect" and method == "GET":
                return await _redirect(backend, scope, send, path[len("/redirect") :])
            if path == "/" and method in ("GET", "HEAD"):
                return await send_html(send, 200, LANDING.format(version=__version__))
            if path in ("/health", "/healthz") and method in ("GET", "HEAD"):
                return await _health(backend, send)
            if path == "/metrics" and self.metrics is not None and method in ("GET", "HEAD"):
                return await self.metrics.serve(backend, send)
            await send_html(send, 404, NOT_FOUND)
        except rpc.OUTAGE_ERRORS as exc:  # e.g. an administration request during a database outage
            await rpc.send_unavailable(backend, send, exc)
        except Exception:
            log.exception("unhandled_error", path=path, method=method)
            # The response may have started already; uvicorn then closes the connection.
            try:
                await send_response(
                    send, 500, b"Internal Server Error", [(b"content-type", b"text/plain")]
                )
            except Exception:
                pass


async def _method_not_allowed(send: Send) -> None:
    await send_json(send, 405, {"detail": "Method Not Allowed"})


async def _health(backend: Backend, send: Send) -> None:
    """200 `{"status": "ok", ...}` when the database answers and accepts writes; 503 `"unavailable"` when
    it cannot be reached, 503 `"degraded"` with `"writes": "failing"` when it answers but refuses writes
    (read-only, or a write refused for lack of resources, e.g. disk full, in the last 30 s). `events` says
    whether this process's event listener is connected (informational). See docs/faults.md."""
    problem = await backend.db.probe()
    if problem is None:
        rpc.OUTAGE.writable_again()
        problem = rpc.OUTAGE.writes_failing()
    doc: dict[str, Any] = {"version": __version__}
    if problem == "unreachable":
        doc.update(status="unavailable", database="unreachable", writes="failing")
    elif problem is not None:
        doc.update(status="degraded", database="ok", writes="failing", cause=problem)
    else:
        doc.update(status="ok", database="ok", writes="ok")
    doc["events"] = "ok" if backend.events.connected.is_set() else "reconnecting"
    await send_json(send, 200 if problem is None else 503, doc)


async def _redirect(backend: Backend, scope: Scope, send: Send, rest: str) -> None:
    """`/redirect/<path>?<query>` → 302 to the parsec3:// URL built from --server-addr; 400 for a
    path with control characters once decoded (`%0d%0a`...): they cannot go in a Location header."""
    if not rest.isprintable():
        return await send_json(send, 400, {"detail": "Invalid redirection path"})
    addr = backend.config.server_addr
    scheme_rest = addr.split("://", 1)[1] if "://" in addr else addr
    hostport, _, addr_query = scheme_rest.partition("?")
    hostport = hostport.rstrip("/")
    query = scope.get("query_string", b"").decode("latin-1")
    params = "&".join(p for p in (query, addr_query) if p)
    location = f"parsec3://{hostport}{rest}" + (f"?{params}" if params else "")
    await send_response(send, 302, b"", [(b"location", location.encode())])


def build_app(config: ServerConfig) -> ParsecApp:
    return ParsecApp(config)


__all__ = ["ParsecApp", "build_app"]
