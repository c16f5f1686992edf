"""Shamir recovery: setup, deletion, certificates, recoveries greeted by the share holders."""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta
from typing import Any

import nacl.signing
import pytest
from invite_support import (  # noqa: F401 (fixtures)
    Identity,
    Org,
    RpcError,
    claimer_step,
    greeter_step,
    http_status,
    org_fixture,
    server_fixture,
)

from parsec_server.protocol.codec import now
from parsec_server.storage import certificate as certificate_storage
from parsec_server.storage import shamir as shamir_storage


def brief(
    author: Identity,
    ts: datetime,
    shares: dict[uuid.UUID, int],
    threshold: int = 1,
    user_id: uuid.UUID | None = None,
) -> bytes:
    return author.sign(
        {
            "type": "shamir_recovery_brief_certificate",
            "timestamp": ts,
            "user_id": user_id or author.user_id,
            "threshold": threshold,
            "per_recipient_shares": shares,
        }
    )


def share(
    author: Identity, ts: datetime, recipient: uuid.UUID, user_id: uuid.UUID | None = None
) -> bytes:
    return author.sign(
        {
            "type": "shamir_recovery_share_certificate",
            "timestamp": ts,
            "user_id": user_id or author.user_id,
            "recipient": recipient,
            "ciphered_share": b"share-for-" + recipient.bytes,
        }
    )


def deletion(
    author: Identity,
    ts: datetime,
    setup_ts: datetime,
    recipients: list[uuid.UUID],
    user_id: uuid.UUID | None = None,
) -> bytes:
    return author.sign(
        {
            "type": "shamir_recovery_deletion_certificate",
            "timestamp": ts,
            "setup_to_delete_timestamp": setup_ts,
            "setup_to_delete_user_id": user_id or author.user_id,
            "share_recipients": recipients,
        }
    )


async def setup(
    org: Org,
    author: Identity,
    recipients: list[Identity],
    *,
    ts: datetime | None = None,
    reveal_token: bytes | None = None,
    **override: Any,
) -> tuple[dict[str, Any], datetime, bytes]:
    ts = ts or org.ts()
    reveal_token = reveal_token or os.urandom(16)
    fields = {
        "ciphered_data": b"ciphered-device-keys",
        "reveal_token": reveal_token,
        "shamir_recovery_brief_certificate": brief(
            author, ts, {r.user_id: 1 for r in recipients}, threshold=min(2, len(recipients) or 1)
        ),
        "shamir_recovery_share_certificates": [share(author, ts, r.user_id) for r in recipients],
    }
    fields.update(override)
    return await org.auth(author, "shamir_recovery_setup", **fields), ts, reveal_token


async def delete(
    org: Org,
    author: Identity,
    setup_ts: datetime,
    recipients: list[Identity],
    ts: datetime | None = None,
) -> dict[str, Any]:
    cert = deletion(author, ts or org.ts(), setup_ts, [r.user_id for r in recipients])
    return await org.auth(
        author, "shamir_recovery_delete", shamir_recovery_deletion_certificate=cert
    )


async def shamir_certificates(
    org: Org, who: Identity, after: datetime | None = None
) -> list[bytes]:
    rep = await org.auth(
        who,
        "certificate_get",
        common_after=None,
        sequester_after=None,
        shamir_recovery_after=after,
        realm_after={},
    )
    assert rep["status"] == "ok"
    certs: list[bytes] = rep["shamir_recovery_certificates"]
    return certs


@pytest.fixture
async def people(org: Org) -> tuple[Identity, Identity, Identity]:
    return (
        await org.create_user("bob"),
        await org.create_user("carol"),
        await org.create_user("dave"),
    )


# --- setup ----------------------------------------------------------------------------------------


async def test_setup_and_certificates(org: Org, people: tuple[Identity, ...]) -> None:
    bob, carol, dave = people
    rep, ts, _ = await setup(org, org.alice, [bob, carol])
    assert rep == {"status": "ok"}
    # Owner: the brief only; each recipient: the brief then its own share; others: nothing.
    alice_certs = await shamir_certificates(org, org.alice)
    assert len(alice_certs) == 1
    bob_certs = await shamir_certificates(org, bob)
    carol_certs = await shamir_certificates(org, carol)
    assert len(bob_certs) == len(carol_certs) == 2
    assert bob_certs[0] == carol_certs[0] == alice_certs[0]
    assert bob_certs[1] != carol_certs[1]
    assert b"share-for-" + bob.user_id.bytes in _content(bob_certs[1])
    assert await shamir_certificates(org, dave) == []
    assert await shamir_certificates(org, bob, after=ts) == []
    assert len(await shamir_certificates(org, bob, after=ts - timedelta(microseconds=1))) == 2
    assert b"shamir_recovery_brief_certificate" in _content(alice_certs[0])
    # The storage function certificate_get relies on gives the same view.
    async with org.server.backend.db.connection() as conn:
        users = await shamir_storage.find_users(conn, await _org_internal_id(org), [bob.user_id])
        found = await certificate_storage.get(
            conn, await _org_internal_id(org), users[bob.user_id].internal_id, None, None, None, {}
        )
        assert found.shamir_recovery == bob_certs


def _content(cert: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj().decompress(cert[65:])


async def _org_internal_id(org: Org) -> int:
    async with org.server.backend.db.connection() as conn:
        value: int = await conn.fetchval(
            "SELECT id FROM organization WHERE organization_id = $1", org.org_id
        )
    return value


async def test_setup_refusals(org: Org, people: tuple[Identity, ...]) -> None:
    bob, carol, dave = people
    alice = org.alice
    ts = org.ts()
    other_key = nacl.signing.SigningKey.generate()
    forged = Identity(**{**alice.__dict__, "signing_key": other_key})
    shares = [share(alice, ts, bob.user_id), share(alice, ts, carol.user_id)]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"shamir_recovery_brief_certificate": b"garbage"}, "invalid_certificate_brief_corrupted"),
        (
            {"shamir_recovery_brief_certificate": brief(forged, ts, {bob.user_id: 1})},
            "invalid_certificate_brief_corrupted",
        ),
        (
            {
                "shamir_recovery_brief_certificate": brief(
                    alice, ts, {bob.user_id: 1}, user_id=bob.user_id
                ),
                "shamir_recovery_share_certificates": shares[:1],
            },
            "invalid_certificate_user_id_must_be_self",
        ),
        (
            {
                "shamir_recovery_brief_certificate": brief(
                    alice, ts, {bob.user_id: 1, carol.user_id: 1}
                ),
                "shamir_recovery_share_certificates": shares[:1],
            },
            "invalid_certificate_missing_share_for_recipient",
        ),
        (
            {
                "shamir_recovery_brief_certificate": brief(
                    alice, ts, {bob.user_id: 1, carol.user_id: 1}
                ),
                "shamir_recovery_share_certificates": [shares[0], b"garbage"],
            },
            "invalid_certificate_share_corrupted",
        ),
        (
            {
                "shamir_recovery_brief_certificate": brief(
                    alice, ts, {bob.user_id: 1, carol.user_id: 1}
                ),
                "shamir_recovery_share_certificates": [
                    shares[0],
                    share(alice, ts + timedelta(seconds=1), carol.user_id),
                ],
            },
            "invalid_certificate_share_inconsistent_timestamp",
        ),
        (
            {
                "shamir_recovery_brief_certificate": brief(
                    alice, ts, {bob.user_id: 1, carol.user_id: 1}
                ),
                "shamir_recovery_share_certificates": [shares[0], share(alice, ts, dave.user_id)],
            },
            "invalid_certificate_share_recipient_not_in_brief",
        ),
        (
            {
                "shamir_recovery_brief_certificate": brief(
                    alice, ts, {bob.user_id: 1, carol.user_id: 1}
                ),
                "shamir_recovery_share_certificates": [shares[0], shares[0]],
            },
            "invalid_certificate_duplicate_share_for_recipient",
        ),
        (
            {
                "shamir_recovery_brief_certificate": brief(
                    alice, ts, {bob.user_id: 1, alice.user_id: 1}
                ),
                "shamir_recovery_share_certificates": [shares[0], share(alice, ts, alice.user_id)],
            },
            "invalid_certificate_author_included_as_recipient",
        ),
    ]
    for override, status in cases:
        rep, _, _ = await setup(org, alice, [bob, carol], ts=ts, **override)
        assert rep["status"] == status, (status, rep)

    unknown = Identity(**{**bob.__dict__, "user_id": uuid.uuid4()})
    rep, _, _ = await setup(org, alice, [bob, unknown])
    assert rep == {"status": "recipient_not_found"}

    await org.revoke(dave)
    revoked_on = org.last_ts
    rep, _, _ = await setup(org, alice, [bob, dave])
    assert rep == {"status": "revoked_recipient", "last_common_certificate_timestamp": revoked_on}

    old = now() - timedelta(minutes=10)
    rep, _, _ = await setup(org, alice, [bob], ts=old)
    assert rep["status"] == "timestamp_out_of_ballpark"
    assert rep["client_timestamp"] == old
    assert (rep["ballpark_client_early_offset"], rep["ballpark_client_late_offset"]) == (
        300.0,
        320.0,
    )

    # Causality: strictly after the last common certificate (dave's revocation).
    rep, _, _ = await setup(org, alice, [bob], ts=revoked_on)
    assert rep == {"status": "require_greater_timestamp", "strictly_greater_than": revoked_on}


async def test_one_active_setup_per_user(org: Org, people: tuple[Identity, ...]) -> None:
    bob, carol, _ = people
    rep, ts, _ = await setup(org, org.alice, [bob])
    assert rep == {"status": "ok"}
    # An already existing setup wins over anything else (even a corrupted request).
    rep, _, _ = await setup(org, org.alice, [carol], shamir_recovery_brief_certificate=b"garbage")
    assert rep == {
        "status": "shamir_recovery_already_exists",
        "last_shamir_certificate_timestamp": ts,
    }
    # Other users are independent; their timestamps must follow the shamir topic.
    rep, _, _ = await setup(org, bob, [carol], ts=ts)
    assert rep == {"status": "require_greater_timestamp", "strictly_greater_than": ts}
    rep, _, _ = await setup(org, bob, [carol])
    assert rep == {"status": "ok"}
    # A reveal token is never reused.
    assert (await delete(org, org.alice, ts, [bob]))["status"] == "ok"
    rep, _, token = await setup(org, carol, [bob])
    assert rep == {"status": "ok"}
    assert (await delete(org, org.alice, ts, [bob]))["status"] == "shamir_recovery_already_deleted"
    rep, _, _ = await setup(org, org.alice, [carol], reveal_token=token)
    assert rep["status"] == "shamir_recovery_already_exists"


# --- delete ---------------------------------------------------------------------------------------


async def test_delete(org: Org, people: tuple[Identity, ...]) -> None:
    bob, carol, dave = people
    rep, ts, _ = await setup(org, org.alice, [bob, carol])
    assert rep == {"status": "ok"}
    assert await org.auth(
        org.alice, "shamir_recovery_delete", shamir_recovery_deletion_certificate=b"x"
    ) == {"status": "invalid_certificate_corrupted"}
    cert = deletion(bob, org.ts(), ts, [bob.user_id, carol.user_id], user_id=org.alice.user_id)
    assert await org.auth(
        bob, "shamir_recovery_delete", shamir_recovery_deletion_certificate=cert
    ) == {"status": "invalid_certificate_user_id_must_be_self"}
    assert await delete(org, org.alice, ts + timedelta(microseconds=1), [bob, carol]) == {
        "status": "shamir_recovery_not_found"
    }
    assert await delete(org, org.alice, ts, [bob]) == {"status": "recipients_mismatch"}
    assert await delete(org, org.alice, ts, [bob, carol, dave]) == {"status": "recipients_mismatch"}
    old = now() - timedelta(minutes=10)
    assert (await delete(org, org.alice, ts, [bob, carol], ts=old))[
        "status"
    ] == "timestamp_out_of_ballpark"
    assert await delete(org, org.alice, ts, [bob, carol], ts=ts) == {
        "status": "require_greater_timestamp",
        "strictly_greater_than": ts,
    }
    deleted_ts = org.ts()
    assert await delete(org, org.alice, ts, [bob, carol], ts=deleted_ts) == {"status": "ok"}
    assert await delete(org, org.alice, ts, [bob, carol]) == {
        "status": "shamir_recovery_already_deleted",
        "last_shamir_certificate_timestamp": deleted_ts,
    }
    # The deletion certificate reaches the owner and the recipients, after the brief.
    assert len(await shamir_certificates(org, org.alice)) == 2
    assert len(await shamir_certificates(org, bob)) == 3
    assert len(await shamir_certificates(org, bob, after=ts)) == 1
    # A new setup is possible again.
    rep, _, _ = await setup(org, org.alice, [dave])
    assert rep == {"status": "ok"}


# --- recovery -------------------------------------------------------------------------------------


async def test_recovery_invitation_and_reveal(org: Org, people: tuple[Identity, ...]) -> None:
    bob, carol, dave = people
    alice = org.alice
    assert await org.auth(
        bob, "invite_new_shamir_recovery", claimer_user_id=alice.user_id, send_email=False
    ) == {"status": "author_not_allowed"}  # no setup yet
    rep, setup_ts, reveal_token = await setup(org, alice, [bob, carol])
    assert rep == {"status": "ok"}
    assert await org.auth(
        bob, "invite_new_shamir_recovery", claimer_user_id=uuid.uuid4(), send_email=False
    ) == {"status": "user_not_found"}
    assert await org.auth(
        dave, "invite_new_shamir_recovery", claimer_user_id=alice.user_id, send_email=False
    ) == {"status": "author_not_allowed"}  # not a recipient
    rep = await org.auth(
        bob, "invite_new_shamir_recovery", claimer_user_id=alice.user_id, send_email=False
    )
    assert rep["status"] == "ok" and rep["email_sent"] == "SUCCESS"
    token = rep["token"]
    again = await org.auth(
        carol, "invite_new_shamir_recovery", claimer_user_id=alice.user_id, send_email=False
    )
    assert again["token"] == token  # one pending recovery invitation per setup
    ev = await org.server.wait_event(
        lambda e: e["type"] == "INVITATION" and e["token"] == token.hex()
    )
    assert sorted(ev["greeters"]) == sorted([bob.user_id.hex, carol.user_id.hex])

    # Listing: recipients see it, others do not.
    for who, visible in ((bob, True), (carol, True), (dave, False), (alice, False)):
        items = [
            i
            for i in (await org.auth(who, "invite_list"))["invitations"]
            if i["type"] == "SHAMIR_RECOVERY"
        ]
        assert bool(items) == visible
        if visible:
            assert items[0]["claimer_user_id"] == alice.user_id
            assert items[0]["shamir_recovery_created_on"] == setup_ts

    info = await org.invited(token, "invite_info")
    assert info["type"] == "SHAMIR_RECOVERY"
    assert info["claimer_user_id"] == alice.user_id
    assert info["claimer_human_handle"] == [alice.email, alice.label]
    assert info["shamir_recovery_created_on"] == setup_ts
    assert info["threshold"] == 2
    assert [
        (r["user_id"], r["shares"], r["revoked_on"], r["online_status"]) for r in info["recipients"]
    ] == [(bob.user_id, 1, None, "UNKNOWN"), (carol.user_id, 1, None, "UNKNOWN")]
    assert info["created_by"]["user_id"] == bob.user_id

    # Only the recipients greet.
    assert await org.invited(
        token, "invite_claimer_start_greeting_attempt", greeter=dave.user_id
    ) == {"status": "greeter_not_allowed"}
    assert await org.auth(dave, "invite_greeter_start_greeting_attempt", token=token) == {
        "status": "author_not_allowed"
    }
    attempt = (
        await org.invited(token, "invite_claimer_start_greeting_attempt", greeter=bob.user_id)
    )["greeting_attempt"]
    assert (await org.auth(bob, "invite_greeter_start_greeting_attempt", token=token))[
        "greeting_attempt"
    ] == attempt
    key = os.urandom(32)
    assert (
        await org.invited(
            token,
            "invite_claimer_step",
            greeting_attempt=attempt,
            claimer_step=claimer_step(0, key),
        )
    )["status"] == "not_ready"
    rep = await org.auth(
        bob, "invite_greeter_step", greeting_attempt=attempt, greeter_step=greeter_step(0, key)
    )
    assert rep["claimer_step"] == claimer_step(0, key)

    # With enough shares the claimer rebuilds the reveal token and gets the ciphered data.
    assert await org.invited(
        token, "invite_shamir_recovery_reveal", reveal_token=os.urandom(16)
    ) == {"status": "bad_reveal_token"}
    assert await org.invited(token, "invite_shamir_recovery_reveal", reveal_token=reveal_token) == {
        "status": "ok",
        "ciphered_data": b"ciphered-device-keys",
    }
    # Not for other invitation types.
    user_token = await org.invite_user("z@example.com")
    assert await org.invited(
        user_token, "invite_shamir_recovery_reveal", reveal_token=reveal_token
    ) == {"status": "bad_invitation_type"}


async def test_deleting_the_setup_cancels_recovery(org: Org, people: tuple[Identity, ...]) -> None:
    bob, carol, _ = people
    _, setup_ts, reveal_token = await setup(org, org.alice, [bob, carol])
    token = (
        await org.auth(
            bob, "invite_new_shamir_recovery", claimer_user_id=org.alice.user_id, send_email=False
        )
    )["token"]
    assert await delete(org, org.alice, setup_ts, [bob, carol]) == {"status": "ok"}
    ev = await org.server.wait_event(
        lambda e: (
            e["type"] == "INVITATION"
            and e["token"] == token.hex()
            and e["invitation_status"] == "CANCELLED"
        )
    )
    assert sorted(ev["greeters"]) == sorted([bob.user_id.hex, carol.user_id.hex])
    for cmd, fields in (
        ("invite_info", {}),
        ("invite_shamir_recovery_reveal", {"reveal_token": reveal_token}),
    ):
        with pytest.raises(RpcError) as exc:
            await org.invited(token, cmd, **fields)
        assert http_status(exc.value) == 410
    assert await org.auth(bob, "invite_greeter_start_greeting_attempt", token=token) == {
        "status": "invitation_cancelled"
    }
    listed = [i for i in (await org.auth(bob, "invite_list"))["invitations"] if i["token"] == token]
    assert listed[0]["status"] == "CANCELLED"
    # No recovery possible without a setup.
    assert await org.auth(
        bob, "invite_new_shamir_recovery", claimer_user_id=org.alice.user_id, send_email=False
    ) == {"status": "author_not_allowed"}


async def test_revoked_recipient_is_not_a_greeter(org: Org, people: tuple[Identity, ...]) -> None:
    bob, carol, _ = people
    _, _, _ = await setup(org, org.alice, [bob, carol])
    token = (
        await org.auth(
            bob, "invite_new_shamir_recovery", claimer_user_id=org.alice.user_id, send_email=False
        )
    )["token"]
    await org.revoke(carol)
    assert await org.invited(
        token, "invite_claimer_start_greeting_attempt", greeter=carol.user_id
    ) == {"status": "greeter_revoked"}
    info = await org.invited(token, "invite_info")
    assert [r["revoked_on"] is not None for r in info["recipients"]] == [False, True]
