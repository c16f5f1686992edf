"""authenticated device_create (protocol.md §4.4): every reply status."""

# ruff: noqa: F811  (pytest fixtures imported from core_helpers are redefined as arguments)
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import nacl.signing
import pytest
from core_helpers import Device, Org, Server, capture_events, device_cert, org, server, settle, sign  # noqa: F401

from parsec_server.protocol.codec import datetime_to_us, now

OK = {"status": "ok"}


async def device_create(
    client: Device,
    *,
    user_id: uuid.UUID | None = None,
    device_id: uuid.UUID | None = None,
    author: object = "self",
    ts: datetime | None = None,
    redacted_ts: datetime | None = None,
    key: nacl.signing.SigningKey | None = None,
    redacted_label: str | None = None,
) -> dict:
    ts = ts or now()
    author_id = client.device_id if author == "self" else author
    vk = bytes(nacl.signing.SigningKey.generate().verify_key)
    user_id = user_id or client.user_id
    device_id = device_id or uuid.uuid4()
    signer = key or client.signing_key
    return await client.rpc(
        "device_create",
        device_certificate=sign(
            signer, device_cert(author_id, ts, user_id, device_id, "laptop", vk)
        ),  # type: ignore[arg-type]
        redacted_device_certificate=sign(
            signer,
            device_cert(author_id, redacted_ts or ts, user_id, device_id, redacted_label, vk),  # type: ignore[arg-type]
        ),
    )


@pytest.mark.parametrize("profile", ["ADMIN", "STANDARD", "OUTSIDER"])
async def test_device_create_ok(server: Server, org: Org, profile: str) -> None:
    user = org.alice if profile == "ADMIN" else await org.alice.create_user("bob", profile)
    with capture_events(server, org.organization_id) as log:
        dev2 = await user.create_device("second")
        await log.wait_for("COMMON_CERTIFICATE")
    assert await dev2.rpc("ping", ping="d2") == {"status": "ok", "pong": "d2"}
    dev3 = await dev2.create_device("third")  # a new device can certify another one
    assert (await dev3.rpc("ping", ping="d3"))["pong"] == "d3"
    last = (await org.alice.certificates())["common_certificates"][-1]
    async with server.backend.db.connection() as conn:
        n = await conn.fetchval(
            "SELECT COUNT(*) FROM device d JOIN user_ u ON u.id = d.user_ WHERE u.user_id = $1",
            user.user_id,
        )
    assert n == 3
    assert b"third" in last or len(last) > 64  # the raw certificate, as sent


async def test_device_create_event_timestamp(server: Server, org: Org) -> None:
    await settle(server, org.organization_id)  # earlier events are delivered
    ts = now()
    with capture_events(server, org.organization_id) as log:
        await org.alice.create_device(ts=ts)
        events = await log.wait_for("COMMON_CERTIFICATE")
    assert events[0]["timestamp"] == datetime_to_us(ts)


@pytest.mark.parametrize(
    "case",
    [
        "other-user",
        "author-root",
        "author-other-device",
        "bad-signature",
        "redacted-not-redacted",
        "redacted-differs",
    ],
)
async def test_device_create_invalid_certificate(org: Org, case: str) -> None:
    bob = await org.alice.create_user("bob")
    kwargs: dict = {
        "other-user": {"user_id": bob.user_id},
        "author-root": {"author": None},
        "author-other-device": {"author": uuid.uuid4()},
        "bad-signature": {"key": nacl.signing.SigningKey.generate()},
        "redacted-not-redacted": {"redacted_label": "label"},
        "redacted-differs": {"redacted_ts": now() + timedelta(seconds=1)},
    }[case]
    assert await device_create(org.alice, **kwargs) == {"status": "invalid_certificate"}


async def test_device_create_garbage(org: Org) -> None:
    rep = await org.alice.rpc(
        "device_create", device_certificate=b"x", redacted_device_certificate=b""
    )
    assert rep == {"status": "invalid_certificate"}


async def test_device_create_device_already_exists(org: Org) -> None:
    bob = await org.alice.create_user("bob")
    for device_id in (org.alice.device_id, bob.device_id):
        assert await device_create(org.alice, device_id=device_id) == {
            "status": "device_already_exists"
        }


async def test_device_create_timestamp_out_of_ballpark(org: Org) -> None:
    ts = now() - timedelta(hours=1)
    rep = await device_create(org.alice, ts=ts)
    assert rep["status"] == "timestamp_out_of_ballpark"
    assert rep["client_timestamp"] == ts


async def test_device_create_require_greater_timestamp(org: Org) -> None:
    earlier = now()
    later = earlier + timedelta(seconds=1)
    await org.alice.create_user("bob", ts=later)  # user creations move the common topic too
    rep = await device_create(org.alice, ts=earlier)
    assert rep == {"status": "require_greater_timestamp", "strictly_greater_than": later}


async def test_device_create_race_same_id(org: Org) -> None:
    device_id = uuid.uuid4()
    base = now()
    reps = await asyncio.gather(
        *(
            device_create(org.alice, device_id=device_id, ts=base + timedelta(microseconds=i))
            for i in range(5)
        )
    )
    statuses = [r["status"] for r in reps]
    assert statuses.count("ok") == 1, statuses
    assert set(statuses) <= {"ok", "device_already_exists", "require_greater_timestamp"}
