"""The RPC routes: handshake, authentication, decoding and dispatch (protocol.md §1.2-§1.7).

Order of checks (observed on the official server): Api-Version (422) → organization id syntax (404) →
Content-Type (415) → Authorization syntax (401) → body size (413) → authentication against the database
(404/460/403/461/462/463/498, or 410 for invitations) → msgpack decoding into a command of this family (415)
→ handler (200 with the outcome in `status`). Every reply but 422 and 413 carries `Api-Version: 5.6`
(any 5.x client is served: 5.6 only adds a command, docs/compatibility.md).

When the database cannot serve (unreachable, restarting, read-only, disk full: storage.db.UNAVAILABLE_ERRORS)
a request gets 503 with `Retry-After` (official clients retry a 503 later), never a 500. The outage is logged
once when it starts (`database_outage_started`) and once when it ends (`database_outage_ended`, with the
number of requests refused and its duration), see docs/faults.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from logging import INFO
from time import monotonic, perf_counter
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
from parsec_server.commands.registry import (
    ANONYMOUS,
    AUTHENTICATED,
    AUTHENTICATED_ACCOUNT,
    HANDLERS,
    INVITED,
    TOS,
    HandshakeError,
)
from parsec_server.crypto import tokens
from parsec_server.log import get_logger
from parsec_server.protocol import codec
from parsec_server.protocol.ids import is_valid_organization_id
from parsec_server.protocol.registry import decode_req, encode_rep, validate_rep
from parsec_server.storage.db import (
    OUT_OF_RESOURCES,
    READ_ONLY,
    UNAVAILABLE_ERRORS,
    UNREACHABLE,
    unavailable_kind,
)

log = get_logger("parsec_server.rpc")

API_MAJOR = 5
# API 5.6 (parsec-cloud 3.10) adds cryptpad_register_session; 5.0-5.5 clients are served as before.
API_REVISION = 6
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


OUTAGE_ERRORS = UNAVAILABLE_ERRORS
RETRY_AFTER = 2  # seconds, the `Retry-After` of a 503 answered during a database outage
# A write refused because the database is read-only or out of resources keeps /health degraded (and the
# outage open) for this many seconds after the last refusal (reads may succeed meanwhile).
WRITE_FAILURE_WINDOW = 30.0


class OutageLog:
    """This process's view of database outages: one log line when one starts, one when it ends."""

    def __init__(self) -> None:
        self.cause: str | None = None  # None: no outage
        self.started = 0.0
        self.refused = 0
        self.write_failed_at: float | None = None
        self.write_failure: str | None = None

    def refused_one(self, exc: BaseException) -> None:
        cause = unavailable_kind(exc)
        now = monotonic()
        if cause in (READ_ONLY, OUT_OF_RESOURCES):
            self.write_failed_at, self.write_failure = now, cause
        if self.cause is None:
            self.cause, self.started, self.refused = cause, now, 0
            first_line = (str(exc).strip() or type(exc).__name__).splitlines()[0][:200]
            log.error("database_outage_started", cause=cause, error=first_line)
        self.refused += 1

    def writes_failing(self) -> str | None:
        """READ_ONLY or OUT_OF_RESOURCES when a write was refused so in the last WRITE_FAILURE_WINDOW."""
        at = self.write_failed_at
        if at is None or monotonic() - at > WRITE_FAILURE_WINDOW:
            return None
        return self.write_failure

    def writable_again(self) -> None:
        """The database was seen accepting writes (not read-only): a READ_ONLY refusal is over."""
        if self.write_failure == READ_ONLY:
            self.write_failed_at = self.write_failure = None

    def served(self) -> None:
        """A request was served: ends an outage of an unreachable database (or of failing writes once
        none failed for WRITE_FAILURE_WINDOW)."""
        if self.cause is None:
            return
        if self.cause != UNREACHABLE and self.writes_failing() is not None:
            return
        log.warning(
            "database_outage_ended",
            cause=self.cause,
            refused=self.refused,
            duration_seconds=round(monotonic() - self.started, 3),
        )
        self.cause = None


OUTAGE = OutageLog()


async def send_unavailable(backend: Backend, send: Send, exc: BaseException | None) -> None:
    """503 + Retry-After for a request the database (`exc`) or the event listener (None) cannot serve."""
    if exc is not None:
        OUTAGE.refused_one(exc)
    await send_json(
        send,
        503,
        {"detail": "Service temporarily unavailable, retry later"},
        [_API_HEADER, (b"retry-after", str(RETRY_AFTER).encode())],
    )


def parse_api_version(scope: Scope) -> int:
    """Returns the client's revision; only the major version must match (5.x)."""
    return api_revision(header(scope, b"api-version"))


_REVISIONS: dict[bytes, int] = {}


def api_revision(raw: bytes | None) -> int:
    """The revision of an `Api-Version` header value (ApiVersionError unless 5.x)."""
    if raw is None:
        raise ApiVersionError()
    revision = _REVISIONS.get(raw)
    if revision is not None:
        return revision
    major, sep, rev = raw.partition(b".")
    if not sep or not major.isdigit() or not rev.isdigit() or len(major) > 10 or len(rev) > 10:
        raise ApiVersionError()
    if int(major) != API_MAJOR or int(rev) > 0xFFFFFFFF:
        raise ApiVersionError()
    if len(_REVISIONS) < 64:
        _REVISIONS[bytes(raw)] = int(rev)
    return int(rev)


async def send_handshake_error(send: Send, status: int) -> None:
    if status == 422:
        hdrs = [(b"supported-api-versions", API_VERSION)]
    elif status == 413:
        hdrs = []
    else:
        hdrs = [_API_HEADER]
    await send_json(send, status, {"detail": DETAILS[status]}, hdrs)


async def handle_rpc(
    backend: Backend, scope: Scope, receive: Receive, send: Send, family: str, org_id: str | None
) -> None:
    started = perf_counter()
    # the first value of each header (dict() keeps the last one it sees)
    headers = dict(reversed(scope["headers"]))
    try:
        revision = api_revision(headers.get(b"api-version"))
        if org_id is not None and not is_valid_organization_id(org_id):
            raise HandshakeError(404)
        if headers.get(b"content-type") != _MSGPACK:
            raise HandshakeError(415)
        client: Any
        if family == AUTHENTICATED or family == TOS:
            assert org_id is not None
            auth = tokens.parse_authorization(headers.get(b"authorization"))  # 401
            body = await read_body(scope, receive, length=headers.get(b"content-length"))
            client = await backend.auth.authenticated_client(
                backend, org_id, auth, revision, family
            )
        elif family == INVITED:
            assert org_id is not None
            token = tokens.parse_invitation_authorization(headers.get(b"authorization"))  # 401
            body = await read_body(scope, receive, length=headers.get(b"content-length"))
            client = await backend.auth.invited_client(backend, org_id, token, revision)
        elif family == ANONYMOUS:
            assert org_id is not None
            body = await read_body(scope, receive, length=headers.get(b"content-length"))
            client = await backend.auth.anonymous_client(
                backend, org_id, revision, create_spontaneous=True
            )
        elif family == AUTHENTICATED_ACCOUNT:
            account_auth = tokens.parse_account_authorization(headers.get(b"authorization"))
            body = await read_body(scope, receive, length=headers.get(b"content-length"))
            client = await backend.auth.account_client(
                backend, account_auth, revision, _peer(scope), _user_agent(headers)
            )
        else:
            body = await read_body(scope, receive, length=headers.get(b"content-length"))
            client = AnonymousClient(
                backend, "", None, revision, _peer(scope), _user_agent(headers)
            )
        try:
            req = decode_req(family, body)
        except codec.DecodeError:
            raise HandshakeError(415) from None
        cmd = req.CMD
        scope["parsec.cmd"] = cmd  # for the metrics and the access log (asgi/metrics.py)
        handler = HANDLERS.get((family, cmd))
        if handler is None:
            rep: Mapping[str, Any] = {
                "status": "not_implemented",
                "reason": f"{cmd} is not supported by this server",
            }
        else:
            try:
                rep = await handler(client, req)
            except _RETRYABLE:
                rep = await _call_with_retries(handler, client, req, attempts=4)
            if backend.config.validate_replies:
                validate_rep(family, cmd, rep)
            if cmd in _CHANGES_AUTHENTICATION and rep["status"] == "ok":
                # The change reaches this process's handshake cache with its event, a moment after
                # the commit: the reply waits for it, so that the very next request of the user
                # concerned (revoked, profile changed) gets the new outcome here.
                await backend.events.barrier()
        payload = encode_rep(rep)
        length = (b"content-length", str(len(payload)).encode())
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [length, _API_HEADER, _CT_MSGPACK],
            }
        )
        await send({"type": "http.response.body", "body": payload})
        scope["parsec.status"] = rep["status"]
        if OUTAGE.cause is not None:
            OUTAGE.served()
        if log.isEnabledFor(INFO):
            log.rpc(org_id, family, cmd, rep["status"], started)
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
    except OUTAGE_ERRORS as exc:
        await send_unavailable(backend, send, exc)


def _peer(scope: Scope) -> str:
    """The client's IP address ('' unknown), after asgi/proxy.py applied trusted X-Forwarded-For."""
    client = scope.get("client")
    return str(client[0]) if client else ""


def _user_agent(headers: Mapping[bytes, bytes]) -> str:
    raw = headers.get(b"user-agent")
    return "unknown" if raw is None else raw.decode("latin-1")[:1000]


# Commands whose success changes a user's handshake outcome (their events drop the user from the
# AuthCache; tos_accept drops it itself).
_CHANGES_AUTHENTICATION = frozenset({"user_revoke", "user_update"})
_RETRYABLE = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)


async def _call_with_retries(
    handler: registry.Handler, client: Any, req: Any, attempts: int = 5
) -> Mapping[str, Any]:
    """Conflicts between concurrent transactions are retried as a whole (the handler is idempotent until commit)."""
    for attempt in range(attempts):
        try:
            return await handler(client, req)
        except _RETRYABLE:
            if attempt == attempts - 1:
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
    except OUTAGE_ERRORS as exc:
        await send_unavailable(backend, send, exc)


__all__ = [
    "OUTAGE",
    "OUTAGE_ERRORS",
    "AuthenticatedClient",
    "InvitedClient",
    "handle_anonymous_probe",
    "handle_rpc",
    "send_unavailable",
]
