"""The VLOB event's NOTIFY payload (events/types.py): the JSON text written directly is the event
`new_event` + `json.dumps` would publish, for any organization id and blob size."""

from __future__ import annotations

import base64
import datetime
import json
import uuid

import pytest

from parsec_server.events.types import _REALM_KEY, vlob, vlob_payload_head
from parsec_server.protocol.codec import datetime_to_us
from parsec_server.protocol.sse import VLOB_BLOB_MAX

TS = datetime.datetime(2026, 12, 4, 15, 0, 0, 123456, tzinfo=datetime.UTC)
COMMON = datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)
REALM = datetime.datetime(2026, 3, 4, 5, 6, 7, 8, tzinfo=datetime.UTC)


@pytest.mark.parametrize("org", ["CoolOrg", 'quote"back\\slash', "é\u2028\x00-_", "a" * 32])
@pytest.mark.parametrize("size", [0, 1, 512, VLOB_BLOB_MAX - 1, VLOB_BLOB_MAX, 100_000])
def test_head_is_the_event_json(org: str, size: int) -> None:
    realm_id, vlob_id, author = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    blob = bytes(range(256)) * (size // 256) + bytes(size % 256)
    head = vlob_payload_head(org, realm_id, vlob_id, author, TS, 7, blob)
    common, realm = datetime_to_us(COMMON), datetime_to_us(REALM)
    event = json.loads(f"{head}{common}{_REALM_KEY}{realm}}}")
    assert uuid.UUID(hex=event.pop("id")).version == 4
    assert event == {
        "org": org,
        "type": "VLOB",
        "realm_id": realm_id.hex,
        "vlob_id": vlob_id.hex,
        "author": author.hex,
        "timestamp": datetime_to_us(TS),
        "version": 7,
        "blob": base64.b64encode(blob).decode() if size < VLOB_BLOB_MAX else None,
        "last_common_certificate_timestamp": common,
        "last_realm_certificate_timestamp": realm,
    }
    # the Python completion (events.types.vlob) parses to the same event
    full = vlob(org, realm_id, vlob_id, author, TS, 7, blob, COMMON, REALM)
    assert {k: v for k, v in full.items() if k != "id"} == {**event}
    assert list(full) == ["id", *event]  # same key order as new_event's
