"""invite_list's reply pinned byte for byte: every item kind (USER, DEVICE, SHAMIR_RECOVERY), every
status, both `created_by` variants, what an ADMIN and a STANDARD user each see.

The server builds these items directly in their wire order (storage/invite.py); the expected bytes
here are built independently: values read from the database, maps written in the order the
protocol's encoding gives (`status` first; in a struct union the discriminant first, then the
fields sorted by name).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import asyncpg
from invite_support import (  # noqa: F401 (fixtures)
    MSGPACK,
    Identity,
    Org,
    org_fixture,
    server_fixture,
)
from test_shamir import delete, setup

from parsec_server.protocol.codec import packb, unpackb
from parsec_server.protocol.registry import encode_rep


async def _raw_list(org: Org, who: Identity) -> bytes:
    r = await org.server.post(
        f"/authenticated/{org.org_id}",
        packb({"cmd": "invite_list"}),
        {"Api-Version": "5.5", "Content-Type": MSGPACK, "Authorization": f"Bearer {who.token()}"},
    )
    assert r.status_code == 200, r.text
    return r.content


def _by_user(who: Identity) -> dict[str, Any]:
    return {"type": "USER", "human_handle": [who.email, who.label], "user_id": who.user_id}


async def test_invite_list_reply_bytes(org: Org, db_url: str) -> None:
    alice = org.alice
    bob = await org.create_user("bob")
    carol = await org.create_user("carol")

    u_pending = await org.invite_user("u1@example.com")
    u_cancelled = await org.invite_user("u2@example.com")
    assert (await org.auth(alice, "invite_cancel", token=u_cancelled))["status"] == "ok"
    u_finished = await org.invite_user("u3@example.com")
    assert (await org.auth(alice, "invite_complete", token=u_finished))["status"] == "ok"
    d_alice = (await org.auth(alice, "invite_new_device", send_email=False))["token"]
    d_bob = (await org.auth(bob, "invite_new_device", send_email=False))["token"]
    # bob's setup: alice and carol hold the shares; carol's: alice and bob, deleted afterwards.
    rep, bob_setup_ts, _ = await setup(org, bob, [alice, carol])
    assert rep == {"status": "ok"}, rep
    rep, carol_setup_ts, _ = await setup(org, carol, [alice, bob])
    assert rep == {"status": "ok"}, rep
    s_bob = (
        await org.auth(
            alice, "invite_new_shamir_recovery", claimer_user_id=bob.user_id, send_email=False
        )
    )["token"]
    s_carol = (
        await org.auth(
            alice, "invite_new_shamir_recovery", claimer_user_id=carol.user_id, send_email=False
        )
    )["token"]
    assert (await delete(org, carol, carol_setup_ts, [alice, bob]))["status"] == "ok"
    # Made by an external service (as in an adopted official database; no command creates one).
    u_service = os.urandom(16)
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "INSERT INTO invitation (organization, token, type, created_on,"
            " created_by_service_label, claimer_email)"
            " SELECT id, $2, 'USER', now(), 'Acme SSO', 'u4@example.com'"
            " FROM organization WHERE organization_id = $1",
            org.org_id,
            u_service,
        )
        created: dict[bytes, datetime] = {
            bytes(r["token"]): r["created_on"]
            for r in await conn.fetch("SELECT token, created_on FROM invitation")
        }
    finally:
        await conn.close()

    def user_item(token: bytes, email: str, status: str, by: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "USER",
            "claimer_email": email,
            "created_by": by,
            "created_on": created[token],
            "status": status,
            "token": token,
        }

    def device_item(token: bytes, by: Identity) -> dict[str, Any]:
        return {
            "type": "DEVICE",
            "created_by": _by_user(by),
            "created_on": created[token],
            "status": "PENDING",
            "token": token,
        }

    def shamir_item(token: bytes, claimer: Identity, setup_ts: datetime, status: str) -> Any:
        return {
            "type": "SHAMIR_RECOVERY",
            "claimer_user_id": claimer.user_id,
            "created_by": _by_user(alice),
            "created_on": created[token],
            "shamir_recovery_created_on": setup_ts,
            "status": status,
            "token": token,
        }

    by_alice = _by_user(alice)
    alice_sees = [
        user_item(u_pending, "u1@example.com", "PENDING", by_alice),
        user_item(u_cancelled, "u2@example.com", "CANCELLED", by_alice),
        user_item(u_finished, "u3@example.com", "FINISHED", by_alice),
        device_item(d_alice, alice),
        shamir_item(s_bob, bob, bob_setup_ts, "PENDING"),
        shamir_item(s_carol, carol, carol_setup_ts, "CANCELLED"),
        user_item(
            u_service,
            "u4@example.com",
            "PENDING",
            {"type": "EXTERNAL_SERVICE", "service_label": "Acme SSO"},
        ),
    ]
    raw = await _raw_list(org, alice)
    assert raw == packb({"status": "ok", "invitations": alice_sees})
    # The same bytes as the generic encoder gives for the decoded reply (canonical order).
    assert encode_rep(unpackb(raw)) == raw

    # bob (STANDARD): no USER invitation; his own device; carol's recovery (he holds a share).
    raw = await _raw_list(org, bob)
    bob_sees = [device_item(d_bob, bob), shamir_item(s_carol, carol, carol_setup_ts, "CANCELLED")]
    assert raw == packb({"status": "ok", "invitations": bob_sees})
    # carol: a share of bob's setup only, and no device invitation.
    raw = await _raw_list(org, carol)
    assert raw == packb(
        {"status": "ok", "invitations": [shamir_item(s_bob, bob, bob_setup_ts, "PENDING")]}
    )


async def test_invite_list_empty(org: Org) -> None:
    assert await _raw_list(org, org.alice) == packb({"status": "ok", "invitations": []})
