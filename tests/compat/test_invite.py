"""Invitations and greeting: invite_new_user/device, invite_list, invite_cancel, invite_complete,
invite_info, the greeting attempts and their 9 steps (protocol.md §4.7)."""

from __future__ import annotations

from typing import Any

import parsec._parsec as p
import pytest
from client import (
    AC,
    IC,
    AuthenticatedClient,
    InvitedClient,
    Org,
    build_user_certs,
    device_cert,
    now,
    user_create_req,
)

GS = AC.invite_greeter_step  # greeter/claimer step classes live in both modules
CS = IC.invite_claimer_step


def invite_user(alice: AuthenticatedClient, email: str = "zack@example.com") -> p.AccessToken:
    rep = alice.send(AC.invite_new_user.Req(claimer_email=p.EmailAddress(email), send_email=False))
    assert isinstance(rep, AC.invite_new_user.RepOk), rep
    return rep.token


def invited(org: Org, token: p.AccessToken) -> InvitedClient:
    return InvitedClient(org.http, org.organization_id, token)


# --- creating, listing, cancelling ------------------------------------------------------------


def test_invite_new_user(org: Org, alice: AuthenticatedClient) -> None:
    rep = alice.send(
        AC.invite_new_user.Req(claimer_email=p.EmailAddress("zack@example.com"), send_email=False)
    )
    assert isinstance(rep, AC.invite_new_user.RepOk), rep
    assert rep.email_sent == AC.invite_new_user.InvitationEmailSentStatus.SUCCESS
    # the same email while pending: same invitation
    assert invite_user(alice) == rep.token
    assert invite_user(alice, "other@example.com") != rep.token
    info = invited(org, rep.token).send(IC.invite_info.Req())
    assert isinstance(info, IC.invite_info.RepOk), info
    unit = info.unit
    assert isinstance(unit, IC.invite_info.InvitationTypeUser), unit
    assert unit.claimer_email.str == "zack@example.com"
    assert isinstance(unit.created_by, IC.invite_info.InvitationCreatedByUser)
    assert unit.created_by.user_id == alice.user_id
    assert unit.created_by.human_handle == alice.device.human_handle
    assert [a.user_id for a in unit.administrators] == [alice.user_id]


def test_invite_new_user_administrators_listed(
    org: Org, alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    admin2 = alice.create_user("admin2", p.UserProfile.ADMIN)
    token = invite_user(alice)
    unit = invited(org, token).send(IC.invite_info.Req()).unit
    assert {a.user_id for a in unit.administrators} == {alice.user_id, admin2.user_id}


def test_invite_new_user_author_not_allowed(
    bob: AuthenticatedClient, mallory: AuthenticatedClient
) -> None:
    for client in (bob, mallory):
        rep = client.send(
            AC.invite_new_user.Req(
                claimer_email=p.EmailAddress("zack@example.com"), send_email=False
            )
        )
        assert isinstance(rep, AC.invite_new_user.RepAuthorNotAllowed), rep


def test_invite_new_user_already_enrolled(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    for email in ("alice@example.com", "bob@example.com"):
        rep = alice.send(
            AC.invite_new_user.Req(claimer_email=p.EmailAddress(email), send_email=False)
        )
        assert isinstance(rep, AC.invite_new_user.RepClaimerEmailAlreadyEnrolled), rep
    # the email of a revoked user can be invited again
    assert isinstance(alice.revoke(bob.user_id), AC.user_revoke.RepOk)
    invite_user(alice, "bob@example.com")


def test_invite_new_device(org: Org, bob: AuthenticatedClient) -> None:
    rep = bob.send(AC.invite_new_device.Req(send_email=False))
    assert isinstance(rep, AC.invite_new_device.RepOk), rep
    assert bob.send(AC.invite_new_device.Req(send_email=False)).token == rep.token
    unit = invited(org, rep.token).send(IC.invite_info.Req()).unit
    assert isinstance(unit, IC.invite_info.InvitationTypeDevice), unit
    assert unit.claimer_user_id == bob.user_id
    assert unit.claimer_human_handle == bob.device.human_handle


def test_invite_list(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    t_user = invite_user(alice)
    t_dev = alice.send(AC.invite_new_device.Req(send_email=False)).token
    bob_dev = bob.send(AC.invite_new_device.Req(send_email=False)).token
    rep = alice.send(AC.invite_list.Req())
    assert isinstance(rep, AC.invite_list.RepOk), rep
    by_token = {i.token: i for i in rep.invitations}
    assert set(by_token) == {t_user, t_dev}  # not bob's device invitation
    user_item = by_token[t_user]
    assert isinstance(user_item, AC.invite_list.InviteListItemUser), user_item
    assert user_item.claimer_email.str == "zack@example.com"
    assert user_item.status == p.InvitationStatus.PENDING
    assert isinstance(by_token[t_dev], AC.invite_list.InviteListItemDevice)
    # ordered by creation
    assert [i.token for i in rep.invitations] == [t_user, t_dev]
    # bob sees only his own device invitation
    rep = bob.send(AC.invite_list.Req())
    assert [i.token for i in rep.invitations] == [bob_dev]


def test_invite_cancel(org: Org, alice: AuthenticatedClient) -> None:
    token = invite_user(alice)
    assert isinstance(alice.send(AC.invite_cancel.Req(token=token)), AC.invite_cancel.RepOk)
    rep = alice.send(AC.invite_cancel.Req(token=token))
    assert isinstance(rep, AC.invite_cancel.RepInvitationAlreadyCancelled), rep
    rep = alice.send(AC.invite_cancel.Req(token=p.AccessToken.new()))
    assert isinstance(rep, AC.invite_cancel.RepInvitationNotFound), rep
    item = alice.send(AC.invite_list.Req()).invitations[0]
    assert item.status == p.InvitationStatus.CANCELLED
    assert invited(org, token).post(IC.ping.Req(ping="x").dump()).status_code == 410
    # a new invitation for the same email gets a new token
    assert invite_user(alice) != token


def test_invite_complete(org: Org, alice: AuthenticatedClient) -> None:
    token = invite_user(alice)
    assert isinstance(alice.send(AC.invite_complete.Req(token=token)), AC.invite_complete.RepOk)
    rep = alice.send(AC.invite_complete.Req(token=token))
    assert isinstance(rep, AC.invite_complete.RepInvitationAlreadyCompleted), rep
    rep = alice.send(AC.invite_cancel.Req(token=token))
    assert isinstance(rep, AC.invite_cancel.RepInvitationCompleted), rep
    assert alice.send(AC.invite_list.Req()).invitations[0].status == p.InvitationStatus.FINISHED
    other = invite_user(alice, "other@example.com")
    assert isinstance(alice.send(AC.invite_cancel.Req(token=other)), AC.invite_cancel.RepOk)
    rep = alice.send(AC.invite_complete.Req(token=other))
    assert isinstance(rep, AC.invite_complete.RepInvitationCancelled), rep


def test_invite_cancel_author_not_allowed(
    alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    token = invite_user(alice)
    rep = bob.send(AC.invite_cancel.Req(token=token))
    assert isinstance(rep, AC.invite_cancel.RepAuthorNotAllowed), rep
    dev_token = bob.send(AC.invite_new_device.Req(send_email=False)).token
    rep = alice.send(AC.invite_cancel.Req(token=dev_token))
    assert isinstance(rep, AC.invite_cancel.RepAuthorNotAllowed), rep


# --- greeting -----------------------------------------------------------------------------------


def greeter_steps(public_key: p.PublicKey) -> list[Any]:
    return [
        GS.GreeterStepNumber0WaitPeer(public_key=public_key),
        GS.GreeterStepNumber1GetHashedNonce(),
        GS.GreeterStepNumber2SendNonce(greeter_nonce=b"greeter-nonce"),
        GS.GreeterStepNumber3GetNonce(),
        GS.GreeterStepNumber4WaitPeerTrust(),
        GS.GreeterStepNumber5SignifyTrust(),
        GS.GreeterStepNumber6GetPayload(),
        GS.GreeterStepNumber7SendPayload(greeter_payload=b"greeter-payload"),
        GS.GreeterStepNumber8WaitPeerAcknowledgment(),
    ]


def claimer_steps(public_key: p.PublicKey) -> list[Any]:
    return [
        CS.ClaimerStepNumber0WaitPeer(public_key=public_key),
        CS.ClaimerStepNumber1SendHashedNonce(hashed_nonce=p.HashDigest.from_data(b"claimer-nonce")),
        CS.ClaimerStepNumber2GetNonce(),
        CS.ClaimerStepNumber3SendNonce(claimer_nonce=b"claimer-nonce"),
        CS.ClaimerStepNumber4SignifyTrust(),
        CS.ClaimerStepNumber5WaitPeerTrust(),
        CS.ClaimerStepNumber6SendPayload(claimer_payload=b"claimer-payload"),
        CS.ClaimerStepNumber7GetPayload(),
        CS.ClaimerStepNumber8Acknowledge(),
    ]


def start_attempts(
    greeter: AuthenticatedClient, claimer: InvitedClient, token: p.AccessToken
) -> tuple[p.GreetingAttemptID, p.GreetingAttemptID]:
    rep = greeter.send(AC.invite_greeter_start_greeting_attempt.Req(token=token))
    assert isinstance(rep, AC.invite_greeter_start_greeting_attempt.RepOk), rep
    g_attempt = rep.greeting_attempt
    rep = claimer.send(IC.invite_claimer_start_greeting_attempt.Req(greeter=greeter.user_id))
    assert isinstance(rep, IC.invite_claimer_start_greeting_attempt.RepOk), rep
    return g_attempt, rep.greeting_attempt


def run_greeting(
    greeter: AuthenticatedClient, claimer: InvitedClient, token: p.AccessToken
) -> None:
    g_attempt, c_attempt = start_attempts(greeter, claimer, token)
    assert g_attempt == c_attempt
    g_steps = greeter_steps(p.PrivateKey.generate().public_key)
    c_steps = claimer_steps(p.PrivateKey.generate().public_key)
    for i, (g_step, c_step) in enumerate(zip(g_steps, c_steps, strict=True)):
        # alternate who goes first
        if i % 2 == 0:
            rep = greeter.send(
                AC.invite_greeter_step.Req(greeting_attempt=g_attempt, greeter_step=g_step)
            )
            assert isinstance(rep, AC.invite_greeter_step.RepNotReady), (i, rep)
            rep = claimer.send(
                IC.invite_claimer_step.Req(greeting_attempt=c_attempt, claimer_step=c_step)
            )
            assert isinstance(rep, IC.invite_claimer_step.RepOk), (i, rep)
            assert repr(rep.greeter_step) == repr(g_step), i
            rep = greeter.send(
                AC.invite_greeter_step.Req(greeting_attempt=g_attempt, greeter_step=g_step)
            )
            assert isinstance(rep, AC.invite_greeter_step.RepOk), (i, rep)
            assert repr(rep.claimer_step) == repr(c_step), i
        else:
            rep = claimer.send(
                IC.invite_claimer_step.Req(greeting_attempt=c_attempt, claimer_step=c_step)
            )
            assert isinstance(rep, IC.invite_claimer_step.RepNotReady), (i, rep)
            rep = greeter.send(
                AC.invite_greeter_step.Req(greeting_attempt=g_attempt, greeter_step=g_step)
            )
            assert isinstance(rep, AC.invite_greeter_step.RepOk), (i, rep)
            assert repr(rep.claimer_step) == repr(c_step), i
            rep = claimer.send(
                IC.invite_claimer_step.Req(greeting_attempt=c_attempt, claimer_step=c_step)
            )
            assert isinstance(rep, IC.invite_claimer_step.RepOk), (i, rep)
            assert repr(rep.greeter_step) == repr(g_step), i


def test_greeting_user_full(org: Org, alice: AuthenticatedClient) -> None:
    token = invite_user(alice)
    claimer = invited(org, token)
    run_greeting(alice, claimer, token)
    # the greeter then creates the user and completes the invitation
    certs = build_user_certs(
        org.organization_id,
        alice.device,
        alice.device.signing_key,
        human_handle=p.HumanHandle(p.EmailAddress("zack@example.com"), "Zack"),
    )
    assert isinstance(alice.send(user_create_req(certs)), AC.user_create.RepOk)
    assert isinstance(alice.send(AC.invite_complete.Req(token=token)), AC.invite_complete.RepOk)
    zack = AuthenticatedClient(org.http, certs.device)
    assert zack.ping("I'm in").pong == "I'm in"
    assert claimer.post(IC.ping.Req(ping="x").dump()).status_code == 410


def test_greeting_device_full(org: Org, bob: AuthenticatedClient) -> None:
    token = bob.send(AC.invite_new_device.Req(send_email=False)).token
    claimer = invited(org, token)
    run_greeting(bob, claimer, token)
    new_key = p.SigningKey.generate()
    ts = now()
    device_id = p.DeviceID.new()
    cert = device_cert(
        bob.device_id, ts, bob.user_id, device_id, p.DeviceLabel("new"), new_key.verify_key
    )
    redacted = device_cert(bob.device_id, ts, bob.user_id, device_id, None, new_key.verify_key)
    rep = bob.send(
        AC.device_create.Req(
            device_certificate=bob.sign(cert), redacted_device_certificate=bob.sign(redacted)
        )
    )
    assert isinstance(rep, AC.device_create.RepOk), rep
    assert isinstance(bob.send(AC.invite_complete.Req(token=token)), AC.invite_complete.RepOk)


def test_greeting_step_errors(org: Org, alice: AuthenticatedClient) -> None:
    token = invite_user(alice)
    claimer = invited(org, token)
    g_attempt, c_attempt = start_attempts(alice, claimer, token)
    g_steps = greeter_steps(p.PrivateKey.generate().public_key)
    c_steps = claimer_steps(p.PrivateKey.generate().public_key)
    # too advanced: step 1 before step 0
    rep = alice.send(
        AC.invite_greeter_step.Req(greeting_attempt=g_attempt, greeter_step=g_steps[1])
    )
    assert isinstance(rep, AC.invite_greeter_step.RepStepTooAdvanced), rep
    assert isinstance(
        alice.send(AC.invite_greeter_step.Req(greeting_attempt=g_attempt, greeter_step=g_steps[0])),
        AC.invite_greeter_step.RepNotReady,
    )
    # same step with other data: mismatch
    other0 = GS.GreeterStepNumber0WaitPeer(public_key=p.PrivateKey.generate().public_key)
    rep = alice.send(AC.invite_greeter_step.Req(greeting_attempt=g_attempt, greeter_step=other0))
    assert isinstance(rep, AC.invite_greeter_step.RepStepMismatch), rep
    # step 1 while the claimer has not done step 0: too advanced
    rep = alice.send(
        AC.invite_greeter_step.Req(greeting_attempt=g_attempt, greeter_step=g_steps[1])
    )
    assert isinstance(rep, AC.invite_greeter_step.RepStepTooAdvanced), rep
    rep = claimer.send(
        IC.invite_claimer_step.Req(greeting_attempt=c_attempt, claimer_step=c_steps[0])
    )
    assert isinstance(rep, IC.invite_claimer_step.RepOk), rep
    # unknown attempt
    rep = alice.send(
        AC.invite_greeter_step.Req(
            greeting_attempt=p.GreetingAttemptID.new(), greeter_step=g_steps[0]
        )
    )
    assert isinstance(rep, AC.invite_greeter_step.RepGreetingAttemptNotFound), rep
    rep = claimer.send(
        IC.invite_claimer_step.Req(
            greeting_attempt=p.GreetingAttemptID.new(), claimer_step=c_steps[0]
        )
    )
    assert isinstance(rep, IC.invite_claimer_step.RepGreetingAttemptNotFound), rep


def test_greeting_cancel(org: Org, alice: AuthenticatedClient) -> None:
    token = invite_user(alice)
    claimer = invited(org, token)
    g_attempt, c_attempt = start_attempts(alice, claimer, token)
    reason = p.CancelledGreetingAttemptReason.MANUALLY_CANCELLED
    rep = claimer.send(
        IC.invite_claimer_cancel_greeting_attempt.Req(greeting_attempt=c_attempt, reason=reason)
    )
    assert isinstance(rep, IC.invite_claimer_cancel_greeting_attempt.RepOk), rep
    rep = claimer.send(
        IC.invite_claimer_cancel_greeting_attempt.Req(greeting_attempt=c_attempt, reason=reason)
    )
    assert isinstance(
        rep, IC.invite_claimer_cancel_greeting_attempt.RepGreetingAttemptAlreadyCancelled
    ), rep
    assert rep.origin == p.GreeterOrClaimer.CLAIMER
    assert rep.reason == reason
    step0 = GS.GreeterStepNumber0WaitPeer(public_key=p.PrivateKey.generate().public_key)
    rep = alice.send(AC.invite_greeter_step.Req(greeting_attempt=g_attempt, greeter_step=step0))
    assert isinstance(rep, AC.invite_greeter_step.RepGreetingAttemptCancelled), rep
    assert (rep.origin, rep.reason) == (p.GreeterOrClaimer.CLAIMER, reason)
    # a new attempt can start
    g2, c2 = start_attempts(alice, claimer, token)
    assert g2 == c2 != g_attempt


def test_greeting_claimer_errors(
    org: Org, alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    token = invite_user(alice)
    claimer = invited(org, token)
    rep = claimer.send(IC.invite_claimer_start_greeting_attempt.Req(greeter=p.UserID.new()))
    assert isinstance(rep, IC.invite_claimer_start_greeting_attempt.RepGreeterNotFound), rep
    rep = claimer.send(IC.invite_claimer_start_greeting_attempt.Req(greeter=bob.user_id))
    assert isinstance(rep, IC.invite_claimer_start_greeting_attempt.RepGreeterNotAllowed), rep
    admin2 = alice.create_user("admin2", p.UserProfile.ADMIN)
    assert isinstance(alice.revoke(admin2.user_id), AC.user_revoke.RepOk)
    rep = claimer.send(IC.invite_claimer_start_greeting_attempt.Req(greeter=admin2.user_id))
    assert isinstance(rep, IC.invite_claimer_start_greeting_attempt.RepGreeterRevoked), rep


def test_greeting_greeter_errors(alice: AuthenticatedClient, bob: AuthenticatedClient) -> None:
    token = invite_user(alice)
    rep = bob.send(AC.invite_greeter_start_greeting_attempt.Req(token=token))
    assert isinstance(rep, AC.invite_greeter_start_greeting_attempt.RepAuthorNotAllowed), rep
    rep = alice.send(AC.invite_greeter_start_greeting_attempt.Req(token=p.AccessToken.new()))
    assert isinstance(rep, AC.invite_greeter_start_greeting_attempt.RepInvitationNotFound), rep
    assert isinstance(alice.send(AC.invite_cancel.Req(token=token)), AC.invite_cancel.RepOk)
    rep = alice.send(AC.invite_greeter_start_greeting_attempt.Req(token=token))
    assert isinstance(rep, AC.invite_greeter_start_greeting_attempt.RepInvitationCancelled), rep


@pytest.mark.parametrize("api_version", ["5.0", "5.1"])
def test_greeting_step_needs_api_5_2(
    org: Org, alice: AuthenticatedClient, api_version: str
) -> None:
    token = invite_user(alice)
    claimer = invited(org, token)
    g_attempt, _ = start_attempts(alice, claimer, token)
    step0 = GS.GreeterStepNumber0WaitPeer(public_key=p.PrivateKey.generate().public_key)
    body = AC.invite_greeter_step.Req(greeting_attempt=g_attempt, greeter_step=step0).dump()
    r = alice.post(body, headers=alice.headers(**{"Api-Version": api_version}))
    assert r.status_code == 422
