"""`events_listen` payloads and SSE framing (protocol.md §1.9).

Each SSE event carries `data:<base64 of msgpack>`, the msgpack being an `events_listen` ok reply:
`{"status": "ok", "event": "<NAME>", <fields sorted by name>}` (byte-identical to the official
`events_listen.RepOk(APIEvent...).dump()`). The functions below build those payloads; `frame()`
wraps one for the wire.
"""

from __future__ import annotations

import base64
import datetime
import uuid
from typing import Any

from parsec_server.protocol.codec import packb

__all__ = [
    "KEEPALIVE",
    "MISSED_EVENTS",
    "async_enrollment",
    "common_certificate",
    "frame",
    "greeting_attempt_cancelled",
    "greeting_attempt_joined",
    "greeting_attempt_ready",
    "invitation",
    "organization_config",
    "pinged",
    "pki_enrollment",
    "realm_certificate",
    "sequester_certificate",
    "shamir_recovery_certificate",
    "vlob",
]

KEEPALIVE = b"event:keepalive\ndata:\n\n"
MISSED_EVENTS = b"event:missed_events\ndata:\n\n"
VLOB_BLOB_MAX = 4096  # blobs of this size or more are not sent in VLOB events


def frame(payload: bytes, event_id: uuid.UUID | str | None = None) -> bytes:
    """`data:<base64>\\nid:<hex>\\n\\n`; no `id:` line for the first (ORGANIZATION_CONFIG) event.
    `event_id` is a UUID or already its 32-hex form."""
    data = b"data:" + base64.b64encode(payload)
    if event_id is None:
        return data + b"\n\n"
    hex_id = event_id if isinstance(event_id, str) else event_id.hex
    return data + b"\nid:" + hex_id.encode("ascii") + b"\n\n"


def _ok(event: str, fields: dict[str, Any]) -> bytes:
    out: dict[str, Any] = {"status": "ok", "event": event}
    for key in sorted(fields):
        out[key] = fields[key]
    return packb(out)


def organization_config(
    *,
    user_profile_outsider_allowed: bool,
    active_users_limit: int | None,
    sse_keepalive_seconds: int | None,
    realm_minimum_archiving_period_before_deletion: int | None,
) -> bytes:
    """`realm_minimum_archiving_period_before_deletion` (API 5.5) is left out when None."""
    fields: dict[str, Any] = {
        "user_profile_outsider_allowed": user_profile_outsider_allowed,
        "active_users_limit": active_users_limit,
        "sse_keepalive_seconds": sse_keepalive_seconds,
    }
    if realm_minimum_archiving_period_before_deletion is not None:
        fields["realm_minimum_archiving_period_before_deletion"] = (
            realm_minimum_archiving_period_before_deletion
        )
    return _ok("ORGANIZATION_CONFIG", fields)


def pinged(ping: str) -> bytes:
    return _ok("PINGED", {"ping": ping})


def invitation(token: bytes, invitation_status: str) -> bytes:
    return _ok("INVITATION", {"token": token, "invitation_status": invitation_status})


def greeting_attempt_ready(token: bytes, greeting_attempt: uuid.UUID) -> bytes:
    return _ok("GREETING_ATTEMPT_READY", {"token": token, "greeting_attempt": greeting_attempt})


def greeting_attempt_cancelled(token: bytes, greeting_attempt: uuid.UUID) -> bytes:
    return _ok("GREETING_ATTEMPT_CANCELLED", {"token": token, "greeting_attempt": greeting_attempt})


def greeting_attempt_joined(token: bytes, greeting_attempt: uuid.UUID) -> bytes:
    return _ok("GREETING_ATTEMPT_JOINED", {"token": token, "greeting_attempt": greeting_attempt})


def pki_enrollment() -> bytes:
    return _ok("PKI_ENROLLMENT", {})


def async_enrollment() -> bytes:
    return _ok("ASYNC_ENROLLMENT", {})


def common_certificate(timestamp: datetime.datetime) -> bytes:
    return _ok("COMMON_CERTIFICATE", {"timestamp": timestamp})


def sequester_certificate(timestamp: datetime.datetime) -> bytes:
    return _ok("SEQUESTER_CERTIFICATE", {"timestamp": timestamp})


def shamir_recovery_certificate(timestamp: datetime.datetime) -> bytes:
    return _ok("SHAMIR_RECOVERY_CERTIFICATE", {"timestamp": timestamp})


def realm_certificate(timestamp: datetime.datetime, realm_id: uuid.UUID) -> bytes:
    return _ok("REALM_CERTIFICATE", {"timestamp": timestamp, "realm_id": realm_id})


def vlob(
    *,
    realm_id: uuid.UUID,
    vlob_id: uuid.UUID,
    author: uuid.UUID,
    timestamp: datetime.datetime,
    version: int,
    blob: bytes | None,
    last_common_certificate_timestamp: datetime.datetime,
    last_realm_certificate_timestamp: datetime.datetime,
) -> bytes:
    """`blob` is dropped (sent as nil) when it is VLOB_BLOB_MAX bytes or more."""
    if blob is not None and len(blob) >= VLOB_BLOB_MAX:
        blob = None
    return packb(
        {
            "status": "ok",
            "event": "VLOB",
            "author": author,
            "blob": blob,
            "last_common_certificate_timestamp": last_common_certificate_timestamp,
            "last_realm_certificate_timestamp": last_realm_certificate_timestamp,
            "realm_id": realm_id,
            "timestamp": timestamp,
            "version": version,
            "vlob_id": vlob_id,
        }
    )
