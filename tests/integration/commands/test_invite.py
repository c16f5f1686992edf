"""Invitations: creation, reuse, listing, cancel/complete, invite_info, handshake, events."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from invite_support import (  # noqa: F401 (fixtures)
    MSGPACK,
    Org,
    RpcError,
    bootstrap_org,
    http_status,
    org_fixture,
    server_fixture,
)

from parsec_server.protocol.codec import packb


def invitation_events(org: Org, token: bytes) -> list[dict[str, Any]]:
    return [e for e in org.server.events if e["type"] == "INVITATION" and e["token"] == token.hex()]


async def wait_invitation_event(org: Org, token: bytes, status: str) -> dict[str, Any]:
    return await org.server.wait_event(
        lambda e: (
            e["type"] == "INVITATION"
            and e["token"] == token.hex()
            and e["invitation_status"] == status
        )
    )


# --- invite_new_user ------------------------------------------------------------------------------


async def test_invite_new_user_creates_then_reuses_pending_invitation(org: Org) -> None:
    rep = await org.auth(
        org.alice, "invite_new_user", claimer_email="zack@example.com", send_email=False
    )
    assert rep["status"] == "ok"
    assert len(rep["token"]) == 16
    assert rep["email_sent"] == "SUCCESS"  # nothing to send, nothing failed
    again = await org.auth(
        org.alice, "invite_new_user", claimer_email="zack@example.com", send_email=False
    )
    assert again["token"] == rep["token"]
    other = await org.auth(
        org.alice, "invite_new_user", claimer_email="yann@example.com", send_email=False
    )
    assert other["token"] != rep["token"]
    # Both creations notify the administrators, the reuse too.
    await wait_invitation_event(org, rep["token"], "PENDING")
    ev = await wait_invitation_event(org, other["token"], "PENDING")
    assert ev["to_admins"] is True
    await org.server.wait_event(lambda e: len(invitation_events(org, rep["token"])) == 2)


async def test_invite_new_user_needs_admin(org: Org) -> None:
    bob = await org.create_user("bob", "STANDARD")
    mallory = await org.create_user("mallory", "OUTSIDER")
    for who in (bob, mallory):
        rep = await org.auth(
            who, "invite_new_user", claimer_email="zack@example.com", send_email=False
        )
        assert rep == {"status": "author_not_allowed"}


async def test_invite_new_user_refuses_enrolled_email_but_not_revoked_one(org: Org) -> None:
    bob = await org.create_user("bob")
    rep = await org.auth(org.alice, "invite_new_user", claimer_email=bob.email, send_email=False)
    assert rep == {"status": "claimer_email_already_enrolled"}
    await org.revoke(bob)
    rep = await org.auth(org.alice, "invite_new_user", claimer_email=bob.email, send_email=False)
    assert rep["status"] == "ok"


async def test_invite_new_user_without_email_server_reports_it(org: Org) -> None:
    rep = await org.auth(
        org.alice, "invite_new_user", claimer_email="zack@example.com", send_email=True
    )
    assert rep["status"] == "ok"
    assert rep["email_sent"] == "SERVER_UNAVAILABLE"


async def test_concurrent_invitations_for_one_email_share_a_token(org: Org) -> None:
    reps = await asyncio.gather(
        *[
            org.auth(
                org.alice, "invite_new_user", claimer_email="zack@example.com", send_email=False
            )
            for _ in range(8)
        ]
    )
    assert {r["status"] for r in reps} == {"ok"}
    assert len({r["token"] for r in reps}) == 1


# --- invite_new_device ----------------------------------------------------------------------------


async def test_invite_new_device_for_any_user(org: Org) -> None:
    mallory = await org.create_user("mallory", "OUTSIDER")
    rep = await org.auth(mallory, "invite_new_device", send_email=False)
    assert rep["status"] == "ok" and rep["email_sent"] == "SUCCESS"
    again = await org.auth(mallory, "invite_new_device", send_email=False)
    assert again["token"] == rep["token"]
    ev = await wait_invitation_event(org, rep["token"], "PENDING")
    assert ev["greeters"] == [mallory.user_id.hex]
    alice_rep = await org.auth(org.alice, "invite_new_device", send_email=True)
    assert alice_rep["token"] != rep["token"]
    assert alice_rep["email_sent"] == "SERVER_UNAVAILABLE"


# --- invite_list ----------------------------------------------------------------------------------


async def test_invite_list_shows_what_each_user_may_greet(org: Org) -> None:
    bob = await org.create_user("bob")
    u1 = await org.invite_user("u1@example.com")
    d_alice = (await org.auth(org.alice, "invite_new_device", send_email=False))["token"]
    d_bob = (await org.auth(bob, "invite_new_device", send_email=False))["token"]
    u2 = await org.invite_user("u2@example.com")
    assert (await org.auth(org.alice, "invite_cancel", token=u2))["status"] == "ok"

    alice_list = (await org.auth(org.alice, "invite_list"))["invitations"]
    assert [i["token"] for i in alice_list] == [u1, d_alice, u2]  # oldest first; not bob's device
    first = alice_list[0]
    assert (
        first["type"] == "USER"
        and first["claimer_email"] == "u1@example.com"
        and first["status"] == "PENDING"
    )
    assert first["created_by"] == {
        "type": "USER",
        "user_id": org.alice.user_id,
        "human_handle": [org.alice.email, org.alice.label],
    }
    assert alice_list[1]["type"] == "DEVICE" and "claimer_email" not in alice_list[1]
    assert alice_list[2]["status"] == "CANCELLED"

    bob_list = (await org.auth(bob, "invite_list"))["invitations"]
    assert [(i["type"], i["token"]) for i in bob_list] == [("DEVICE", d_bob)]


async def test_invite_list_follows_current_profile(org: Org) -> None:
    bob = await org.create_user("bob")
    token = await org.invite_user("z@example.com")
    assert (await org.auth(bob, "invite_list"))["invitations"] == []
    await org.set_profile(bob, "ADMIN")
    assert [i["token"] for i in (await org.auth(bob, "invite_list"))["invitations"]] == [token]


# --- invite_cancel / invite_complete --------------------------------------------------------------


async def test_cancel_then_complete(org: Org) -> None:
    token = await org.invite_user("z@example.com")
    assert await org.auth(org.alice, "invite_cancel", token=uuid.uuid4().bytes) == {
        "status": "invitation_not_found"
    }
    assert await org.auth(org.alice, "invite_cancel", token=token) == {"status": "ok"}
    await wait_invitation_event(org, token, "CANCELLED")
    assert await org.auth(org.alice, "invite_cancel", token=token) == {
        "status": "invitation_already_cancelled"
    }
    assert await org.auth(org.alice, "invite_complete", token=token) == {
        "status": "invitation_cancelled"
    }
    # A new invitation for the same email is a new token.
    again = await org.auth(
        org.alice, "invite_new_user", claimer_email="z@example.com", send_email=False
    )
    assert again["token"] != token


async def test_complete_then_cancel(org: Org) -> None:
    token = await org.invite_user("z@example.com")
    assert await org.auth(org.alice, "invite_complete", token=uuid.uuid4().bytes) == {
        "status": "invitation_not_found"
    }
    assert await org.auth(org.alice, "invite_complete", token=token) == {"status": "ok"}
    await wait_invitation_event(org, token, "FINISHED")
    assert await org.auth(org.alice, "invite_complete", token=token) == {
        "status": "invitation_already_completed"
    }
    assert await org.auth(org.alice, "invite_cancel", token=token) == {
        "status": "invitation_completed"
    }


async def test_who_may_cancel_or_complete(org: Org) -> None:
    bob = await org.create_user("bob")
    carol = await org.create_user("carol")
    user_token = await org.invite_user("z@example.com")
    device_token = (await org.auth(bob, "invite_new_device", send_email=False))["token"]
    # A standard user is neither greeter nor claimer of a user invitation, nor of bob's device.
    for cmd in ("invite_cancel", "invite_complete"):
        assert await org.auth(carol, cmd, token=user_token) == {"status": "author_not_allowed"}
        assert await org.auth(carol, cmd, token=device_token) == {"status": "author_not_allowed"}
        assert await org.auth(org.alice, cmd, token=device_token) == {
            "status": "author_not_allowed"
        }
    # The claimer himself may (here bob, for his device invitation; bob's other device too).
    bob2 = await org.create_device(bob)
    assert await org.auth(bob2, "invite_complete", token=device_token) == {"status": "ok"}
    # An admin promoted later may cancel a user invitation.
    await org.set_profile(carol, "ADMIN")
    assert await org.auth(carol, "invite_cancel", token=user_token) == {"status": "ok"}


async def test_user_invitation_claimer_may_end_it_with_his_email(org: Org) -> None:
    token = await org.invite_user("zack@example.com")
    zack = await org.create_user("zack")  # created outside the invitation: same email
    assert await org.auth(zack, "invite_complete", token=token) == {"status": "ok"}


# --- invited side ---------------------------------------------------------------------------------


async def test_invited_handshake(org: Org) -> None:
    token = await org.invite_user("z@example.com")
    server = org.server
    body = packb({"cmd": "invite_info"})

    async def post(auth: str | None, org_id: str = org.org_id) -> int:
        headers = {"Api-Version": "5.5", "Content-Type": MSGPACK}
        if auth is not None:
            headers["Authorization"] = auth
        return (await server.post(f"/invited/{org_id}", body, headers)).status_code

    assert await post(f"Bearer {token.hex()}") == 200
    assert await post(None) == 401
    assert await post("Bearer not-hex") == 401
    assert await post(f"Bearer {token.hex()[:-2]}") == 401
    assert await post(f"Bearer {uuid.uuid4().hex}") == 403
    assert await post(f"Bearer {token.hex()}", "UnknownOrg") == 404
    # Another organization does not know this token.
    other = await bootstrap_org(server)
    assert await post(f"Bearer {token.hex()}", other.org_id) == 403
    assert (await org.auth(org.alice, "invite_complete", token=token))["status"] == "ok"
    assert await post(f"Bearer {token.hex()}") == 410


async def test_invite_info_user(org: Org) -> None:
    adam = await org.create_user("adam", "ADMIN")
    bob = await org.create_user("bob", "STANDARD")
    revoked_admin = await org.create_user("eve", "ADMIN")
    await org.revoke(revoked_admin)
    token = await org.invite_user("z@example.com")
    rep = await org.invited(token, "invite_info")
    assert rep["status"] == "ok" and rep["type"] == "USER"
    assert rep["claimer_email"] == "z@example.com"
    assert rep["created_by"] == {
        "type": "USER",
        "user_id": org.alice.user_id,
        "human_handle": [org.alice.email, org.alice.label],
    }
    admins = rep["administrators"]
    assert [a["user_id"] for a in admins] == [
        adam.user_id,
        org.alice.user_id,
    ]  # by label; no bob, no eve
    assert all(
        a["online_status"] == "UNKNOWN" and a["last_greeting_attempt_joined_on"] is None
        for a in admins
    )
    assert bob.user_id not in {a["user_id"] for a in admins}
    # Once adam joins a greeting attempt, the claimer sees it.
    assert (await org.auth(adam, "invite_greeter_start_greeting_attempt", token=token))[
        "status"
    ] == "ok"
    admins = (await org.invited(token, "invite_info"))["administrators"]
    joined = {a["user_id"]: a["last_greeting_attempt_joined_on"] for a in admins}
    assert joined[adam.user_id] is not None and joined[org.alice.user_id] is None


async def test_invite_info_device(org: Org) -> None:
    bob = await org.create_user("bob")
    token = (await org.auth(bob, "invite_new_device", send_email=False))["token"]
    rep = await org.invited(token, "invite_info")
    assert rep == {
        "status": "ok",
        "type": "DEVICE",
        "claimer_user_id": bob.user_id,
        "claimer_human_handle": [bob.email, bob.label],
        "created_by": {
            "type": "USER",
            "user_id": bob.user_id,
            "human_handle": [bob.email, bob.label],
        },
    }


async def test_bad_requests_are_415_not_500(org: Org) -> None:
    server = org.server
    headers = {
        "Api-Version": "5.5",
        "Content-Type": MSGPACK,
        "Authorization": f"Bearer {org.alice.token()}",
    }
    for body in (
        packb({"cmd": "invite_new_user", "claimer_email": "not an email", "send_email": False}),
        packb({"cmd": "invite_new_user", "claimer_email": "z@example.com"}),
        packb({"cmd": "invite_cancel", "token": b"short"}),
        packb(
            {"cmd": "invite_new_shamir_recovery", "claimer_user_id": "nope", "send_email": False}
        ),
    ):
        r = await server.post(
            f"/authenticated/{org.org_id}",
            body,
            {**headers, "Authorization": f"Bearer {org.alice.token()}"},
        )
        assert r.status_code == 415, body


async def test_revoked_author_is_refused(org: Org) -> None:
    bob = await org.create_user("bob", "ADMIN")
    await org.revoke(bob)
    with pytest.raises(RpcError) as exc:
        await org.auth(bob, "invite_new_device", send_email=False)
    assert http_status(exc.value) == 461
