"""The greeting protocol through the server: complete user and device greetings end to end, then
every rule (joining in any order, retries, cancellation, several greeters, step order, API revision,
410,
races)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import uuid
from dataclasses import dataclass
from typing import Any

import nacl.bindings
import nacl.public
import nacl.secret
import nacl.signing
import pytest
from invite_support import (  # noqa: F401
    Identity,
    Org,
    RpcError,
    claimer_step,
    greeter_step,
    http_status,
    new_identity,
    org_fixture,
    server_fixture,
    user_certificates,
)

from parsec_server.protocol.codec import packb, unpackb

# --- a claimer and a greeter, driven step by step -------------------------------------------------


@dataclass
class Side:
    """One side's ephemeral secrets (enough of a real client to check both ends agree)."""

    key: nacl.public.PrivateKey
    nonce: bytes
    peer_public: bytes = b""
    peer_nonce: bytes = b""

    @classmethod
    def new(cls) -> Side:
        return cls(nacl.public.PrivateKey.generate(), os.urandom(64))

    def box(self) -> nacl.secret.SecretBox:
        shared = nacl.bindings.crypto_scalarmult(bytes(self.key), self.peer_public)
        return nacl.secret.SecretBox(hashlib.sha256(b"greeting" + shared).digest())


def sas(shared_box: nacl.secret.SecretBox, claimer_nonce: bytes, greeter_nonce: bytes) -> str:
    digest = hmac.new(
        bytes(shared_box._key), claimer_nonce + greeter_nonce, hashlib.sha256
    ).digest()
    return digest[:4].hex()


async def g_step(
    org: Org, greeter: Identity, attempt: uuid.UUID, i: int, data: bytes | None = None
) -> dict[str, Any]:
    return await org.auth(
        greeter, "invite_greeter_step", greeting_attempt=attempt, greeter_step=greeter_step(i, data)
    )


async def c_step(
    org: Org, token: bytes, attempt: uuid.UUID, i: int, data: bytes | None = None
) -> dict[str, Any]:
    return await org.invited(
        token, "invite_claimer_step", greeting_attempt=attempt, claimer_step=claimer_step(i, data)
    )


async def exchange(
    org: Org,
    greeter: Identity,
    token: bytes,
    attempt: uuid.UUID,
    i: int,
    g_data: bytes | None,
    c_data: bytes | None,
    claimer_first: bool,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both sides post step i; the first one polls again once the other has answered. Returns
    (claimer step seen by the greeter, greeter step seen by the claimer)."""
    if claimer_first:
        assert await c_step(org, token, attempt, i, c_data) == {"status": "not_ready"}
        g = await g_step(org, greeter, attempt, i, g_data)
        c = await c_step(org, token, attempt, i, c_data)
    else:
        assert await g_step(org, greeter, attempt, i, g_data) == {"status": "not_ready"}
        c = await c_step(org, token, attempt, i, c_data)
        g = await g_step(org, greeter, attempt, i, g_data)
    assert g["status"] == "ok", g
    assert c["status"] == "ok", c
    return g["claimer_step"], c["greeter_step"]


async def run_greeting(
    org: Org,
    greeter: Identity,
    token: bytes,
    claimer_payload: dict[str, Any],
    greeter_payload: dict[str, Any],
    *,
    claimer_first: bool = True,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The whole greeting (steps 0-8). Returns (payload the greeter received, payload the claimer
    received)."""
    c_att = await org.invited(
        token, "invite_claimer_start_greeting_attempt", greeter=greeter.user_id
    )
    g_att = await org.auth(greeter, "invite_greeter_start_greeting_attempt", token=token)
    assert c_att["status"] == g_att["status"] == "ok"
    attempt = g_att["greeting_attempt"]
    assert c_att["greeting_attempt"] == attempt  # both joined the same attempt

    claimer, greeter_side = Side.new(), Side.new()
    # 0: public keys
    seen_by_g, seen_by_c = await exchange(
        org,
        greeter,
        token,
        attempt,
        0,
        bytes(greeter_side.key.public_key),
        bytes(claimer.key.public_key),
        claimer_first,
    )
    assert seen_by_g == claimer_step(0, bytes(claimer.key.public_key))
    assert seen_by_c == greeter_step(0, bytes(greeter_side.key.public_key))
    greeter_side.peer_public = seen_by_g["public_key"]
    claimer.peer_public = seen_by_c["public_key"]
    # 1: the claimer commits to its nonce
    hashed = hashlib.sha256(claimer.nonce).digest()
    seen_by_g, seen_by_c = await exchange(
        org, greeter, token, attempt, 1, None, hashed, claimer_first
    )
    assert seen_by_g == claimer_step(1, hashed) and seen_by_c == greeter_step(1)
    # 2: the greeter sends its nonce
    seen_by_g, seen_by_c = await exchange(
        org, greeter, token, attempt, 2, greeter_side.nonce, None, claimer_first
    )
    claimer.peer_nonce = seen_by_c["greeter_nonce"]
    # 3: the claimer reveals its nonce; the greeter checks the commitment
    seen_by_g, seen_by_c = await exchange(
        org, greeter, token, attempt, 3, None, claimer.nonce, claimer_first
    )
    greeter_side.peer_nonce = seen_by_g["claimer_nonce"]
    assert hashlib.sha256(greeter_side.peer_nonce).digest() == hashed
    # Both compute the same SAS codes (the users compare them out of band)
    assert sas(claimer.box(), claimer.nonce, claimer.peer_nonce) == sas(
        greeter_side.box(), greeter_side.peer_nonce, greeter_side.nonce
    )
    # 4, 5: trust
    for i in (4, 5):
        seen_by_g, seen_by_c = await exchange(
            org, greeter, token, attempt, i, None, None, claimer_first
        )
        assert seen_by_g == claimer_step(i) and seen_by_c == greeter_step(i)
    # 6: claimer payload, 7: greeter payload (encrypted with the shared key)
    sealed = claimer.box().encrypt(packb(claimer_payload))
    seen_by_g, _ = await exchange(org, greeter, token, attempt, 6, None, sealed, claimer_first)
    received_by_greeter = unpackb(greeter_side.box().decrypt(seen_by_g["claimer_payload"]))
    sealed = greeter_side.box().encrypt(packb(greeter_payload))
    _, seen_by_c = await exchange(org, greeter, token, attempt, 7, sealed, None, claimer_first)
    received_by_claimer = unpackb(claimer.box().decrypt(seen_by_c["greeter_payload"]))
    # 8: acknowledgment
    await exchange(org, greeter, token, attempt, 8, None, None, claimer_first)
    return received_by_greeter, received_by_claimer


# --- complete greetings ---------------------------------------------------------------------------


async def test_complete_user_greeting(org: Org) -> None:
    token = await org.invite_user("zack@example.com")
    info = await org.invited(token, "invite_info")
    assert info["type"] == "USER" and info["administrators"][0]["user_id"] == org.alice.user_id

    # The claimer's new identity, made on its machine; its public parts travel in the payload.
    zack = new_identity(org.org_id, "zack", "STANDARD")
    claimer_payload = {
        "public_key": bytes(zack.private_key.public_key),
        "verify_key": bytes(zack.signing_key.verify_key),
        "email": zack.email,
        "label": zack.label,
    }
    received, confirmation = await run_greeting(
        org,
        org.alice,
        token,
        claimer_payload,
        {"user_id": zack.user_id, "device_id": zack.device_id},
        claimer_first=True,
    )
    assert received == claimer_payload
    assert confirmation == {"user_id": zack.user_id, "device_id": zack.device_id}

    # The greeter creates the user from what it received, then completes the invitation.
    assert received["verify_key"] == bytes(zack.signing_key.verify_key)
    rep = await org.auth(
        org.alice, "user_create", **user_certificates(org.alice, None, zack, org.ts())
    )
    assert rep == {"status": "ok"}
    assert await org.auth(org.alice, "invite_complete", token=token) == {"status": "ok"}
    await org.server.wait_event(
        lambda e: e["type"] == "INVITATION" and e["invitation_status"] == "FINISHED"
    )

    # The new user works; the invitation token does not any more.
    assert (await org.auth(zack, "invite_list"))["status"] == "ok"
    with pytest.raises(RpcError) as exc:
        await org.invited(token, "invite_info")
    assert http_status(exc.value) == 410


async def test_complete_device_greeting(org: Org) -> None:
    bob = await org.create_user("bob")
    token = (await org.auth(bob, "invite_new_device", send_email=False))["token"]
    info = await org.invited(token, "invite_info")
    assert info["type"] == "DEVICE" and info["claimer_user_id"] == bob.user_id

    new_key = nacl.signing.SigningKey.generate()
    new_device_id = uuid.uuid4()
    received, confirmation = await run_greeting(
        org,
        bob,
        token,
        {"verify_key": bytes(new_key.verify_key), "label": "phone"},
        {"device_id": new_device_id},
        claimer_first=False,
    )
    assert received["verify_key"] == bytes(new_key.verify_key)
    assert confirmation == {"device_id": new_device_id}

    rep = await org.auth(
        bob,
        "device_create",
        **bob.device_certs(org.ts(), new_device_id, received["label"], received["verify_key"]),
    )
    assert rep == {"status": "ok"}
    assert await org.auth(bob, "invite_complete", token=token) == {"status": "ok"}
    bob_phone = Identity(**{**bob.__dict__, "device_id": new_device_id, "signing_key": new_key})
    assert (await org.auth(bob_phone, "invite_list"))["status"] == "ok"
    with pytest.raises(RpcError) as exc:
        await c_step(org, token, uuid.uuid4(), 0, bytes(32))
    assert http_status(exc.value) == 410


# --- attempts -------------------------------------------------------------------------------------


async def test_greeter_joins_first_then_claimer(org: Org) -> None:
    token = await org.invite_user()
    g = await org.auth(org.alice, "invite_greeter_start_greeting_attempt", token=token)
    c = await org.invited(token, "invite_claimer_start_greeting_attempt", greeter=org.alice.user_id)
    assert g["greeting_attempt"] == c["greeting_attempt"]


async def test_restarting_cancels_the_joined_attempt(org: Org) -> None:
    token = await org.invite_user()
    first = (await org.auth(org.alice, "invite_greeter_start_greeting_attempt", token=token))[
        "greeting_attempt"
    ]
    c = await org.invited(token, "invite_claimer_start_greeting_attempt", greeter=org.alice.user_id)
    assert c["greeting_attempt"] == first
    # The greeter starts again (e.g. its client restarted): the old attempt is cancelled for both.
    second = (await org.auth(org.alice, "invite_greeter_start_greeting_attempt", token=token))[
        "greeting_attempt"
    ]
    assert second != first
    rep = await c_step(org, token, first, 0, bytes(32))
    assert rep["status"] == "greeting_attempt_cancelled"
    assert rep["origin"] == "GREETER" and rep["reason"] == "AUTOMATICALLY_CANCELLED"
    # The claimer joins the new one.
    c = await org.invited(token, "invite_claimer_start_greeting_attempt", greeter=org.alice.user_id)
    assert c["greeting_attempt"] == second
    # ... and restarting on its side cancels it with the claimer as origin.
    third = (
        await org.invited(token, "invite_claimer_start_greeting_attempt", greeter=org.alice.user_id)
    )["greeting_attempt"]
    assert third != second
    rep = await g_step(org, org.alice, second, 0, bytes(32))
    assert (rep["status"], rep["origin"], rep["reason"]) == (
        "greeting_attempt_cancelled",
        "CLAIMER",
        "AUTOMATICALLY_CANCELLED",
    )


async def test_cancellation_reasons(org: Org) -> None:
    token = await org.invite_user()
    attempt = (await org.auth(org.alice, "invite_greeter_start_greeting_attempt", token=token))[
        "greeting_attempt"
    ]
    # The claimer has not joined this attempt yet.
    rep = await org.invited(
        token,
        "invite_claimer_cancel_greeting_attempt",
        greeting_attempt=attempt,
        reason="MANUALLY_CANCELLED",
    )
    assert rep == {"status": "greeting_attempt_not_joined"}
    await org.invited(token, "invite_claimer_start_greeting_attempt", greeter=org.alice.user_id)
    rep = await org.invited(
        token,
        "invite_claimer_cancel_greeting_attempt",
        greeting_attempt=attempt,
        reason="INVALID_SAS_CODE",
    )
    assert rep == {"status": "ok"}
    ev = await org.server.wait_event(lambda e: e["type"] == "GREETING_ATTEMPT_CANCELLED")
    assert ev["greeter"] == org.alice.user_id.hex and ev["greeting_attempt"] == attempt.hex
    rep = await g_step(org, org.alice, attempt, 0, bytes(32))
    assert (rep["status"], rep["origin"], rep["reason"]) == (
        "greeting_attempt_cancelled",
        "CLAIMER",
        "INVALID_SAS_CODE",
    )
    for rep in (
        await org.auth(
            org.alice,
            "invite_greeter_cancel_greeting_attempt",
            greeting_attempt=attempt,
            reason="MANUALLY_CANCELLED",
        ),
        await org.invited(
            token,
            "invite_claimer_cancel_greeting_attempt",
            greeting_attempt=attempt,
            reason="MANUALLY_CANCELLED",
        ),
    ):
        assert rep["status"] == "greeting_attempt_already_cancelled"
        assert rep["origin"] == "CLAIMER" and rep["reason"] == "INVALID_SAS_CODE"
        assert rep["timestamp"] is not None


async def test_greeter_cancel(org: Org) -> None:
    token = await org.invite_user()
    attempt = (
        await org.invited(token, "invite_claimer_start_greeting_attempt", greeter=org.alice.user_id)
    )["greeting_attempt"]
    rep = await org.auth(
        org.alice,
        "invite_greeter_cancel_greeting_attempt",
        greeting_attempt=attempt,
        reason="INVALID_NONCE_HASH",
    )
    assert rep == {"status": "greeting_attempt_not_joined"}
    await org.auth(org.alice, "invite_greeter_start_greeting_attempt", token=token)
    rep = await org.auth(
        org.alice,
        "invite_greeter_cancel_greeting_attempt",
        greeting_attempt=attempt,
        reason="INVALID_NONCE_HASH",
    )
    assert rep == {"status": "ok"}
    rep = await c_step(org, token, attempt, 0, bytes(32))
    assert (rep["status"], rep["origin"], rep["reason"]) == (
        "greeting_attempt_cancelled",
        "GREETER",
        "INVALID_NONCE_HASH",
    )
    unknown = uuid.uuid4()
    assert await org.auth(
        org.alice,
        "invite_greeter_cancel_greeting_attempt",
        greeting_attempt=unknown,
        reason="MANUALLY_CANCELLED",
    ) == {"status": "greeting_attempt_not_found"}
    assert await org.invited(
        token,
        "invite_claimer_cancel_greeting_attempt",
        greeting_attempt=unknown,
        reason="MANUALLY_CANCELLED",
    ) == {"status": "greeting_attempt_not_found"}


async def test_several_greeters(org: Org) -> None:
    adam = await org.create_user("adam", "ADMIN")
    token = await org.invite_user()
    with_alice = (
        await org.invited(token, "invite_claimer_start_greeting_attempt", greeter=org.alice.user_id)
    )["greeting_attempt"]
    with_adam = (
        await org.invited(token, "invite_claimer_start_greeting_attempt", greeter=adam.user_id)
    )["greeting_attempt"]
    assert with_alice != with_adam
    assert (await org.auth(adam, "invite_greeter_start_greeting_attempt", token=token))[
        "greeting_attempt"
    ] == with_adam
    # adam cannot act on alice's attempt
    assert await g_step(org, adam, with_alice, 0, bytes(32)) == {
        "status": "greeting_attempt_not_found"
    }
    assert await org.auth(
        adam,
        "invite_greeter_cancel_greeting_attempt",
        greeting_attempt=with_alice,
        reason="MANUALLY_CANCELLED",
    ) == {"status": "greeting_attempt_not_found"}
    # the two attempts are independent: alice not having joined hers does not matter to adam's
    assert await g_step(org, org.alice, with_alice, 0, bytes(32)) == {
        "status": "greeting_attempt_not_joined"
    }
    assert await c_step(org, token, with_adam, 0, bytes(32)) == {"status": "not_ready"}
    assert (await g_step(org, adam, with_adam, 0, bytes(range(32))))["status"] == "ok"
    # The first greeter to complete wins; the other attempt then sees a completed invitation.
    assert await org.auth(adam, "invite_complete", token=token) == {"status": "ok"}
    assert await org.auth(org.alice, "invite_greeter_start_greeting_attempt", token=token) == {
        "status": "invitation_completed"
    }
    assert await g_step(org, org.alice, with_alice, 0, bytes(32)) == {
        "status": "invitation_completed"
    }


# --- steps ----------------------------------------------------------------------------------------


async def joined_attempt(org: Org, token: bytes, greeter: Identity | None = None) -> uuid.UUID:
    greeter = greeter or org.alice
    await org.invited(token, "invite_claimer_start_greeting_attempt", greeter=greeter.user_id)
    attempt: uuid.UUID = (
        await org.auth(greeter, "invite_greeter_start_greeting_attempt", token=token)
    )["greeting_attempt"]
    return attempt


async def test_step_order_and_retries(org: Org) -> None:
    token = await org.invite_user()
    attempt = await joined_attempt(org, token)
    key_c, key_g = os.urandom(32), os.urandom(32)
    # Nothing done yet: step 1 is too advanced for both.
    assert await c_step(org, token, attempt, 1, os.urandom(32)) == {"status": "step_too_advanced"}
    assert await g_step(org, org.alice, attempt, 1) == {"status": "step_too_advanced"}
    assert await c_step(org, token, attempt, 0, key_c) == {"status": "not_ready"}
    # Polling again with the same step is fine; with other data it is a mismatch.
    assert await c_step(org, token, attempt, 0, key_c) == {"status": "not_ready"}
    assert await c_step(org, token, attempt, 0, os.urandom(32)) == {"status": "step_mismatch"}
    # The claimer may not go on before the greeter has done step 0.
    assert await c_step(org, token, attempt, 1, os.urandom(32)) == {"status": "step_too_advanced"}
    assert await g_step(org, org.alice, attempt, 0, key_g) == {
        "status": "ok",
        "claimer_step": claimer_step(0, key_c),
    }
    hashed = os.urandom(32)
    assert await c_step(org, token, attempt, 1, hashed) == {"status": "not_ready"}
    # Step 2 needs step 1 of both sides.
    assert await c_step(org, token, attempt, 2) == {"status": "step_too_advanced"}
    assert await g_step(org, org.alice, attempt, 2, b"n") == {"status": "step_too_advanced"}
    assert await g_step(org, org.alice, attempt, 1) == {
        "status": "ok",
        "claimer_step": claimer_step(1, hashed),
    }
    # An earlier step can be replayed (a client retrying after a lost reply).
    assert await c_step(org, token, attempt, 0, key_c) == {
        "status": "ok",
        "greeter_step": greeter_step(0, key_g),
    }
    assert await g_step(org, org.alice, attempt, 0, key_g) == {
        "status": "ok",
        "claimer_step": claimer_step(0, key_c),
    }
    assert await g_step(org, org.alice, attempt, 0, os.urandom(32)) == {"status": "step_mismatch"}


async def test_greeting_events(org: Org) -> None:
    token = await org.invite_user()
    attempt = await joined_attempt(org, token)
    assert await c_step(org, token, attempt, 0, bytes(32)) == {"status": "not_ready"}
    ready = await org.server.wait_event(lambda e: e["type"] == "GREETING_ATTEMPT_READY")
    assert ready["greeter"] == org.alice.user_id.hex and ready["token"] == token.hex()
    assert ready["greeting_attempt"] == attempt.hex
    assert (await g_step(org, org.alice, attempt, 0, bytes(32)))["status"] == "ok"
    joined = await org.server.wait_event(lambda e: e["type"] == "GREETING_ATTEMPT_JOINED")
    assert joined["greeter"] == org.alice.user_id.hex


async def test_steps_need_api_5_2(org: Org) -> None:
    token = await org.invite_user()
    server = org.server
    # Starting an attempt is fine with any 5.x client...
    rep = await server.rpc(
        f"/invited/{org.org_id}",
        token.hex(),
        "invite_claimer_start_greeting_attempt",
        api_version="5.1",
        greeter=org.alice.user_id,
    )
    attempt = rep["greeting_attempt"]
    await org.auth(org.alice, "invite_greeter_start_greeting_attempt", token=token)
    # ...but the steps changed in 5.2 (SAS code algorithm): older clients are refused with 422.
    for path, auth, cmd, field, step in (
        (
            f"/invited/{org.org_id}",
            token.hex(),
            "invite_claimer_step",
            "claimer_step",
            claimer_step(0, bytes(32)),
        ),
        (
            f"/authenticated/{org.org_id}",
            org.alice.token(),
            "invite_greeter_step",
            "greeter_step",
            greeter_step(0, bytes(32)),
        ),
    ):
        for version in ("5.0", "5.1"):
            with pytest.raises(RpcError) as exc:
                await server.rpc(
                    path, auth, cmd, api_version=version, greeting_attempt=attempt, **{field: step}
                )
            assert http_status(exc.value) == 422
        rep = await server.rpc(
            path, auth, cmd, api_version="5.2", greeting_attempt=attempt, **{field: step}
        )
        assert rep["status"] in ("ok", "not_ready")


# --- who may greet --------------------------------------------------------------------------------


async def test_claimer_chooses_a_valid_greeter(org: Org) -> None:
    bob = await org.create_user("bob")
    eve = await org.create_user("eve", "ADMIN")
    await org.revoke(eve)
    token = await org.invite_user()

    async def start(greeter: uuid.UUID) -> dict[str, Any]:
        return await org.invited(token, "invite_claimer_start_greeting_attempt", greeter=greeter)

    assert await start(uuid.uuid4()) == {"status": "greeter_not_found"}
    assert await start(eve.user_id) == {"status": "greeter_revoked"}
    assert await start(bob.user_id) == {"status": "greeter_not_allowed"}
    # bob cannot greet a user invitation either
    assert await org.auth(bob, "invite_greeter_start_greeting_attempt", token=token) == {
        "status": "author_not_allowed"
    }
    assert await org.auth(
        bob, "invite_greeter_start_greeting_attempt", token=uuid.uuid4().bytes
    ) == {"status": "invitation_not_found"}
    # Device invitation: only its user greets.
    device_token = (await org.auth(bob, "invite_new_device", send_email=False))["token"]
    assert await org.invited(
        device_token, "invite_claimer_start_greeting_attempt", greeter=org.alice.user_id
    ) == {"status": "greeter_not_allowed"}
    assert await org.auth(
        org.alice, "invite_greeter_start_greeting_attempt", token=device_token
    ) == {"status": "author_not_allowed"}


async def test_greeter_losing_rights_mid_greeting(org: Org) -> None:
    adam = await org.create_user("adam", "ADMIN")
    token = await org.invite_user()
    attempt = await joined_attempt(org, token, adam)
    await org.set_profile(adam, "STANDARD")
    assert await g_step(org, adam, attempt, 0, bytes(32)) == {"status": "author_not_allowed"}
    assert await c_step(org, token, attempt, 0, bytes(32)) == {"status": "greeter_not_allowed"}
    assert await org.invited(
        token,
        "invite_claimer_cancel_greeting_attempt",
        greeting_attempt=attempt,
        reason="MANUALLY_CANCELLED",
    ) == {"status": "greeter_not_allowed"}
    await org.revoke(adam)
    assert await c_step(org, token, attempt, 0, bytes(32)) == {"status": "greeter_revoked"}


async def test_cancelled_invitation_stops_greeting(org: Org) -> None:
    token = await org.invite_user()
    attempt = await joined_attempt(org, token)
    assert await org.auth(org.alice, "invite_cancel", token=token) == {"status": "ok"}
    assert await g_step(org, org.alice, attempt, 0, bytes(32)) == {"status": "invitation_cancelled"}
    assert await org.auth(org.alice, "invite_greeter_start_greeting_attempt", token=token) == {
        "status": "invitation_cancelled"
    }
    assert await org.auth(
        org.alice,
        "invite_greeter_cancel_greeting_attempt",
        greeting_attempt=attempt,
        reason="MANUALLY_CANCELLED",
    ) == {"status": "invitation_cancelled"}
    for cmd, fields in (
        (
            "invite_claimer_step",
            {"greeting_attempt": attempt, "claimer_step": claimer_step(0, bytes(32))},
        ),
        ("invite_claimer_start_greeting_attempt", {"greeter": org.alice.user_id}),
        (
            "invite_claimer_cancel_greeting_attempt",
            {"greeting_attempt": attempt, "reason": "MANUALLY_CANCELLED"},
        ),
        ("invite_info", {}),
    ):
        with pytest.raises(RpcError) as exc:
            await org.invited(token, cmd, **fields)
        assert http_status(exc.value) == 410, cmd


async def test_attempt_of_another_invitation_is_not_found(org: Org) -> None:
    token1 = await org.invite_user("one@example.com")
    token2 = await org.invite_user("two@example.com")
    attempt1 = await joined_attempt(org, token1)
    assert await c_step(org, token2, attempt1, 0, bytes(32)) == {
        "status": "greeting_attempt_not_found"
    }


# --- races ----------------------------------------------------------------------------------------


async def test_racing_greeters_and_steps_never_fail(org: Org) -> None:
    adam = await org.create_user("adam", "ADMIN")
    token = await org.invite_user()
    # Two greeters and the claimer all starting at once, repeatedly.
    calls = []
    for _ in range(4):
        calls += [
            org.auth(org.alice, "invite_greeter_start_greeting_attempt", token=token),
            org.auth(adam, "invite_greeter_start_greeting_attempt", token=token),
            org.invited(token, "invite_claimer_start_greeting_attempt", greeter=org.alice.user_id),
            org.invited(token, "invite_claimer_start_greeting_attempt", greeter=adam.user_id),
        ]
    reps = await asyncio.gather(*calls)
    assert {r["status"] for r in reps} == {"ok"}
    # Exactly one active attempt per greeter, and both sides end up able to finish step 0.
    attempt = await joined_attempt(org, token)
    key_c, key_g = bytes(range(32)), bytes(range(1, 33))
    reps = await asyncio.gather(
        *[c_step(org, token, attempt, 0, key_c) for _ in range(5)],
        *[g_step(org, org.alice, attempt, 0, key_g) for _ in range(5)],
    )
    assert {r["status"] for r in reps} <= {"ok", "not_ready"}
    assert (await c_step(org, token, attempt, 0, key_c))["greeter_step"] == greeter_step(0, key_g)
    # Completion racing with steps: each request sees either a live or a completed invitation.
    ended = await asyncio.gather(
        org.auth(org.alice, "invite_complete", token=token),
        g_step(org, org.alice, attempt, 1),
        g_step(org, org.alice, attempt, 1),
    )
    assert ended[0] == {"status": "ok"}
    assert {r["status"] for r in ended[1:]} <= {"not_ready", "invitation_completed"}
