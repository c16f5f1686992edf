"""The administration REST API (JSON, `Authorization: Bearer <--administration-token>`),
protocol.md §1.10.

Status codes and bodies follow the official server (observed-reference.md §3.4): 403 for a missing
or bad token, 404 for an unknown organization, 422 for a malformed body, 400 for business errors.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hmac
import io
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from parsec_server.asgi.audit import admin_action
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
from parsec_server.asgi.openapi import send_openapi
from parsec_server.commands import organization as org_cmds
from parsec_server.commands import sequester as seq_cmds
from parsec_server.commands import totp as totp_cmds
from parsec_server.commands.context import Backend
from parsec_server.crypto import certificates as certs
from parsec_server.protocol import addr
from parsec_server.protocol.ids import is_valid_email, is_valid_organization_id


class AdminError(Exception):
    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(status)
        self.status = status
        self.detail = detail


def _unprocessable(loc: list[Any], msg: str, input_: Any = None) -> AdminError:
    return AdminError(422, [{"type": "value_error", "loc": loc, "msg": msg, "input": input_}])


def _check_token(backend: Backend, scope: Scope) -> None:
    raw = header(scope, b"authorization")
    if raw is None:
        raise AdminError(403, "Not authenticated")
    scheme, _, token = raw.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AdminError(403, "Not authenticated")
    if not hmac.compare_digest(
        token.strip().encode(), backend.config.administration_token.encode()
    ):
        raise AdminError(403, "Bad authorization token")


def _audit(scope: Scope, action: str, outcome: str = "ok", **what: object) -> None:
    """The audit line of an administration action (asgi/audit.py): who (the token holder, from
    which address) did what; never the token nor a bootstrap URL."""
    client = scope.get("client")
    admin_action(
        action,
        actor="administration_token",
        peer=f"{client[0]}:{client[1]}" if client else None,
        outcome=outcome,
        **what,
    )


async def _json_body(scope: Scope, receive: Receive) -> dict[str, Any]:
    body = await read_body(scope, receive)
    try:
        doc = json.loads(body or b"null")
    except (ValueError, RecursionError):
        raise _unprocessable(["body"], "JSON decode error") from None
    if not isinstance(doc, dict):
        raise _unprocessable(["body"], "Input should be a valid dictionary", doc)
    return doc


def _opt_bool(doc: dict[str, Any], key: str) -> Any:
    v = doc[key]
    if not isinstance(v, bool):
        raise _unprocessable(["body", key], "Input should be a valid boolean", v)
    return v


_INT32_MAX = 2**31 - 1  # active_users_limit column
_INT64_MAX = 2**63 - 1  # realm_minimum_archiving_period_before_deletion column (seconds)


def _opt_limit(doc: dict[str, Any], key: str) -> Any:
    v = doc[key]
    if v is not None and (
        isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= _INT32_MAX
    ):
        raise _unprocessable(
            ["body", key], f"Input should be an integer from 0 to {_INT32_MAX}, or null", v
        )
    return v


def _opt_period(doc: dict[str, Any], key: str) -> Any:
    v = doc[key]
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= _INT64_MAX:
        raise _unprocessable(["body", key], f"Input should be an integer from 0 to {_INT64_MAX}", v)
    return v


def storable_text(value: object) -> bool:
    """A string PostgreSQL can store as TEXT (no NUL, no lone surrogate)."""
    if not isinstance(value, str) or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _opt_tos(doc: dict[str, Any], key: str) -> Any:
    v = doc[key]
    if v is None:
        return None
    if not isinstance(v, dict) or not all(
        storable_text(k) and storable_text(u) for k, u in v.items()
    ):
        raise _unprocessable(["body", key], "Input should be a mapping of locale to URL", v)
    return v


_SETTINGS = {
    "user_profile_outsider_allowed": _opt_bool,
    "active_users_limit": _opt_limit,
    "realm_minimum_archiving_period_before_deletion": _opt_period,
    "tos": _opt_tos,
}


def _settings(doc: dict[str, Any], allow_expired: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, check in _SETTINGS.items():
        if key in doc:
            out[key] = check(doc, key)
    if allow_expired and "is_expired" in doc:
        out["is_expired"] = _opt_bool(doc, "is_expired")
    return out


def rfc3339(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    dt = dt.astimezone(UTC)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        text += f".{dt.microsecond:06d}"
    return text + "Z"


def _request_server_addr(scope: Scope) -> addr.ServerAddr:
    """Where the admin request was sent (Host header, else the listening socket), used to build the
    bootstrap URL like the official server does (observed-reference.md §3.4)."""
    use_ssl = scope.get("scheme", "http") == "https"
    host = header(scope, b"host")
    if host:
        try:
            parts = urlsplit("//" + host.decode("latin-1"))
            if parts.hostname:
                return addr.ServerAddr(parts.hostname, parts.port, use_ssl=use_ssl)
        except ValueError:  # malformed Host header (bad port, unbalanced IPv6 bracket...)
            pass
    server = scope.get("server") or ("127.0.0.1", 6777)
    return addr.ServerAddr(str(server[0]), int(server[1]), use_ssl=use_ssl)


async def _create_org(backend: Backend, scope: Scope, receive: Receive, send: Send) -> None:
    doc = await _json_body(scope, receive)
    org_id = doc.get("organization_id")
    if not isinstance(org_id, str):
        raise _unprocessable(
            ["body", "organization_id"],
            "Field required" if org_id is None else "Input should be a valid string",
            org_id,
        )
    if not is_valid_organization_id(org_id):
        raise _unprocessable(["body", "organization_id"], "Invalid OrganizationID", org_id)
    settings = _settings(doc, allow_expired=False)
    token = await org_cmds.create_organization(backend, org_id, settings)
    if token is None:
        _audit(scope, "organization_create", "already_exists", organization=org_id)
        raise AdminError(400, "Organization already exists")
    _audit(scope, "organization_create", organization=org_id, settings=settings)
    server = _request_server_addr(scope)
    await send_json(
        send,
        200,
        {
            "bootstrap_url": addr.bootstrap_organization_url(server, org_id, token),
            "bootstrap_url_as_http_redirection": addr.bootstrap_organization_url(
                server, org_id, token, http_redirection=True
            ),
        },
    )


async def _get_org(backend: Backend, send: Send, org_id: str) -> None:
    org = await org_cmds.get_organization(backend, org_id)
    if org is None:
        raise AdminError(404, "Organization not found")
    await send_json(
        send,
        200,
        {
            "is_bootstrapped": org["is_bootstrapped"],
            "is_expired": org["is_expired"],
            "user_profile_outsider_allowed": org["user_profile_outsider_allowed"],
            "active_users_limit": org["active_users_limit"],
            "realm_minimum_archiving_period_before_deletion": org["minimum_archiving_period"],
            "tos": None
            if org["tos_updated_on"] is None
            else {
                "per_locale_urls": org["tos_per_locale_urls"],
                "updated_on": rfc3339(org["tos_updated_on"]),
            },
        },
    )


async def _patch_org(
    backend: Backend, scope: Scope, receive: Receive, send: Send, org_id: str
) -> None:
    doc = await _json_body(scope, receive)
    settings = _settings(doc, allow_expired=True)
    if not await org_cmds.update_organization(backend, org_id, settings):
        _audit(scope, "organization_update", "not_found", organization=org_id)
        raise AdminError(404, "Organization not found")
    _audit(scope, "organization_update", organization=org_id, settings=settings)
    await send_json(send, 200, {})


async def _freeze(
    backend: Backend, scope: Scope, receive: Receive, send: Send, org_id: str
) -> None:
    doc = await _json_body(scope, receive)
    frozen = doc.get("frozen")
    if not isinstance(frozen, bool):
        raise _unprocessable(["body", "frozen"], "Input should be a valid boolean", frozen)
    user_id, email = doc.get("user_id"), doc.get("user_email")
    if user_id is None and email is None:
        raise AdminError(400, "Missing either `user_id` or `user_email` field")
    if user_id is not None and email is not None:
        raise AdminError(400, "Both `user_id` and `user_email` fields are provided")
    if user_id is not None:
        try:
            import uuid

            user_id = uuid.UUID(str(user_id))
        except ValueError:
            raise _unprocessable(
                ["body", "user_id"], "Invalid UserID", doc.get("user_id")
            ) from None
    elif not storable_text(email):
        raise _unprocessable(["body", "user_email"], "Input should be a valid string", email)
    outcome = await org_cmds.freeze_user(backend, org_id, frozen, user_id=user_id, email=email)
    action = "user_freeze" if frozen else "user_unfreeze"
    if isinstance(outcome, str):
        _audit(scope, action, "not_found", organization=org_id)
        raise AdminError(404, outcome)
    _audit(scope, action, organization=org_id, user_id=str(outcome.get("user_id")))
    await send_json(send, 200, outcome)


_CSV_FIELDS = [
    "organization_id",
    "data_size",
    "metadata_size",
    "realms",
    "active_users",
    "admin_users_active",
    "admin_users_revoked",
    "standard_users_active",
    "standard_users_revoked",
    "outsider_users_active",
    "outsider_users_revoked",
]


async def _server_stats(backend: Backend, scope: Scope, send: Send) -> None:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    fmt = (query.get("format") or ["json"])[0]
    if fmt not in ("json", "csv"):
        raise _unprocessable(["query", "format"], "Input should be 'csv' or 'json'", fmt)
    at_raw = (query.get("at") or [None])[0]
    at = None
    if at_raw is not None:
        try:
            at = datetime.fromisoformat(at_raw.replace("Z", "+00:00").replace(" ", "+"))
            if at.tzinfo is None:
                at = at.replace(tzinfo=UTC)
        except ValueError:
            raise AdminError(
                400, "Invalid `at` query argument (expected RFC3339 datetime)"
            ) from None
    stats = await org_cmds.server_stats(backend, at)
    if fmt == "json":
        return await send_json(send, 200, {"stats": stats})
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(_CSV_FIELDS)
    for s in stats:
        d = s["users_per_profile_detail"]
        writer.writerow(
            [
                s["organization_id"],
                s["data_size"],
                s["metadata_size"],
                s["realms"],
                s["active_users"],
                d["ADMIN"]["active"],
                d["ADMIN"]["revoked"],
                d["STANDARD"]["active"],
                d["STANDARD"]["revoked"],
                d["OUTSIDER"]["active"],
                d["OUTSIDER"]["revoked"],
            ]
        )
    await send_response(
        send, 200, buf.getvalue().encode(), [(b"content-type", b"text/csv; charset=utf-8")]
    )


# --- sequester services (docs/sequester.md) -------------------------------------------------------
# Bodies, statuses and details as on the official server: 404 for an unknown (or not bootstrapped)
# organization or service, 400 for a business refusal, 422 for a malformed body.

_SEQUESTER_REFUSALS: dict[str, tuple[int, str]] = {
    "organization_not_found": (404, "Organization not found"),
    "sequester_disabled": (400, "Sequester disabled"),
    "invalid_certificate": (400, "Invalid certificate"),
    "already_exists": (400, "Sequester service already exists"),
    "already_revoked": (400, "Sequester service already revoked"),
    "service_not_found": (404, "Sequester service not found"),
}


def _b64_field(doc: dict[str, Any], key: str) -> bytes:
    v = doc.get(key)
    if not isinstance(v, str):
        raise _unprocessable(
            ["body", key], "Field required" if v is None else "Input should be a valid string", v
        )
    try:
        return base64.b64decode(v, validate=True)
    except (ValueError, binascii.Error):
        raise _unprocessable(["body", key], "Value error, Invalid base64", v) from None


def _service_config(doc: dict[str, Any]) -> seq_cmds.ServiceConfig:
    v = doc.get("config")
    if not isinstance(v, dict):
        raise _unprocessable(["body", "config"], "Input should be a valid dictionary", v)
    kind = v.get("type")
    if kind == "storage":
        return seq_cmds.ServiceConfig("STORAGE", None)
    if kind == "webhook":
        url = v.get("webhook_url")
        if not storable_text(url):
            raise _unprocessable(
                ["body", "config", "webhook", "webhook_url"], "Input should be a valid string", url
            )
        assert isinstance(url, str)
        return seq_cmds.ServiceConfig("WEBHOOK", url)
    raise _unprocessable(
        ["body", "config"],
        "Input tag does not match any of the expected tags: 'storage', 'webhook'",
        kind,
    )


def _sequester_refusal(
    scope: Scope, action: str, org_id: str, refusal: str | seq_cmds.RequireGreaterTimestamp
) -> AdminError:
    if isinstance(refusal, seq_cmds.RequireGreaterTimestamp):
        _audit(scope, action, "require_greater_timestamp", organization=org_id)
        return AdminError(
            400,
            {
                "msg": "Require greater timestamp",
                "strictly_greater_than": rfc3339(refusal.strictly_greater_than),
            },
        )
    _audit(scope, action, refusal, organization=org_id)
    status, detail = _SEQUESTER_REFUSALS[refusal]
    return AdminError(status, detail)


async def _route_sequester_list(b: Backend, _sc: Scope, _r: Receive, s: Send, org_id: str) -> None:
    services = await seq_cmds.list_services(b, org_id)
    if isinstance(services, str):
        status, detail = _SEQUESTER_REFUSALS[services]
        raise AdminError(status, detail)
    out = []
    for service in services:
        item: dict[str, Any] = {
            "service_id": service.service_id.hex,
            "service_label": service.label,
            "created_on": rfc3339(service.created_on),
            "revoked_on": rfc3339(service.revoked_on),
            "type": service.service_type.lower(),
        }
        if service.service_type == "WEBHOOK":
            item["webhook_url"] = service.webhook_url
        out.append(item)
    await send_json(s, 200, {"services": out})


async def _route_sequester_create(b: Backend, sc: Scope, r: Receive, s: Send, org_id: str) -> None:
    doc = await _json_body(sc, r)
    certificate = _b64_field(doc, "service_certificate")
    config = _service_config(doc)
    outcome = await seq_cmds.create_service(b, org_id, certificate, config)
    if not isinstance(outcome, certs.SequesterServiceCertificate):
        raise _sequester_refusal(sc, "sequester_service_create", org_id, outcome)
    _audit(
        sc,
        "sequester_service_create",
        organization=org_id,
        service_id=outcome.service_id.hex,
        service_type=config.service_type.lower(),
        webhook_url=config.webhook_url,
    )
    await send_json(s, 200, {})


async def _route_sequester_revoke(b: Backend, sc: Scope, r: Receive, s: Send, org_id: str) -> None:
    doc = await _json_body(sc, r)
    certificate = _b64_field(doc, "revoked_service_certificate")
    outcome = await seq_cmds.revoke_service(b, org_id, certificate)
    if not isinstance(outcome, certs.SequesterRevokedServiceCertificate):
        raise _sequester_refusal(sc, "sequester_service_revoke", org_id, outcome)
    _audit(sc, "sequester_service_revoke", organization=org_id, service_id=outcome.service_id.hex)
    await send_json(s, 200, {})


async def _route_sequester_config(b: Backend, sc: Scope, r: Receive, s: Send, org_id: str) -> None:
    doc = await _json_body(sc, r)
    raw_id = doc.get("service_id")
    try:
        service_id = uuid.UUID(hex=raw_id) if isinstance(raw_id, str) else None
    except ValueError:
        service_id = None
    if service_id is None:
        raise _unprocessable(["body", "service_id"], "Invalid SequesterServiceID", raw_id)
    config = _service_config(doc)
    outcome = await seq_cmds.update_config(b, org_id, service_id, config)
    if outcome != "ok":
        raise _sequester_refusal(sc, "sequester_service_update_config", org_id, outcome)
    _audit(
        sc,
        "sequester_service_update_config",
        organization=org_id,
        service_id=service_id.hex,
        service_type=config.service_type.lower(),
        webhook_url=config.webhook_url,
    )
    await send_json(s, 200, {})


async def _reset_totp(
    backend: Backend, scope: Scope, receive: Receive, send: Send, org_id: str
) -> None:
    """Reset a user's TOTP (docs/totp.md): the official body, statuses and reply."""
    doc = await _json_body(scope, receive)
    user_id, email = doc.get("user_id"), doc.get("user_email")
    send_email = _opt_bool(doc, "send_email") if "send_email" in doc else False
    if user_id is not None:
        import uuid

        try:
            user_id = uuid.UUID(hex=user_id) if isinstance(user_id, str) else None
        except ValueError:
            user_id = None
        if user_id is None:
            raise _unprocessable(["body", "user_id"], "Invalid UserID", doc.get("user_id"))
    if email is not None and not (storable_text(email) and is_valid_email(email)):
        raise _unprocessable(["body", "user_email"], "Invalid email address", email)
    if user_id is None and email is None:
        raise AdminError(400, "Missing either `user_id` or `user_email` field")
    if user_id is not None and email is not None:
        raise AdminError(400, "Both `user_id` and `user_email` fields are provided")
    outcome = await totp_cmds.reset(
        backend, org_id, user_id=user_id, user_email=email, send_email=send_email
    )
    if isinstance(outcome, str):
        _audit(scope, "user_reset_totp", outcome, organization=org_id)
        detail = {
            "organization_not_found": "Organization not found",
            "user_not_found": "User not found",
            "user_revoked": "User has been revoked",
        }[outcome]
        raise AdminError(404, detail)
    _audit(
        scope,
        "user_reset_totp",
        organization=org_id,
        user_id=outcome.user_id.hex,
        email_sent_status=outcome.email_sent_status,
    )
    await send_json(
        send,
        200,
        {
            "user_id": outcome.user_id.hex,
            "user_email": outcome.user_email,
            "totp_reset_url": outcome.totp_reset_url,
            "totp_reset_url_as_http_redirection": outcome.totp_reset_url_as_http_redirection,
            "email_sent_status": outcome.email_sent_status,
        },
    )


# The routes of the administration API, under /administration: (method, path template) -> handler.
# `{organization_id}` stands for one path segment. The OpenAPI document served at
# GET /administration/openapi.json (asgi/openapi.json, docs/administration-api.md) describes exactly
# these (tests/integration/transport/test_openapi.py).
_Handler = Callable[[Backend, Scope, Receive, Send, str], Awaitable[None]]
ORG = "{organization_id}"


async def _route_create_org(b: Backend, sc: Scope, r: Receive, s: Send, _o: str) -> None:
    await _create_org(b, sc, r, s)


async def _route_server_stats(b: Backend, sc: Scope, _r: Receive, s: Send, _o: str) -> None:
    await _server_stats(b, sc, s)


async def _route_get_org(b: Backend, _sc: Scope, _r: Receive, s: Send, org_id: str) -> None:
    await _get_org(b, s, org_id)


async def _route_org_stats(b: Backend, _sc: Scope, _r: Receive, s: Send, org_id: str) -> None:
    stats = await org_cmds.organization_stats(b, org_id)
    if stats is None:
        raise AdminError(404, "Organization not found")
    await send_json(s, 200, stats)


async def _route_org_users(b: Backend, _sc: Scope, _r: Receive, s: Send, org_id: str) -> None:
    users = await org_cmds.list_users(b, org_id)
    if users is None:
        raise AdminError(404, "Organization not found")
    await send_json(s, 200, {"users": users})


ROUTES: dict[tuple[str, str], _Handler] = {
    ("POST", "/organizations"): _route_create_org,
    ("GET", "/stats"): _route_server_stats,
    ("GET", f"/organizations/{ORG}"): _route_get_org,
    ("PATCH", f"/organizations/{ORG}"): _patch_org,
    ("GET", f"/organizations/{ORG}/stats"): _route_org_stats,
    ("GET", f"/organizations/{ORG}/users"): _route_org_users,
    ("POST", f"/organizations/{ORG}/users/freeze"): _freeze,
    ("POST", f"/organizations/{ORG}/users/reset_totp"): _reset_totp,
    ("GET", f"/organizations/{ORG}/sequester/services"): _route_sequester_list,
    ("POST", f"/organizations/{ORG}/sequester/services"): _route_sequester_create,
    ("POST", f"/organizations/{ORG}/sequester/services/revoke"): _route_sequester_revoke,
    ("PUT", f"/organizations/{ORG}/sequester/services/config"): _route_sequester_config,
}
_TEMPLATES = frozenset(t for _m, t in ROUTES)


def _template(parts: list[str]) -> tuple[str, str]:
    """The route template of a path (its segments after /administration) and the organization
    id it names ("" for none). An organization id that cannot be valid is 404 at once."""
    if len(parts) >= 2 and parts[0] == "organizations":
        if not is_valid_organization_id(parts[1]):
            raise AdminError(404, "Organization not found")
        return "/" + "/".join(["organizations", ORG, *parts[2:]]), parts[1]
    return "/" + "/".join(parts), ""


async def handle_admin(
    backend: Backend, scope: Scope, receive: Receive, send: Send, parts: list[str]
) -> None:
    method = scope["method"]
    try:
        if parts == ["openapi.json"] and method in ("GET", "HEAD"):
            return await send_openapi(send)  # public, like the official server's /docs
        _check_token(backend, scope)
        template, org_id = _template(parts)
        handler = ROUTES.get((method, template))
        if handler is None:
            if template in _TEMPLATES:
                raise AdminError(405, "Method Not Allowed")
            raise AdminError(404, "Not Found")
        return await handler(backend, scope, receive, send, org_id)
    except AdminError as exc:
        await send_json(send, exc.status, {"detail": exc.detail})
    except BodyTooLarge:
        await send_json(send, 413, {"detail": "Request Entity Too Large"})
    except ClientDisconnected:
        return
