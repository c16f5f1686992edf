from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from protocol_vectors import load, untag

from parsec_server.protocol import sse
from parsec_server.protocol.registry import encode_rep

EVENTS = [v for v in load("replies.json") if v["cmd"] == "events_listen" and v["status"] == "ok"]


def _build(rep: dict[str, Any]) -> bytes:
    fields = {k: v for k, v in rep.items() if k not in ("status", "event")}
    name = rep["event"]
    if name == "ORGANIZATION_CONFIG":
        fields.setdefault("realm_minimum_archiving_period_before_deletion", None)
        return sse.organization_config(**fields)
    if name == "VLOB":
        return sse.vlob(**fields)
    out: bytes = getattr(sse, name.lower())(**fields)
    return out


@pytest.mark.parametrize("vector", EVENTS, ids=lambda v: v["rep"]["event"])
def test_event_payloads_like_official(vector: dict[str, Any]) -> None:
    rep = untag(vector["rep"])
    assert _build(rep).hex() == vector["hex"]
    assert encode_rep(rep).hex() == vector["hex"]


def test_every_event_covered() -> None:
    names = {v["rep"]["event"] for v in EVENTS}
    assert len(names) == 13


def test_vlob_event_drops_big_blobs() -> None:
    now = __import__("datetime").datetime.now(__import__("datetime").UTC)
    args = dict(
        realm_id=uuid.uuid4(),
        vlob_id=uuid.uuid4(),
        author=uuid.uuid4(),
        timestamp=now,
        version=1,
        last_common_certificate_timestamp=now,
        last_realm_certificate_timestamp=now,
    )
    small = sse.vlob(blob=b"x" * 4095, **args)
    big = sse.vlob(blob=b"x" * 4096, **args)
    assert small == encode_rep({"status": "ok", "event": "VLOB", "blob": b"x" * 4095, **args})
    assert big == encode_rep({"status": "ok", "event": "VLOB", "blob": None, **args})


def test_framing() -> None:
    # observed-reference.md §3.3
    payload = base64.b64decode("g6ZzdGF0dXOib2ulZXZlbnSmUElOR0VEpHBpbmejc3Nl")
    assert sse.pinged("sse") == payload
    event_id = uuid.UUID("5909fed879794f008fbb2953c4b7b9e7")
    assert sse.frame(payload, event_id) == (
        b"data:g6ZzdGF0dXOib2ulZXZlbnSmUElOR0VEpHBpbmejc3Nl\nid:5909fed879794f008fbb2953c4b7b9e7\n\n"
    )
    assert sse.frame(payload) == b"data:g6ZzdGF0dXOib2ulZXZlbnSmUElOR0VEpHBpbmejc3Nl\n\n"
    assert sse.KEEPALIVE == b"event:keepalive\ndata:\n\n"


def test_observed_organization_config() -> None:
    observed = base64.b64decode(
        "hqZzdGF0dXOib2ulZXZlbnSzT1JHQU5JWkFUSU9OX0NPTkZJR7JhY3RpdmVfdXNlcnNfbGltaXTA2S5yZWFsbV9taW5pbXVt"
        "X2FyY2hpdmluZ19wZXJpb2RfYmVmb3JlX2RlbGV0aW9uzgAnjQC1c3NlX2tlZXBhbGl2ZV9zZWNvbmRzHr11c2VyX3Byb2Zp"
        "bGVfb3V0c2lkZXJfYWxsb3dlZMM="
    )
    assert (
        sse.organization_config(
            user_profile_outsider_allowed=True,
            active_users_limit=None,
            sse_keepalive_seconds=30,
            realm_minimum_archiving_period_before_deletion=2592000,
        )
        == observed
    )
