"""TOTP multi-factor against real PostgreSQL (docs/totp.md): set up, opaque keys fetched with a
right code only, wrong codes throttled per key, administration reset and the anonymous re-setup
with its token."""

from __future__ import annotations

import base64
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "commands"))

from invite_support import Identity, Org, RpcError, http_status, org_fixture, server_fixture  # noqa: F401

from parsec_server.crypto import totp
from parsec_server.protocol.codec import unpackb


async def anon(org: Org, cmd: str, **fields: Any) -> dict[str, Any]:
    rep: dict[str, Any] = await org.server.rpc(f"/anonymous/{org.org_id}", None, cmd, **fields)
    return rep


def code(secret: bytes, shift_steps: int = 0) -> str:
    return totp.code_at(secret, datetime.now(UTC) + timedelta(seconds=30 * shift_steps))


def wrong(secret: bytes) -> str:
    """A code that is none of the accepted ones right now."""
    accepted = {code(secret, s) for s in (-2, -1, 0, 1, 2)}
    return next(c for c in (f"{i:06d}" for i in range(10)) if c not in accepted)


async def setup_totp(org: Org, who: Identity) -> bytes:
    rep = await org.auth(who, "totp_setup_get_secret")
    assert rep["status"] == "ok" and len(rep["totp_secret"]) == 20
    secret: bytes = rep["totp_secret"]
    assert await org.auth(who, "totp_setup_confirm", one_time_password=code(secret)) == {
        "status": "ok"
    }
    return secret


async def test_setup_confirm(org: Org) -> None:
    first = await org.auth(org.alice, "totp_setup_get_secret")
    again = await org.auth(org.alice, "totp_setup_get_secret")
    assert first == again  # the pending secret stays until confirmed
    secret = first["totp_secret"]
    assert await org.auth(org.alice, "totp_setup_confirm", one_time_password=wrong(secret)) == {
        "status": "invalid_one_time_password"
    }
    # One step of drift either way is accepted.
    assert await org.auth(org.alice, "totp_setup_confirm", one_time_password=code(secret, -1)) == {
        "status": "ok"
    }
    assert await org.auth(org.alice, "totp_setup_get_secret") == {"status": "already_setup"}
    assert await org.auth(org.alice, "totp_setup_confirm", one_time_password=code(secret)) == {
        "status": "already_setup"
    }


async def test_confirm_without_secret(org: Org) -> None:
    assert await org.auth(org.alice, "totp_setup_confirm", one_time_password="123456") == {
        "status": "invalid_one_time_password"
    }


async def test_opaque_key_needs_right_code(org: Org) -> None:
    secret = await setup_totp(org, org.alice)
    created = await org.auth(org.alice, "totp_create_opaque_key")
    assert created["status"] == "ok" and len(created["opaque_key"]) == 32
    key_id = created["opaque_key_id"]
    fetched = await anon(
        org,
        "totp_fetch_opaque_key",
        user_id=org.alice.user_id,
        opaque_key_id=key_id,
        one_time_password=code(secret),
    )
    assert fetched == {"status": "ok", "opaque_key": created["opaque_key"]}
    # Keys are per user: another user (or unknown ids) learns nothing, whatever the code.
    bob = await org.create_user("bob")
    for user_id, kid in ((bob.user_id, key_id), (org.alice.user_id, uuid.uuid4())):
        assert await anon(
            org,
            "totp_fetch_opaque_key",
            user_id=user_id,
            opaque_key_id=kid,
            one_time_password=code(secret),
        ) == {"status": "invalid_one_time_password"}


async def test_fetch_refused_before_setup_and_for_revoked(org: Org) -> None:
    bob = await org.create_user("bob")
    secret = (await org.auth(bob, "totp_setup_get_secret"))["totp_secret"]
    key = await org.auth(bob, "totp_create_opaque_key")
    fields = {"user_id": bob.user_id, "opaque_key_id": key["opaque_key_id"]}
    # Not confirmed yet: even the right code is refused.
    assert await anon(org, "totp_fetch_opaque_key", one_time_password=code(secret), **fields) == {
        "status": "invalid_one_time_password"
    }
    assert await org.auth(bob, "totp_setup_confirm", one_time_password=code(secret)) == {
        "status": "ok"
    }
    rep = await anon(org, "totp_fetch_opaque_key", one_time_password=code(secret), **fields)
    assert rep["status"] == "ok"
    await org.revoke(bob)
    assert await anon(org, "totp_fetch_opaque_key", one_time_password=code(secret), **fields) == {
        "status": "invalid_one_time_password"
    }


async def _set_throttle(org: Org, key_id: uuid.UUID, failed: int, last: datetime) -> None:
    async with org.server.backend.db.connection() as conn:
        await conn.execute(
            "UPDATE user_totp_opaque_key SET failed_attempts = $2, last_failed_attempt = $3"
            " WHERE opaque_key_id = $1",
            key_id,
            failed,
            last,
        )


async def test_wrong_codes_are_throttled(org: Org) -> None:
    secret = await setup_totp(org, org.alice)
    key = await org.auth(org.alice, "totp_create_opaque_key")
    fields = {"user_id": org.alice.user_id, "opaque_key_id": key["opaque_key_id"]}
    before = datetime.now(UTC)
    assert await anon(org, "totp_fetch_opaque_key", one_time_password=wrong(secret), **fields) == {
        "status": "invalid_one_time_password"
    }
    # Right after a failure the key is throttled for 2^0 s, even for the right code.
    rep = await anon(org, "totp_fetch_opaque_key", one_time_password=code(secret), **fields)
    assert rep["status"] == "throttled"
    assert (
        before + timedelta(seconds=1)
        <= rep["wait_until"]
        <= datetime.now(UTC) + timedelta(seconds=1)
    )
    # The n-th failure throttles for 2^(n-1) s after it: 4 failures, the last one 5 s ago -> 8 s.
    last = datetime.now(UTC) - timedelta(seconds=5)
    await _set_throttle(org, key["opaque_key_id"], 4, last)
    rep = await anon(org, "totp_fetch_opaque_key", one_time_password=code(secret), **fields)
    assert rep == {"status": "throttled", "wait_until": last + timedelta(seconds=8)}
    # Once the wait is over a wrong code counts one more failure (5 -> 16 s)...
    last = datetime.now(UTC) - timedelta(seconds=9)
    await _set_throttle(org, key["opaque_key_id"], 4, last)
    assert await anon(org, "totp_fetch_opaque_key", one_time_password=wrong(secret), **fields) == {
        "status": "invalid_one_time_password"
    }
    rep = await anon(org, "totp_fetch_opaque_key", one_time_password=code(secret), **fields)
    assert rep["status"] == "throttled"
    assert rep["wait_until"] - datetime.now(UTC) > timedelta(seconds=14)
    # ...and a right code after the wait clears the count.
    await _set_throttle(org, key["opaque_key_id"], 5, datetime.now(UTC) - timedelta(seconds=17))
    rep = await anon(org, "totp_fetch_opaque_key", one_time_password=code(secret), **fields)
    assert rep["status"] == "ok"
    async with org.server.backend.db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT failed_attempts, last_failed_attempt FROM user_totp_opaque_key"
            " WHERE opaque_key_id = $1",
            key["opaque_key_id"],
        )
    assert tuple(row) == (0, None)


def _reset_token(url: str, user_id: uuid.UUID) -> bytes:
    p = parse_qs(urlsplit(url).query)["p"][0]
    decoded_user_id, token = unpackb(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    assert decoded_user_id == user_id
    assert isinstance(token, bytes) and len(token) == 16
    return token


async def test_admin_reset_then_anonymous_setup(org: Org) -> None:
    old_secret = await setup_totp(org, org.alice)
    key = await org.auth(org.alice, "totp_create_opaque_key")
    await _set_throttle(org, key["opaque_key_id"], 3, datetime.now(UTC))
    r = await org.server.admin(
        "POST",
        f"/organizations/{org.org_id}/users/reset_totp",
        json={"user_email": org.alice.email},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user_id"] == org.alice.user_id.hex
    assert body["user_email"] == org.alice.email
    assert body["email_sent_status"] == "NOT_SENT_AS_REQUESTED"
    url = urlsplit(body["totp_reset_url"])
    assert url.scheme == "parsec3" and url.path == f"/{org.org_id}"
    assert parse_qs(url.query)["a"] == ["totp_reset"]
    http_url = urlsplit(body["totp_reset_url_as_http_redirection"])
    assert http_url.path == f"/redirect/{org.org_id}"
    token = _reset_token(body["totp_reset_url"], org.alice.user_id)
    assert _reset_token(body["totp_reset_url_as_http_redirection"], org.alice.user_id) == token

    fields = {"user_id": org.alice.user_id, "opaque_key_id": key["opaque_key_id"]}
    # Reset: no key can be fetched until TOTP is set up again; the throttle is cleared.
    assert await anon(
        org, "totp_fetch_opaque_key", one_time_password=code(old_secret), **fields
    ) == {"status": "invalid_one_time_password"}
    # Wrong token or user: bad_token.
    for uid, tok in ((org.alice.user_id, bytes(16)), (uuid.uuid4(), token)):
        assert await anon(org, "totp_setup_get_secret", user_id=uid, token=tok) == {
            "status": "bad_token"
        }
        assert await anon(
            org, "totp_setup_confirm", user_id=uid, token=tok, one_time_password="000000"
        ) == {"status": "bad_token"}
    rep = await anon(org, "totp_setup_get_secret", user_id=org.alice.user_id, token=token)
    assert rep["status"] == "ok" and rep["totp_secret"] != old_secret
    secret = rep["totp_secret"]
    assert await anon(
        org,
        "totp_setup_confirm",
        user_id=org.alice.user_id,
        token=token,
        one_time_password=wrong(secret),
    ) == {"status": "invalid_one_time_password"}
    assert await anon(
        org,
        "totp_setup_confirm",
        user_id=org.alice.user_id,
        token=token,
        one_time_password=code(secret),
    ) == {"status": "ok"}
    # The token is single-use.
    assert await anon(org, "totp_setup_get_secret", user_id=org.alice.user_id, token=token) == {
        "status": "bad_token"
    }
    rep = await anon(org, "totp_fetch_opaque_key", one_time_password=code(secret), **fields)
    assert rep == {"status": "ok", "opaque_key": key["opaque_key"]}


async def test_admin_reset_refusals(org: Org) -> None:
    path = f"/organizations/{org.org_id}/users/reset_totp"
    bob = await org.create_user("bob")
    await org.revoke(bob)
    cases: list[tuple[str, dict[str, Any], int, Any]] = [
        (path, {}, 400, "Missing either `user_id` or `user_email` field"),
        (
            path,
            {"user_id": org.alice.user_id.hex, "user_email": org.alice.email},
            400,
            "Both `user_id` and `user_email` fields are provided",
        ),
        (path, {"user_id": uuid.uuid4().hex}, 404, "User not found"),
        (path, {"user_email": "nobody@example.com"}, 404, "User not found"),
        (path, {"user_id": bob.user_id.hex}, 404, "User has been revoked"),
        (path, {"user_email": bob.email}, 404, "User not found"),
        (
            "/organizations/NoSuchOrg/users/reset_totp",
            {"user_id": bob.user_id.hex},
            404,
            "Organization not found",
        ),
    ]
    for p, body, status, detail in cases:
        r = await org.server.admin("POST", p, json=body)
        assert (r.status_code, r.json()["detail"]) == (status, detail), (body, r.text)
    for body in (
        {"user_id": "nope"},
        {"user_email": "not an email"},
        {"user_id": org.alice.user_id.hex, "send_email": "yes"},
    ):
        r = await org.server.admin("POST", path, json=body)
        assert r.status_code == 422, (body, r.text)
    r = await org.server.http.post(f"/administration{path}", json={"user_id": bob.user_id.hex})
    assert r.status_code == 403


async def test_anonymous_needs_bootstrapped_organization(org: Org) -> None:
    r = await org.server.admin(
        "POST", "/organizations", json={"organization_id": "NotBootstrapped"}
    )
    assert r.status_code == 200
    with pytest.raises(RpcError) as exc:
        await org.server.rpc(
            "/anonymous/NotBootstrapped",
            None,
            "totp_setup_get_secret",
            user_id=uuid.uuid4(),
            token=bytes(16),
        )
    assert http_status(exc.value) == 404


async def test_organization_deletion_takes_the_totp_rows(org: Org) -> None:
    from parsec_server.storage import operator

    await setup_totp(org, org.alice)
    await org.auth(org.alice, "totp_create_opaque_key")
    await org.server.admin(
        "POST",
        f"/organizations/{org.org_id}/users/reset_totp",
        json={"user_email": org.alice.email},
    )
    async with org.server.backend.db.transaction() as conn:
        org_internal_id = await conn.fetchval(
            "SELECT id FROM organization WHERE organization_id = $1", org.org_id
        )
        await operator.delete_organization(conn, org_internal_id)
        left = await conn.fetchval(
            "SELECT (SELECT count(*) FROM user_totp) + (SELECT count(*) FROM user_totp_opaque_key)"
        )
    assert left == 0


async def test_a_code_waits_for_a_concurrent_check_of_the_same_key(org: Org) -> None:
    """A code is checked under the key's row lock: a request arriving while another check of the
    same key is under way waits for its outcome (here a failure, so it is throttled) instead of
    reading the count before it and getting a guess of its own."""
    import asyncio

    secret = await setup_totp(org, org.alice)
    key = await org.auth(org.alice, "totp_create_opaque_key")
    fields = {"user_id": org.alice.user_id, "opaque_key_id": key["opaque_key_id"]}
    async with org.server.backend.db.transaction() as conn:
        await conn.execute(
            "SELECT 1 FROM user_totp_opaque_key WHERE opaque_key_id = $1 FOR UPDATE",
            key["opaque_key_id"],
        )
        request = asyncio.ensure_future(
            anon(org, "totp_fetch_opaque_key", one_time_password=wrong(secret), **fields)
        )
        await asyncio.sleep(0.5)
        assert not request.done()  # waiting for the lock
        await conn.execute(
            "UPDATE user_totp_opaque_key SET failed_attempts = 1, last_failed_attempt = now()"
            " WHERE opaque_key_id = $1",
            key["opaque_key_id"],
        )
    rep = await request
    assert rep["status"] == "throttled", rep
