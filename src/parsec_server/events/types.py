"""The events the server publishes, and how each reaches SSE clients (protocol.md §1.9).

Publishers build events with the helpers below (values JSON-ready: ids hex, datetimes µs, bytes base64);
`to_api_event` turns one back into the `events_listen` ok reply sent to a client.

| type                         | extra fields                                              | who receives it          |
|------------------------------|-----------------------------------------------------------|--------------------------|
| PINGED                       | ping                                                      | whole organization       |
| COMMON_CERTIFICATE           | timestamp                                                 | whole organization       |
| SEQUESTER_CERTIFICATE        | timestamp                                                 | whole organization       |
| REALM_CERTIFICATE            | timestamp, realm_id, user_id (whose role changed), role_removed | realm members + user_id |
| VLOB                         | realm_id, vlob_id, author, timestamp, version, blob, last_*   | realm members but the author device |
| INVITATION                   | token, invitation_status, greeters (user ids) / to_admins | possible greeters        |
| GREETING_ATTEMPT_{READY,JOINED,CANCELLED} | token, greeting_attempt, greeter             | the attempt's greeter    |
| ASYNC_ENROLLMENT             | —                                                         | ADMINs                   |
| USER_REVOKED_OR_FROZEN, USER_UNFROZEN, USER_UPDATED | user_id                            | internal (auth cache, streams end) |
| ORGANIZATION_EXPIRED, ORGANIZATION_TOS_UPDATED, ORGANIZATION_UPDATED | —                 | internal                 |
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any

from parsec_server.events.bus import Event, new_event
from parsec_server.protocol.codec import datetime_from_us, datetime_to_us
from parsec_server.protocol.sse import VLOB_BLOB_MAX

INTERNAL = frozenset(
    {
        "USER_REVOKED_OR_FROZEN",
        "USER_UNFROZEN",
        "USER_UPDATED",
        "ORGANIZATION_EXPIRED",
        "ORGANIZATION_TOS_UPDATED",
        "ORGANIZATION_UPDATED",
    }
)


def _us(dt: datetime) -> int:
    return datetime_to_us(dt)


def pinged(org: str, ping: str) -> Event:
    return new_event(org, "PINGED", ping=ping)


def common_certificate(org: str, timestamp: datetime) -> Event:
    return new_event(org, "COMMON_CERTIFICATE", timestamp=_us(timestamp))


def sequester_certificate(org: str, timestamp: datetime) -> Event:
    return new_event(org, "SEQUESTER_CERTIFICATE", timestamp=_us(timestamp))


def realm_certificate(
    org: str,
    timestamp: datetime,
    realm_id: uuid.UUID,
    user_id: uuid.UUID | None = None,
    role_removed: bool = False,
) -> Event:
    return new_event(
        org,
        "REALM_CERTIFICATE",
        timestamp=_us(timestamp),
        realm_id=realm_id.hex,
        user_id=user_id.hex if user_id else None,
        role_removed=role_removed,
    )


# The VLOB event is built in one place: `vlob_payload_head` (every field but the two topic timestamps,
# known only inside the writing statement), completed by `_REALM_KEY`, the realm timestamp and `}`. The
# writing statement completes it in SQL (`vlob_payload_sql`); `vlob` completes it in Python.
_COMMON_KEY = ',"last_common_certificate_timestamp":'
_json_str = json.JSONEncoder(separators=(",", ":")).encode  # a str as a JSON string (escaped)
_REALM_KEY = ',"last_realm_certificate_timestamp":'


def vlob_payload_head(
    org: str,
    realm_id: uuid.UUID,
    vlob_id: uuid.UUID,
    author: uuid.UUID,
    timestamp: datetime,
    version: int,
    blob: bytes,
) -> str:
    """The NOTIFY payload of a VLOB event up to its common topic timestamp (excluded), which the writing
    statement appends with the rest (`vlob_payload_sql`):

        head || <common topic µs> || ',"last_realm_certificate_timestamp":' || <realm topic µs> || '}'

    The JSON text of `new_event(org, "VLOB", realm_id=..., ..., blob=...)` written directly (this
    runs on every vlob write: ~4x cheaper than building the dict and `json.dumps` it); only the
    organization id needs JSON escaping, every other value is hex, base64 or an integer.
    """
    b64 = f'"{base64.b64encode(blob).decode()}"' if len(blob) < VLOB_BLOB_MAX else "null"
    return (
        f'{{"id":"{uuid.uuid4().hex}","org":{_json_str(org)},"type":"VLOB"'
        f',"realm_id":"{realm_id.hex}","vlob_id":"{vlob_id.hex}","author":"{author.hex}"'
        f',"timestamp":{_us(timestamp)},"version":{int(version)},"blob":{b64}{_COMMON_KEY}'
    )


def vlob_payload_sql(head: str, common_ts: str, realm_ts: str) -> str:
    """SQL text completing `vlob_payload_head` (`head`: its parameter, `*_ts`: timestamptz expressions)."""
    return (
        f"{head} || (EXTRACT(EPOCH FROM {common_ts}) * 1000000)::bigint"
        f" || '{_REALM_KEY}' || (EXTRACT(EPOCH FROM {realm_ts}) * 1000000)::bigint || '}}'"
    )


def vlob(
    org: str,
    realm_id: uuid.UUID,
    vlob_id: uuid.UUID,
    author: uuid.UUID,
    timestamp: datetime,
    version: int,
    blob: bytes,
    last_common_certificate_timestamp: datetime,
    last_realm_certificate_timestamp: datetime,
) -> Event:
    """The event `vlob_payload_head` + `vlob_payload_sql` publish, completed in Python."""
    head = vlob_payload_head(org, realm_id, vlob_id, author, timestamp, version, blob)
    common, realm = _us(last_common_certificate_timestamp), _us(last_realm_certificate_timestamp)
    event: Event = json.loads(f"{head}{common}{_REALM_KEY}{realm}}}")
    return event


def invitation(
    org: str,
    token: bytes,
    status: str,
    *,
    greeters: list[uuid.UUID] | None = None,
    to_admins: bool = False,
) -> Event:
    return new_event(
        org,
        "INVITATION",
        token=token.hex(),
        invitation_status=status,
        greeters=[g.hex for g in greeters] if greeters is not None else None,
        to_admins=to_admins,
    )


def greeting_attempt(
    org: str, kind: str, token: bytes, attempt: uuid.UUID, greeter: uuid.UUID
) -> Event:
    assert kind in ("READY", "JOINED", "CANCELLED")
    return new_event(
        org,
        f"GREETING_ATTEMPT_{kind}",
        token=token.hex(),
        greeting_attempt=attempt.hex,
        greeter=greeter.hex,
    )


def async_enrollment(org: str) -> Event:
    """An asynchronous enrollment request was submitted, cancelled, rejected or accepted."""
    return new_event(org, "ASYNC_ENROLLMENT")


def internal(org: str, type_: str, user_id: uuid.UUID | None = None) -> Event:
    assert type_ in INTERNAL
    return new_event(org, type_, user_id=user_id.hex if user_id else None)


def to_api_event(event: Event) -> dict[str, Any]:
    """The `events_listen` ok reply (status + flattened APIEvent) for a public event."""
    t = event["type"]
    rep: dict[str, Any] = {"status": "ok", "event": t}
    if t == "PINGED":
        rep["ping"] = event["ping"]
    elif t in ("COMMON_CERTIFICATE", "SEQUESTER_CERTIFICATE", "SHAMIR_RECOVERY_CERTIFICATE"):
        rep["timestamp"] = datetime_from_us(event["timestamp"])
    elif t == "REALM_CERTIFICATE":
        rep["timestamp"] = datetime_from_us(event["timestamp"])
        rep["realm_id"] = uuid.UUID(event["realm_id"])
    elif t == "VLOB":
        rep.update(
            realm_id=uuid.UUID(event["realm_id"]),
            vlob_id=uuid.UUID(event["vlob_id"]),
            author=uuid.UUID(event["author"]),
            timestamp=datetime_from_us(event["timestamp"]),
            version=event["version"],
            blob=base64.b64decode(event["blob"]) if event["blob"] is not None else None,
            last_common_certificate_timestamp=datetime_from_us(
                event["last_common_certificate_timestamp"]
            ),
            last_realm_certificate_timestamp=datetime_from_us(
                event["last_realm_certificate_timestamp"]
            ),
        )
    elif t == "INVITATION":
        rep.update(
            token=bytes.fromhex(event["token"]), invitation_status=event["invitation_status"]
        )
    elif t == "ASYNC_ENROLLMENT":
        pass
    elif t.startswith("GREETING_ATTEMPT_"):
        rep.update(
            token=bytes.fromhex(event["token"]),
            greeting_attempt=uuid.UUID(event["greeting_attempt"]),
        )
    else:
        raise ValueError(f"not a public event: {t}")
    return rep
