"""Command handlers, found by (family, wire command name).

A handler is `async def h(ctx, req) -> dict`: it returns the reply as a dict with a `status` key (the protocol
outcome, always HTTP 200). Handshake-level failures discovered while handling (author revoked mid-command,
organization expired...) are raised as `HandshakeError` and rendered as bare HTTP statuses by the asgi layer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Handler = Callable[[Any, Any], Awaitable[dict[str, Any]]]

HANDLERS: dict[tuple[str, str], Handler] = {}

ANONYMOUS = "anonymous"
ANONYMOUS_SERVER = "anonymous_server"
INVITED = "invited"
AUTHENTICATED = "authenticated"
TOS = "tos"


class HandshakeError(Exception):
    """Abort the request with a bare HTTP status (protocol.md §1.4)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def handles(family: str, cmd: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        key = (family, cmd)
        if key in HANDLERS:
            raise RuntimeError(f"two handlers for {key}")
        HANDLERS[key] = fn
        return fn

    return deco


def load_all() -> None:
    """Import every handler module so that their @handles decorators run."""
    import importlib
    import pkgutil

    import parsec_server.commands as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name not in {"registry", "context"} and not mod.name.startswith("_"):
            importlib.import_module(f"parsec_server.commands.{mod.name}")
