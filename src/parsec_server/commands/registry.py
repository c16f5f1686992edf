"""Command handlers, found by (family, wire command name).

A handler is registered with the generated request class of its command and typed by it:

    @command(VlobCreateReq)
    async def vlob_create(client: AuthenticatedClient, req: VlobCreateReq) -> VlobCreateRep: ...

`VlobCreateReq` is a `ReqOf[VlobCreateRep]` (tools/gen_protocol.py), so mypy rejects a handler whose
declared or returned reply is not one of that command's reply variants (a wrong status, a missing or
extra field). Replies are plain dicts with a `status` key (the protocol outcome, always HTTP 200).
Every handler is registered this way. Handshake-level failures discovered while handling (author
revoked mid-command, organization expired...) are raised as `HandshakeError` and rendered as bare HTTP statuses by the asgi layer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from parsec_server.protocol._runtime import Req, ReqOf

# What dispatch stores: the client and request types are erased there (each handler's own
# signature, checked by `command`, is the contract).
Handler = Callable[[Any, Any], Awaitable[Mapping[str, Any]]]
_C = TypeVar("_C")
_R = TypeVar("_R", bound=Req)
_P = TypeVar("_P", bound=Mapping[str, Any])

HANDLERS: dict[tuple[str, str], Handler] = {}

ANONYMOUS = "anonymous"
ANONYMOUS_SERVER = "anonymous_server"
AUTHENTICATED_ACCOUNT = "authenticated_account"
INVITED = "invited"
AUTHENTICATED = "authenticated"
TOS = "tos"


class HandshakeError(Exception):
    """Abort the request with a bare HTTP status (protocol.md §1.4)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _register(family: str, cmd: str, fn: Handler) -> None:
    key = (family, cmd)
    if key in HANDLERS:
        raise RuntimeError(f"two handlers for {key}")
    HANDLERS[key] = fn


def command(
    req_cls: type[ReqOf[_P]],
) -> Callable[[Callable[[_C, _R], Awaitable[_P]]], Callable[[_C, _R], Awaitable[_P]]]:
    """Register the handler of `req_cls`'s command; its reply type must be the command's."""

    def deco(fn: Callable[[_C, _R], Awaitable[_P]]) -> Callable[[_C, _R], Awaitable[_P]]:
        _register(req_cls.FAMILY, req_cls.CMD, fn)
        return fn

    return deco


def load_all() -> None:
    """Import every handler module so that their @command decorators run."""
    import importlib
    import pkgutil

    import parsec_server.commands as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name not in {"registry", "context"} and not mod.name.startswith("_"):
            importlib.import_module(f"parsec_server.commands.{mod.name}")
