"""The RPC routes: handshake, authentication, decoding and dispatch (protocol.md §1.2–§1.7).

Order of checks (observed on the official server): Api-Version (422) → organization id syntax (404) →
Content-Type (415) → Authorization syntax (401) → body size (413) → authentication against the database
(404/460/403/461/462/463/498, or 410 for invitations) → msgpack decoding into a command of this family (415)
→ handler (200 with the outcome in `status`). Every reply but 422 and 413 carries `Api-Version: 5.5`.
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg

from parsec_server.asgi.http import (
    BodyTooLarge,
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    header,
    read_body,
    send_json,
    send_response,
)
from parsec_server.commands import registry
from parsec_server.commands.context import (
    AnonymousClient,
    AuthenticatedClient,
    Backend,
    InvitedClient,
)
from parsec_server.commands.registry import HandshakeError
from parsec_server.crypto import tokens
from parsec_server.log import get_logger
from parsec_server.protocol import codec
from parsec_server.protocol.ids import is_valid_organization_id
from parsec_server.protocol.registry import decode_req, encode_rep, validate_rep

log = get_logger("parsec_server.rpc")

API_MAJOR = 5
API_REVISION = 5
API_VERSION = f"{API_MAJOR}.{API_REVISION}".encode()
_API_HEADER = (b"api-version", API_VERSION)
_MSGPACK = b"application/msgpack"
_CT_MSGPACK = (b"content-type", _MSGPACK)

DETAILS = {
    401: "Missing authentication info",
    403: "Bad authentication info",
    404: "Organization not found",
    406: "Bad accept type",
    410: "Invitation already used or deleted",
    413: "Request Entity Too Large",
    415: "Bad content type or invalid body or unknown command",
    422: "Unprocessable Entity",
    460: "Organization expired",
    461: "User revoked",
    462: "User frozen",
    463: "User must accept tos",
    498: "Token expired",
}


class ApiVersionError(Exception):
    pass


def parse_api_version(scope: Scope) -> int:
    """Returns the client's revision; only the major version must match (5.x)."""
    raw = header(scope, b"api-version")
    if raw is None:
        raise ApiVersionError()
    major, sep, revision = raw.partition(b".")
    if not sep or not major.isdigit() or not revision.isdigit() or len(major) > 10 or len(revision) > 10:
        raise ApiVersionError()
    if int(major) != API_MAJOR or int(revision) > 0xFFFFFFFF:
        raise ApiVersionError()
    return int(revision)


async def send_handshake_error(send: Send, status: int) -> None:
    if status == 422:
        hdrs = [(b"supported-api-versions", API_VERSION)]
    elif status == 413:
        hdrs = []
    else:
        hdrs = [_API_HEADER]
    await send_json(send, status, {"detail": DETAILS[status]}, hdrs)


async def _send_rep(send: Send, body: bytes) -> None:
    await send_response(send, 200, body, (_API_HEADER, _CT_MSGPACK))


async def handle_rpc(
    backend: Backend, scope: Scope, receive: Receive, send: Send, family: str, org_id: str | None
) -> None:
    started = time.perf_counter()
    try:
        revision = parse_api_version(scope)
        if org_id is not None and not is_valid_organization_id(org_id):
            raise HandshakeError(404)
        if header(scope, b"content-type") != _MSGPACK:
            raise HandshakeError(415)
        client: Any
        if family in (registry.AUTHENTICATED, registry.TOS):
            assert org_id is not None
            auth = tokens.parse_authorization(header(scope, b"authorization"))  # 401
            body = await read_body(scope, receive)
            client = await backend.auth.authenticated_client(backend, org_id, auth, revision, family)
        elif family == registry.INVITED:
            assert org_id is not None
            token = tokens.parse_invitation_authorization(header(scope, b"authorization"))  # 401
            body = await read_body(scope, receive)
            client = await backend.auth.invited_client(backend, org_id, token, revision)
        elif family == registry.ANONYMOUS:
            assert org_id is not None
            body = await read_body(scope, receive)
            client = await backend.auth.anonymous_client(backend, org_id, revision, create_spontaneous=True)
        else:
            body = await read_body(scope, receive)
            client = AnonymousClient(backend, "", None, revision)
        try:
            req = decode_req(family, body)
        except codec.DecodeError:
            raise HandshakeError(415) from None
        cmd = req.CMD
        handler = registry.HANDLERS.get((family, cmd))
        if handler is None:
            rep: dict[str, Any] = {"status": "not_implemented", "reason": f"{cmd} is not supported by this server"}
        else:
            rep = await _call_with_retries(handler, client, req)
            if backend.config.validate_replies:
                validate_rep(family, cmd, rep)
        await _send_rep(send, encode_rep(rep))
        if log.isEnabledFor(20):
            log.info("rpc", org=org_id, family=family, cmd=cmd, status=rep["status"],
                     ms=round((time.perf_counter() - started) * 1000, 2))
    except HandshakeError as exc:
        await send_handshake_error(send, exc.status)
        log.info("rpc_refused", org=org_id, family=family, http_status=exc.status)
    except tokens.TokenError:
        await send_handshake_error(send, 401)
        log.info("rpc_refused", org=org_id, family=family, http_status=401)
    except ApiVersionError:
        await send_handshake_error(send, 422)
    except BodyTooLarge:
        await send_handshake_error(send, 413)
    except ClientDisconnected:
        return


_RETRYABLE = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)


async def _call_with_retries(handler: registry.Handler, client: Any, req: Any) -> dict[str, Any]:
    """Conflicts between concurrent transactions are retried as a whole (the handler is idempotent until commit)."""
    for attempt in range(5):
        try:
            return await handler(client, req)
        except _RETRYABLE:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


async def handle_anonymous_probe(backend: Backend, scope: Scope, send: Send, org_id: str) -> None:
    """`GET /anonymous/<org>`: the same handshake as POST, then 200 with an empty msgpack body."""
    try:
        revision = parse_api_version(scope)
        if not is_valid_organization_id(org_id):
            raise HandshakeError(404)
        if header(scope, b"content-type") != _MSGPACK:
            raise HandshakeError(415)
        await backend.auth.anonymous_client(backend, org_id, revision, create_spontaneous=False)
        await send_response(send, 200, b"", (_API_HEADER, _CT_MSGPACK))
    except HandshakeError as exc:
        await send_handshake_error(send, exc.status)
    except ApiVersionError:
        await send_handshake_error(send, 422)


__all__ = ["AuthenticatedClient", "InvitedClient", "handle_anonymous_probe", "handle_rpc"]
