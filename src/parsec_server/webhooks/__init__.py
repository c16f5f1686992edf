"""Outgoing webhooks (docs/sequester.md, docs/configuration.md): the sequester services of webhook
type, asked before a vlob write, and `--organization-bootstrap-webhook`, told after a bootstrap.

Every call is bounded by one whole-call timeout (`--webhook-timeout`: connect, send, wait for the
answer) and never raises: the caller gets what the protocol needs (accepted, rejected with a
reason, unavailable) and failures are logged once. The caller holds no database connection while a
call runs.

Sequester webhook (the official server's contract): `POST <url>?type=vlob_create_or_update&
service_id=<hex>&organization_id=...&author=<device hex>&realm_id=<hex>&vlob_id=<hex>&key_index=N&
version=N&timestamp=<RFC 3339>` with the blob as body. 2xx accepts; 400 rejects, with an optional
JSON `{"reason": "..."}` body; anything else, no answer in time, or no connection: unavailable.
"""

from __future__ import annotations

import datetime
import json
import uuid
from typing import NamedTuple

import aiohttp

from parsec_server.log import get_logger

__all__ = [
    "BootstrapPayload",
    "Rejected",
    "Unavailable",
    "VlobChange",
    "organization_bootstrap",
    "sequester_vlob",
]

log = get_logger("parsec_server.webhooks")


class Rejected(NamedTuple):
    """The service answered 400: `rejected_by_sequester_service`."""

    service_id: uuid.UUID
    reason: str | None


class Unavailable(NamedTuple):
    """No valid answer in time: `sequester_service_unavailable`."""

    service_id: uuid.UUID


class VlobChange(NamedTuple):
    """What a sequester webhook is told about a vlob write."""

    organization_id: str
    author: uuid.UUID
    realm_id: uuid.UUID
    vlob_id: uuid.UUID
    key_index: int
    version: int
    timestamp: datetime.datetime
    blob: bytes


def rfc3339(dt: datetime.datetime) -> str:
    """Like the official DateTime.to_rfc3339: `Z`, microseconds only when not zero."""
    dt = dt.astimezone(datetime.UTC)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        text += f".{dt.microsecond:06d}"
    return text + "Z"


def _reason(body: bytes) -> str | None:
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("reason"), str):
        reason: str = doc["reason"]
        return reason
    if not (isinstance(doc, dict) and doc.get("reason") is None):
        log.warning("sequester_webhook_bad_reason", body=body[:200].decode("utf-8", "replace"))
    return None


async def sequester_vlob(
    services: list[tuple[uuid.UUID, str]], change: VlobChange, time_limit: float
) -> Rejected | Unavailable | None:
    """Ask each webhook service (id, url) in turn; the first refusal, or None when all accept."""
    params = {
        "type": "vlob_create_or_update",
        "organization_id": change.organization_id,
        "author": change.author.hex,
        "realm_id": change.realm_id.hex,
        "vlob_id": change.vlob_id.hex,
        "key_index": str(change.key_index),
        "version": str(change.version),
        "timestamp": rfc3339(change.timestamp),
    }
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=time_limit)) as session:
        for service_id, url in services:
            outcome = await _call_service(session, service_id, url, params, change)
            if outcome is not None:
                return outcome
    return None


async def _call_service(
    session: aiohttp.ClientSession,
    service_id: uuid.UUID,
    url: str,
    params: dict[str, str],
    change: VlobChange,
) -> Rejected | Unavailable | None:
    where = {"organization_id": change.organization_id, "service_id": service_id.hex}
    try:
        async with session.post(
            url, params={**params, "service_id": service_id.hex}, data=change.blob
        ) as rep:
            if rep.status == 400:
                return Rejected(service_id, _reason(await rep.read()))
            if not 200 <= rep.status < 300:
                log.warning("sequester_webhook_bad_status", status=rep.status, **where)
                return Unavailable(service_id)
    except TimeoutError:
        log.warning("sequester_webhook_timeout", timeout=session.timeout.total, **where)
        return Unavailable(service_id)
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        log.warning("sequester_webhook_unreachable", error=type(exc).__name__, **where)
        return Unavailable(service_id)
    return None


class BootstrapPayload(NamedTuple):
    """The JSON body of the organization bootstrap webhook (the official fields)."""

    organization_id: str
    device_id: uuid.UUID
    device_label: str | None
    human_email: str | None
    human_label: str | None

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "organization_id": self.organization_id,
                "device_id": self.device_id.hex,
                "device_label": self.device_label,
                "human_email": self.human_email,
                "human_label": self.human_label,
            }
        ).encode()


async def organization_bootstrap(url: str, payload: BootstrapPayload, time_limit: float) -> bool:
    """POST the payload; False (logged) on any failure: the bootstrap is done whatever happens."""
    where = {"organization_id": payload.organization_id}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=time_limit)) as session,
            session.post(
                url,
                data=payload.to_json(),
                headers={"Content-Type": "application/json; charset=utf-8"},
            ) as rep,
        ):
            if 200 <= rep.status < 300:
                return True
            log.warning("bootstrap_webhook_bad_status", status=rep.status, **where)
    except TimeoutError:
        log.warning("bootstrap_webhook_timeout", timeout=time_limit, **where)
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        log.warning("bootstrap_webhook_unreachable", error=type(exc).__name__, **where)
    return False
