"""authenticated user_create (protocol.md §4.4): every reply status, races, event."""

# ruff: noqa: F811  (pytest fixtures imported from core_helpers are redefined as arguments)
from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import timedelta

import nacl.signing
import pytest
from core_helpers import (
    Device,
    HttpError,
    NewUserCerts,
    Org,
    Server,
    capture_events,
    device_cert,
    new_user_certs,
    org,  # noqa: F401
    server,  # noqa: F401
    sign,
    user_cert,
)

from parsec_server.protocol.codec import datetime_to_us, now
from parsec_server.protocol.ids import HumanHandle

OK = {"status": "ok"}


def certs_by(author: Device, name: str = "carol", **kwargs: object) -> NewUserCerts:
    return new_user_certs(author.device_id, author.signing_key, name, **kwargs)  # type: ignore[arg-type]


async def create(author: Device, certs: NewUserCerts) -> dict:
    return await author.rpc("user_create", **certs.req())


async def common_count(device: Device) -> int:
    return len((await device.certificates())["common_certificates"])


async def test_user_create_ok(server: Server, org: Org) -> None:
    alice = org.alice
    certs = certs_by(alice, profile="OUTSIDER")
    with capture_events(server, org.organization_id) as log:
        assert await create(alice, certs) == OK
        events = await log.wait_for("COMMON_CERTIFICATE")
    assert events[0]["timestamp"] == datetime_to_us(certs.timestamp)
    carol = Device(
        server,
        org.organization_id,
        certs.user_id,
        certs.device_id,
        certs.signing_key,
        certs.human,
        "OUTSIDER",
    )
    assert await carol.rpc("ping", ping="hi") == {"status": "ok", "pong": "hi"}
    got = (await alice.certificates())["common_certificates"]
    assert got[-2:] == [certs.user_certificate, certs.device_certificate]
    async with server.backend.db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT u.initial_profile, u.current_profile, h.email, h.label, d.device_label, "
            "d.purpose "
            "FROM user_ u JOIN human h ON h.id = u.human JOIN device d ON d.user_ = u.id WHERE "
            "u.user_id = $1",
            certs.user_id,
        )
    assert dict(row) == {
        "initial_profile": "OUTSIDER",
        "current_profile": "OUTSIDER",
        "email": "carol@example.com",
        "label": "Carol",
        "device_label": "carol-dev1",
        "purpose": "STANDARD",
    }


@pytest.mark.parametrize("profile", ["STANDARD", "OUTSIDER"])
async def test_user_create_author_not_allowed(org: Org, profile: str) -> None:
    someone = await org.alice.create_user("someone", profile)
    assert await create(someone, certs_by(someone)) == {"status": "author_not_allowed"}
    # checked before the certificates
    bad = dataclasses.replace(certs_by(someone), user_certificate=b"garbage")
    assert await create(someone, bad) == {"status": "author_not_allowed"}


async def test_user_create_author_demoted(org: Org) -> None:
    admin2 = await org.alice.create_user("admin2", "ADMIN")
    assert await create(admin2, certs_by(admin2, "x")) == OK
    assert await org.alice.update_profile(admin2.user_id, "STANDARD") == OK
    # the profile is read in the transaction, not from the handshake cache
    assert await create(admin2, certs_by(admin2, "y")) == {"status": "author_not_allowed"}


async def test_user_create_active_users_limit_reached(server: Server, org: Org) -> None:
    r = await server.admin(
        "PATCH", f"/organizations/{org.organization_id}", json={"active_users_limit": 2}
    )
    assert r.status_code == 200
    bob = await org.alice.create_user("bob")
    assert await create(org.alice, certs_by(org.alice)) == {"status": "active_users_limit_reached"}
    assert await org.alice.revoke(bob.user_id) == OK
    assert await create(org.alice, certs_by(org.alice)) == OK


async def test_user_create_user_already_exists(org: Org) -> None:
    bob = await org.alice.create_user("bob")
    assert await create(org.alice, certs_by(org.alice, user_id=bob.user_id)) == {
        "status": "user_already_exists"
    }
    rep = await create(org.alice, certs_by(org.alice, device_id=bob.device_id))
    assert rep == {"status": "user_already_exists"}
    assert await common_count(org.alice) == 4


async def test_user_create_human_handle_already_taken(org: Org) -> None:
    bob = await org.alice.create_user("bob")
    other_bob = HumanHandle("bob@example.com", "Another Bob")
    rep = await create(org.alice, certs_by(org.alice, human=other_bob))
    assert rep == {"status": "human_handle_already_taken"}
    # the email of a revoked user can be used again (same human row)
    assert await org.alice.revoke(bob.user_id) == OK
    assert await create(org.alice, certs_by(org.alice, human=other_bob)) == OK
    r = await org.server.admin("GET", f"/organizations/{org.organization_id}/users")
    assert {u["user_email"]: u["user_name"] for u in r.json()["users"]}[
        "bob@example.com"
    ] == "Another Bob"


async def test_user_create_checks_order(server: Server, org: Org) -> None:
    # human_handle_already_taken, then active_users_limit_reached, then user_already_exists
    bob = await org.alice.create_user("bob")
    await server.admin(
        "PATCH", f"/organizations/{org.organization_id}", json={"active_users_limit": 2}
    )
    rep = await create(org.alice, certs_by(org.alice, "bob", user_id=bob.user_id))
    assert rep == {"status": "human_handle_already_taken"}
    rep = await create(org.alice, certs_by(org.alice, user_id=bob.user_id))
    assert rep == {"status": "active_users_limit_reached"}


async def test_user_create_timestamp_out_of_ballpark(org: Org) -> None:
    for offset in (-3600, 3600):
        ts = now() + timedelta(seconds=offset)
        rep = await create(org.alice, certs_by(org.alice, ts=ts))
        assert rep["status"] == "timestamp_out_of_ballpark"
        assert rep["client_timestamp"] == ts


async def test_user_create_require_greater_timestamp(org: Org) -> None:
    earlier = now()
    later = earlier + timedelta(seconds=1)
    assert await create(org.alice, certs_by(org.alice, "bob", ts=later)) == OK
    for ts in (earlier, later):  # equal is not enough
        rep = await create(org.alice, certs_by(org.alice, ts=ts))
        assert rep == {"status": "require_greater_timestamp", "strictly_greater_than": later}


def _invalid(author: Device) -> dict[str, NewUserCerts]:
    c = certs_by(author)
    key, other = author.signing_key, nacl.signing.SigningKey.generate()
    ts, uid, did, pk = c.timestamp, c.user_id, c.device_id, b"p" * 32
    vk = bytes(c.signing_key.verify_key)
    repl = lambda **kw: dataclasses.replace(c, **kw)  # noqa: E731
    return {
        "signed-by-other-key": repl(
            user_certificate=sign(
                other, user_cert(author.device_id, ts, uid, c.human, pk, "STANDARD")
            )
        ),
        "author-is-root": repl(
            user_certificate=sign(key, user_cert(None, ts, uid, c.human, pk, "STANDARD"))
        ),
        "author-other-device": repl(
            device_certificate=sign(key, device_cert(uuid.uuid4(), ts, uid, did, "d", vk))
        ),
        "device-timestamp-differs": repl(
            device_certificate=sign(
                key,
                device_cert(author.device_id, ts + timedelta(microseconds=1), uid, did, "d", vk),
            )
        ),
        "device-of-other-user": repl(
            device_certificate=sign(
                key, device_cert(author.device_id, ts, uuid.uuid4(), did, "d", vk)
            ),
            redacted_device_certificate=sign(
                key, device_cert(author.device_id, ts, uuid.uuid4(), did, None, vk)
            ),
        ),
        "redacted-user-not-redacted": repl(redacted_user_certificate=c.user_certificate),
        "redacted-device-not-redacted": repl(redacted_device_certificate=c.device_certificate),
        "redacted-user-differs": repl(
            redacted_user_certificate=sign(
                key, user_cert(author.device_id, ts, uid, None, pk, "ADMIN")
            )
        ),
        "swapped": repl(
            user_certificate=c.device_certificate, device_certificate=c.user_certificate
        ),
        "empty": repl(device_certificate=b""),
    }


@pytest.mark.parametrize(
    "case",
    [
        "signed-by-other-key",
        "author-is-root",
        "author-other-device",
        "device-timestamp-differs",
        "device-of-other-user",
        "redacted-user-not-redacted",
        "redacted-device-not-redacted",
        "redacted-user-differs",
        "swapped",
        "empty",
    ],
)
async def test_user_create_invalid_certificate(org: Org, case: str) -> None:
    assert await create(org.alice, _invalid(org.alice)[case]) == {"status": "invalid_certificate"}
    assert await common_count(org.alice) == 2


async def test_user_create_invalid_certificate_before_ballpark(org: Org) -> None:
    c = certs_by(org.alice, ts=now() - timedelta(hours=1))
    c = dataclasses.replace(
        c, user_certificate=c.user_certificate[:10] + b"X" + c.user_certificate[11:]
    )
    assert await create(org.alice, c) == {"status": "invalid_certificate"}


async def test_user_create_race_same_email(org: Org) -> None:
    """Concurrent creations of the same email: exactly one wins, the others get the protocol
    status."""
    hh = HumanHandle("zack@example.com", "Zack")
    base = now()
    reps = await asyncio.gather(
        *(
            create(org.alice, certs_by(org.alice, human=hh, ts=base + timedelta(microseconds=i)))
            for i in range(5)
        )
    )
    statuses = sorted(r["status"] for r in reps)
    assert statuses.count("ok") == 1, statuses
    assert set(statuses) <= {"ok", "human_handle_already_taken", "require_greater_timestamp"}
    assert await common_count(org.alice) == 4


async def test_user_create_race_same_user_id(org: Org) -> None:
    uid = uuid.uuid4()
    base = now()
    reps = await asyncio.gather(
        *(
            create(
                org.alice,
                certs_by(org.alice, f"u{i}", user_id=uid, ts=base + timedelta(microseconds=5 - i)),
            )
            for i in range(5)
        )
    )
    statuses = sorted(r["status"] for r in reps)
    assert statuses.count("ok") == 1, statuses
    assert set(statuses) <= {"ok", "user_already_exists", "require_greater_timestamp"}


async def test_user_create_author_revoked_meanwhile(org: Org) -> None:
    admin2 = await org.alice.create_user("admin2", "ADMIN")
    await admin2.rpc("ping", ping="warm the handshake cache")
    assert await org.alice.revoke(admin2.user_id) == OK
    # the handshake cache may still hold admin2 as valid: the transaction re-checks
    with pytest.raises(HttpError) as exc:
        await create(admin2, certs_by(admin2))
    assert exc.value.status_code == 461
