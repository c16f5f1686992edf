"""Asynchronous enrollment (anonymous submit/info/cancel, authenticated list/accept/reject) against
a real PostgreSQL: every reply status in the official order, the OpenBao and PKI identity systems,
the X.509 checks with and without `--trusted-x509-root-dir`, and the ASYNC_ENROLLMENT events."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from core_helpers import (
    Device,
    HttpError,
    NewUserCerts,
    Org,
    Server,
    capture_events,
    new_user_certs,
)
from pki_support import (
    Pki,
    accept_payload,
    openbao_signature,
    pki_signature,
    submit_payload,
)

from parsec_server.protocol.codec import now
from parsec_server.protocol.ids import HumanHandle


async def submit(
    server: Server,
    org: Org,
    payload: bytes | None = None,
    signature: dict[str, Any] | None = None,
    *,
    enrollment_id: uuid.UUID | None = None,
    force: bool = False,
) -> tuple[uuid.UUID, dict[str, Any]]:
    enrollment_id = enrollment_id or uuid.uuid4()
    payload = payload if payload is not None else submit_payload()
    rep = await server.anonymous(
        org.organization_id,
        "async_enrollment_submit",
        enrollment_id=enrollment_id,
        force=force,
        submit_payload=payload,
        submit_payload_signature=signature or openbao_signature("submitter"),
    )
    return enrollment_id, rep


async def info(server: Server, org: Org, enrollment_id: uuid.UUID) -> dict[str, Any]:
    return await server.anonymous(
        org.organization_id, "async_enrollment_info", enrollment_id=enrollment_id
    )


def carol_certs(org: Org, **kwargs: Any) -> NewUserCerts:
    return new_user_certs(org.alice.device_id, org.alice.signing_key, "carol", **kwargs)


async def accept(
    author: Device,
    org: Org,
    enrollment_id: uuid.UUID,
    certs: NewUserCerts,
    signature: dict[str, Any] | None = None,
    payload: bytes | None = None,
    send_email: bool = False,
) -> dict[str, Any]:
    payload = (
        payload
        if payload is not None
        else accept_payload(
            certs.user_id,
            certs.device_id,
            certs.human,
            certs.profile,
            bytes(org.root_key.verify_key),
        )
    )
    return await author.rpc(
        "async_enrollment_accept",
        enrollment_id=enrollment_id,
        submitter_user_certificate=certs.user_certificate,
        submitter_device_certificate=certs.device_certificate,
        submitter_redacted_user_certificate=certs.redacted_user_certificate,
        submitter_redacted_device_certificate=certs.redacted_device_certificate,
        accept_payload=payload,
        accept_payload_signature=signature or openbao_signature("accepter"),
        send_email=send_email,
    )


# --- OpenBao, end to end --------------------------------------------------------------------------


async def test_openbao_submit_list_accept_info(server: Server, org: Org) -> None:
    payload = submit_payload()
    submit_sig = openbao_signature("submitter", "entity-carol")
    with capture_events(server, org.organization_id) as log:
        eid, rep = await submit(server, org, payload, submit_sig)
        assert rep["status"] == "ok"
        await log.wait_for("ASYNC_ENROLLMENT")
    submitted_on = rep["submitted_on"]
    assert await info(server, org, eid) == {
        "status": "ok",
        "enrollment_status": "SUBMITTED",
        "submitted_on": submitted_on,
    }
    listed = await org.alice.rpc("async_enrollment_list")
    assert listed == {
        "status": "ok",
        "enrollments": [
            {
                "enrollment_id": eid,
                "submitted_on": submitted_on,
                "submit_payload": payload,
                "submit_payload_signature": submit_sig,
            }
        ],
    }
    certs = carol_certs(org, profile="STANDARD")
    accept_sig = openbao_signature("accepter", "entity-alice")
    payload_a = accept_payload(
        certs.user_id, certs.device_id, certs.human, "STANDARD", bytes(org.root_key.verify_key)
    )
    with capture_events(server, org.organization_id) as log:
        rep = await accept(org.alice, org, eid, certs, accept_sig, payload_a)
        assert rep == {"status": "ok", "email_sent": "SUCCESS"}
        await log.wait_for("ASYNC_ENROLLMENT")
        await log.wait_for("COMMON_CERTIFICATE")
    got = await info(server, org, eid)
    assert got["enrollment_status"] == "ACCEPTED"
    assert got["submitted_on"] == submitted_on
    assert got["accept_payload"] == payload_a
    assert got["accept_payload_signature"] == accept_sig
    # The user and device exist exactly as with user_create.
    carol = Device(
        server,
        org.organization_id,
        certs.user_id,
        certs.device_id,
        certs.signing_key,
        certs.human,
        "STANDARD",
    )
    assert await carol.rpc("ping", ping="hi") == {"status": "ok", "pong": "hi"}
    common = (await org.alice.certificates())["common_certificates"]
    assert common[-2:] == [certs.user_certificate, certs.device_certificate]
    assert (await org.alice.rpc("async_enrollment_list"))["enrollments"] == []
    # Once accepted: no cancel, no reject, no second accept.
    assert await server.anonymous(
        org.organization_id, "async_enrollment_cancel", enrollment_id=eid
    ) == {"status": "enrollment_no_longer_available"}
    assert await org.alice.rpc("async_enrollment_reject", enrollment_id=eid) == {
        "status": "enrollment_no_longer_available"
    }
    # Carol now exists: a new request with her email is refused.
    _, rep = await submit(server, org)
    assert rep == {"status": "email_already_enrolled"}


async def test_submit_refusals_and_force(server: Server, org: Org) -> None:
    _, rep = await submit(server, org, b"\x00not zstd")
    assert rep == {"status": "invalid_submit_payload"}
    _, rep = await submit(server, org, submit_payload(email="alice@example.com"))
    assert rep == {"status": "email_already_enrolled"}
    first, rep = await submit(server, org)
    assert rep["status"] == "ok"
    first_on = rep["submitted_on"]
    _, rep = await submit(server, org, enrollment_id=first)
    assert rep == {"status": "id_already_used"}
    _, rep = await submit(server, org)
    assert rep == {"status": "email_already_submitted", "submitted_on": first_on}
    # force: the pending request for the same email is cancelled, the new one is SUBMITTED.
    second, rep = await submit(server, org, force=True)
    assert rep["status"] == "ok"
    got = await info(server, org, first)
    assert got["enrollment_status"] == "CANCELLED"
    assert got["cancelled_on"] == rep["submitted_on"]
    assert (await info(server, org, second))["enrollment_status"] == "SUBMITTED"
    listed = (await org.alice.rpc("async_enrollment_list"))["enrollments"]
    assert [e["enrollment_id"] for e in listed] == [second]


async def test_cancel_reject_info_and_not_found(server: Server, org: Org) -> None:
    unknown = uuid.uuid4()
    assert await info(server, org, unknown) == {"status": "enrollment_not_found"}
    assert await server.anonymous(
        org.organization_id, "async_enrollment_cancel", enrollment_id=unknown
    ) == {"status": "enrollment_not_found"}
    assert await org.alice.rpc("async_enrollment_reject", enrollment_id=unknown) == {
        "status": "enrollment_not_found"
    }
    assert await accept(org.alice, org, unknown, carol_certs(org)) == {
        "status": "enrollment_not_found"
    }

    eid, _ = await submit(server, org)
    with capture_events(server, org.organization_id) as log:
        assert await server.anonymous(
            org.organization_id, "async_enrollment_cancel", enrollment_id=eid
        ) == {"status": "ok"}
        await log.wait_for("ASYNC_ENROLLMENT")
    assert (await info(server, org, eid))["enrollment_status"] == "CANCELLED"
    assert await server.anonymous(
        org.organization_id, "async_enrollment_cancel", enrollment_id=eid
    ) == {"status": "enrollment_no_longer_available"}

    eid, _ = await submit(server, org)
    bob = await org.alice.create_user("bob")
    assert await bob.rpc("async_enrollment_list") == {"status": "author_not_allowed"}
    assert await bob.rpc("async_enrollment_reject", enrollment_id=eid) == {
        "status": "author_not_allowed"
    }
    assert await accept(bob, org, eid, carol_certs(org)) == {"status": "author_not_allowed"}
    assert await org.alice.rpc("async_enrollment_reject", enrollment_id=eid) == {"status": "ok"}
    got = await info(server, org, eid)
    assert got["enrollment_status"] == "REJECTED" and got["rejected_on"] >= got["submitted_on"]
    assert await accept(org.alice, org, eid, carol_certs(org)) == {
        "status": "enrollment_no_longer_available"
    }


async def test_accept_refusals_in_order(server: Server, org: Org, pki: Pki) -> None:
    eid, _ = await submit(server, org)
    certs = carol_certs(org)
    pki_sig = pki_signature("accepter", pki.accepter, b"x", [pki.intermediate])
    assert await accept(org.alice, org, eid, certs, pki_sig) == {
        "status": "submit_and_accept_identity_systems_mismatch"
    }
    assert await accept(org.alice, org, eid, certs, payload=b"junk") == {
        "status": "invalid_accept_payload"
    }
    # Signed by someone else than the author.
    other = new_user_certs(org.alice.device_id, certs.signing_key, "carol")
    assert await accept(org.alice, org, eid, other) == {"status": "invalid_certificate"}
    late = carol_certs(org, ts=now() - timedelta(hours=1))
    rep = await accept(org.alice, org, eid, late)
    assert rep["status"] == "timestamp_out_of_ballpark"
    # Older than the last common certificate (bob's creation).
    old = carol_certs(org, ts=now())
    await org.alice.create_user("bob")
    rep = await accept(org.alice, org, eid, old)
    assert rep["status"] == "require_greater_timestamp"
    # Email taken by a user created meanwhile.
    taken = carol_certs(org, human=org.alice.human)
    assert await accept(org.alice, org, eid, taken) == {"status": "human_handle_already_taken"}
    # The id of an existing user.
    existing = carol_certs(org, user_id=org.alice.user_id)
    assert await accept(org.alice, org, eid, existing) == {"status": "user_already_exists"}
    # The request is still pending after every refusal.
    assert (await info(server, org, eid))["enrollment_status"] == "SUBMITTED"


async def test_accept_active_users_limit(server: Server) -> None:
    org = await server.bootstrap_org(active_users_limit=1)
    eid, _ = await submit(server, org)
    assert await accept(org.alice, org, eid, carol_certs(org)) == {
        "status": "active_users_limit_reached"
    }
    # Reported before a taken email, as the official accept does.
    taken = carol_certs(org, human=org.alice.human)
    assert await accept(org.alice, org, eid, taken) == {"status": "active_users_limit_reached"}


async def test_accept_email_without_smtp_server(server: Server, org: Org) -> None:
    eid, _ = await submit(server, org)
    rep = await accept(org.alice, org, eid, carol_certs(org), send_email=True)
    assert rep == {"status": "ok", "email_sent": "SERVER_UNAVAILABLE"}


async def test_organization_not_bootstrapped(server: Server) -> None:
    organization_id, _ = await server.create_org()
    with pytest.raises(HttpError) as err:
        await server.anonymous(organization_id, "async_enrollment_info", enrollment_id=uuid.uuid4())
    assert err.value.status_code == 404


# --- PKI ------------------------------------------------------------------------------------------


async def test_pki_without_trusted_roots_checks_structure_only(
    server: Server, org: Org, pki: Pki
) -> None:
    payload = submit_payload()
    bad_der = pki_signature("submitter", pki.leaf, payload, [pki.intermediate])
    bad_der["intermediate_der_x509_certificates"] = [b"not a certificate"]
    _, rep = await submit(server, org, payload, bad_der)
    assert rep == {"status": "invalid_der_x509_certificate"}
    # An intermediate that is not on the leaf's path.
    unused = pki_signature("submitter", pki.leaf, payload, [pki.intermediate, pki.untrusted_root])
    _, rep = await submit(server, org, payload, unused)
    assert rep == {"status": "invalid_x509_trustchain"}
    # Untrusted root, bad signature: accepted, as by the official server (no roots configured).
    mallory = pki_signature("submitter", pki.untrusted_leaf, payload, [])
    mallory["signature"] = b"\x00" * 256
    _, rep = await submit(server, org, payload, mallory)
    assert rep["status"] == "ok"


async def test_pki_with_trusted_roots(strict_server: Server, strict_org: Org, pki: Pki) -> None:
    server, org = strict_server, strict_org
    payload = submit_payload()
    for signer, intermediates in (
        (pki.untrusted_leaf, []),  # another root
        (pki.expired, [pki.intermediate]),  # expired yesterday
        (pki.leaf, []),  # the intermediate is missing
    ):
        _, rep = await submit(
            server, org, payload, pki_signature("submitter", signer, payload, intermediates)
        )
        assert rep == {"status": "invalid_x509_trustchain"}, signer.cert.subject
    forged = pki_signature("submitter", pki.leaf, payload, [pki.intermediate])
    forged["signature"] = pki.leaf.sign(b"another payload")
    _, rep = await submit(server, org, payload, forged)
    assert rep == {"status": "invalid_submit_payload_signature"}

    good = pki_signature("submitter", pki.leaf, payload, [pki.intermediate])
    eid, rep = await submit(server, org, payload, good)
    assert rep["status"] == "ok"
    (listed,) = (await org.alice.rpc("async_enrollment_list"))["enrollments"]
    assert listed["submit_payload_signature"] == good

    certs = carol_certs(org)
    payload_a = accept_payload(
        certs.user_id, certs.device_id, certs.human, certs.profile, bytes(org.root_key.verify_key)
    )
    assert await accept(org.alice, org, eid, certs, openbao_signature("accepter")) == {
        "status": "submit_and_accept_identity_systems_mismatch"
    }
    untrusted = pki_signature("accepter", pki.untrusted_leaf, payload_a, [])
    assert await accept(org.alice, org, eid, certs, untrusted, payload_a) == {
        "status": "invalid_x509_trustchain"
    }
    forged_a = pki_signature("accepter", pki.accepter, b"other", [pki.intermediate])
    assert await accept(org.alice, org, eid, certs, forged_a, payload_a) == {
        "status": "invalid_accept_payload_signature"
    }
    accept_sig = pki_signature("accepter", pki.accepter, payload_a, [pki.intermediate])
    assert await accept(org.alice, org, eid, certs, accept_sig, payload_a) == {
        "status": "ok",
        "email_sent": "SUCCESS",
    }
    got = await info(server, org, eid)
    assert got["enrollment_status"] == "ACCEPTED"
    assert got["accept_payload_signature"] == accept_sig


async def test_pki_chain_returned_in_issuer_order(server: Server, org: Org, pki: Pki) -> None:
    """Intermediates given in any order come back leaf first, then each issuer."""
    from pki_support import _issue

    sub_ca = _issue("Sub CA", pki.intermediate, ca=True)
    leaf = _issue("Dave", sub_ca, ca=False, email="dave@example.com")
    payload = submit_payload("dave@example.com", "Dave")
    sig = pki_signature("submitter", leaf, payload, [pki.intermediate, sub_ca])
    _, rep = await submit(server, org, payload, sig)
    assert rep["status"] == "ok"
    (listed,) = (await org.alice.rpc("async_enrollment_list"))["enrollments"]
    got = listed["submit_payload_signature"]
    assert got["submitter_der_x509_certificate"] == leaf.der
    assert got["intermediate_der_x509_certificates"] == [sub_ca.der, pki.intermediate.der]


# --- races ----------------------------------------------------------------------------------------


async def test_concurrent_submits_for_one_email_leave_one_pending(server: Server, org: Org) -> None:
    results = await asyncio.gather(*(submit(server, org) for _ in range(4)))
    statuses = sorted(rep["status"] for _, rep in results)
    assert statuses == ["email_already_submitted"] * 3 + ["ok"]
    assert len((await org.alice.rpc("async_enrollment_list"))["enrollments"]) == 1


async def test_accept_reject_cancel_race_has_one_winner(server: Server, org: Org) -> None:
    for _ in range(3):
        email = f"x{uuid.uuid4().hex[:8]}@example.com"
        eid, _ = await submit(server, org, submit_payload(email))
        certs = carol_certs(org, human=HumanHandle(email, "X"))
        reps = await asyncio.gather(
            accept(org.alice, org, eid, certs),
            org.alice.rpc("async_enrollment_reject", enrollment_id=eid),
            server.anonymous(org.organization_id, "async_enrollment_cancel", enrollment_id=eid),
        )
        statuses = [r["status"] for r in reps]
        assert statuses.count("enrollment_no_longer_available") == 2, statuses
        final = (await info(server, org, eid))["enrollment_status"]
        winner = {0: "ACCEPTED", 1: "REJECTED", 2: "CANCELLED"}[
            next(i for i, s in enumerate(statuses) if s == "ok")
        ]
        assert final == winner
