"""Greeting through the server, as the official clients run it (protocol.md §4.7): an X25519 key
agreement, the claimer's hashed-nonce commitment, SAS codes both sides must agree on, and payloads
encrypted with the shared key carrying what the greeter needs to create the user or device. Then
every rule of attempts and steps (joining order, restarts, several greeters, rights lost
mid-greeting, events, 410 / 422)."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

import parsec._parsec as p
import pytest
from client import (
    AC,
    IC,
    AuthenticatedClient,
    Device,
    InvitedClient,
    Org,
    RpcError,
    SseStream,
    UserCerts,
    device_cert,
    now,
    user_create_req,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

GS = AC.invite_greeter_step
CS = IC.invite_claimer_step
EL = AC.events_listen
REASON = p.CancelledGreetingAttemptReason


# --- the two sides --------------------------------------------------------------------------------


def invited(org: Org, token: p.AccessToken) -> InvitedClient:
    return InvitedClient(org.http, org.organization_id, token)


@dataclass
class Peer:
    """One side's ephemeral secrets."""

    private: p.PrivateKey = field(default_factory=p.PrivateKey.generate)
    nonce: bytes = field(default_factory=p.generate_sas_code_nonce)
    peer_public: bytes = b""

    def shared_key(self) -> p.SecretKey:
        mine = X25519PrivateKey.from_private_bytes(self.private.encode())
        secret = mine.exchange(X25519PublicKey.from_public_bytes(self.peer_public))
        return p.SecretKey(hashlib.sha256(b"parsec-greeting" + secret).digest())


def sas_codes(shared: p.SecretKey, claimer_nonce: bytes, greeter_nonce: bytes) -> tuple[str, str]:
    digest = hmac.new(shared.secret, claimer_nonce + greeter_nonce, hashlib.sha256).hexdigest()
    return digest[:4], digest[4:8]


@dataclass
class Greeting:
    """Drives one greeting attempt from both ends, step by step (each step: one side posts and gets
    not_ready, the other posts and gets the peer's step, the first polls again)."""

    greeter: AuthenticatedClient
    claimer: Any
    attempt: p.GreetingAttemptID
    g: Peer = field(default_factory=Peer)
    c: Peer = field(default_factory=Peer)

    @classmethod
    def start(
        cls, greeter: AuthenticatedClient, claimer: Any, claimer_first: bool = True
    ) -> Greeting:
        if claimer_first:
            c_att = start_claimer(claimer, greeter.user_id)
            g_att = start_greeter(greeter, claimer.token)
        else:
            g_att = start_greeter(greeter, claimer.token)
            c_att = start_claimer(claimer, greeter.user_id)
        assert g_att == c_att
        return cls(greeter, claimer, g_att)

    def g_step(self, step: Any) -> Any:
        return self.greeter.send(GS.Req(greeting_attempt=self.attempt, greeter_step=step))

    def c_step(self, step: Any) -> Any:
        return self.claimer.send(CS.Req(greeting_attempt=self.attempt, claimer_step=step))

    def exchange(self, g_step: Any, c_step: Any, claimer_first: bool) -> tuple[Any, Any]:
        """Returns (claimer step seen by the greeter, greeter step seen by the claimer)."""
        if claimer_first:
            assert isinstance(self.c_step(c_step), CS.RepNotReady)
            g_rep = self.g_step(g_step)
            c_rep = self.c_step(c_step)
        else:
            assert isinstance(self.g_step(g_step), GS.RepNotReady)
            c_rep = self.c_step(c_step)
            g_rep = self.g_step(g_step)
        assert isinstance(g_rep, GS.RepOk), g_rep
        assert isinstance(c_rep, CS.RepOk), c_rep
        return g_rep.claimer_step, c_rep.greeter_step

    def run(
        self, claimer_payload: bytes, greeter_payload: bytes, claimer_first: bool = True
    ) -> tuple[bytes, bytes]:
        """Steps 0-8; returns (claimer payload as decrypted by the greeter, greeter payload as
        decrypted by the claimer)."""
        seen_g, seen_c = self.exchange(
            GS.GreeterStepNumber0WaitPeer(public_key=self.g.private.public_key),
            CS.ClaimerStepNumber0WaitPeer(public_key=self.c.private.public_key),
            claimer_first,
        )
        self.g.peer_public = seen_g.public_key.encode()
        self.c.peer_public = seen_c.public_key.encode()
        assert self.g.peer_public == self.c.private.public_key.encode()
        commitment = p.HashDigest.from_data(self.c.nonce)
        seen_g, _ = self.exchange(
            GS.GreeterStepNumber1GetHashedNonce(),
            CS.ClaimerStepNumber1SendHashedNonce(hashed_nonce=commitment),
            claimer_first,
        )
        received_commitment = seen_g.hashed_nonce
        _, seen_c = self.exchange(
            GS.GreeterStepNumber2SendNonce(greeter_nonce=self.g.nonce),
            CS.ClaimerStepNumber2GetNonce(),
            claimer_first,
        )
        greeter_nonce = seen_c.greeter_nonce
        seen_g, _ = self.exchange(
            GS.GreeterStepNumber3GetNonce(),
            CS.ClaimerStepNumber3SendNonce(claimer_nonce=self.c.nonce),
            claimer_first,
        )
        claimer_nonce = seen_g.claimer_nonce
        # The greeter checks the commitment; both compute the SAS codes the humans compare.
        assert p.HashDigest.from_data(claimer_nonce) == received_commitment
        assert sas_codes(self.g.shared_key(), claimer_nonce, self.g.nonce) == sas_codes(
            self.c.shared_key(), self.c.nonce, greeter_nonce
        )
        self.exchange(
            GS.GreeterStepNumber4WaitPeerTrust(), CS.ClaimerStepNumber4SignifyTrust(), claimer_first
        )
        self.exchange(
            GS.GreeterStepNumber5SignifyTrust(), CS.ClaimerStepNumber5WaitPeerTrust(), claimer_first
        )
        sealed = self.c.shared_key().encrypt(claimer_payload)
        seen_g, _ = self.exchange(
            GS.GreeterStepNumber6GetPayload(),
            CS.ClaimerStepNumber6SendPayload(claimer_payload=sealed),
            claimer_first,
        )
        got_claimer_payload = self.g.shared_key().decrypt(seen_g.claimer_payload)
        sealed = self.g.shared_key().encrypt(greeter_payload)
        _, seen_c = self.exchange(
            GS.GreeterStepNumber7SendPayload(greeter_payload=sealed),
            CS.ClaimerStepNumber7GetPayload(),
            claimer_first,
        )
        got_greeter_payload = self.c.shared_key().decrypt(seen_c.greeter_payload)
        self.exchange(
            GS.GreeterStepNumber8WaitPeerAcknowledgment(),
            CS.ClaimerStepNumber8Acknowledge(),
            claimer_first,
        )
        return got_claimer_payload, got_greeter_payload


def start_greeter(greeter: AuthenticatedClient, token: p.AccessToken) -> p.GreetingAttemptID:
    rep = greeter.send(AC.invite_greeter_start_greeting_attempt.Req(token=token))
    assert isinstance(rep, AC.invite_greeter_start_greeting_attempt.RepOk), rep
    return rep.greeting_attempt


def start_claimer(claimer: Any, greeter: p.UserID) -> p.GreetingAttemptID:
    rep = claimer.send(IC.invite_claimer_start_greeting_attempt.Req(greeter=greeter))
    assert isinstance(rep, IC.invite_claimer_start_greeting_attempt.RepOk), rep
    return rep.greeting_attempt


def invite_user(alice: AuthenticatedClient, email: str = "zack@example.com") -> p.AccessToken:
    rep = alice.send(AC.invite_new_user.Req(claimer_email=p.EmailAddress(email), send_email=False))
    assert isinstance(rep, AC.invite_new_user.RepOk), rep
    return rep.token


def step0_g() -> Any:
    return GS.GreeterStepNumber0WaitPeer(public_key=p.PrivateKey.generate().public_key)


def step0_c() -> Any:
    return CS.ClaimerStepNumber0WaitPeer(public_key=p.PrivateKey.generate().public_key)


def http_status(fn: Any) -> int:
    with pytest.raises(RpcError) as exc:
        fn()
    return exc.value.response.status_code


# --- complete greetings ---------------------------------------------------------------------------


def test_user_greeting_end_to_end(org: Org, alice: AuthenticatedClient) -> None:
    token = invite_user(alice)
    claimer = invited(org, token)
    info = claimer.send(IC.invite_info.Req())
    assert isinstance(info.unit, IC.invite_info.InvitationTypeUser), info
    assert info.unit.claimer_email.str == "zack@example.com"
    greeter_id = info.unit.administrators[0].user_id
    assert greeter_id == alice.user_id

    # The claimer prepares its future identity; its public parts travel encrypted in step 6.
    zack = Device(
        organization_id=org.organization_id,
        user_id=p.UserID.new(),
        device_id=p.DeviceID.new(),
        signing_key=p.SigningKey.generate(),
        private_key=p.PrivateKey.generate(),
        human_handle=p.HumanHandle(p.EmailAddress("zack@example.com"), "Zack"),
        device_label=p.DeviceLabel("zack-laptop"),
        profile=p.UserProfile.STANDARD,
    )
    claimer_data = json.dumps(
        {
            "verify_key": zack.verify_key.encode().hex(),
            "public_key": zack.private_key.public_key.encode().hex(),
            "label": "Zack",
            "device_label": "zack-laptop",
        }
    ).encode()
    greeting = Greeting.start(alice, claimer, claimer_first=True)
    got, confirmation = greeting.run(
        claimer_data, json.dumps({"user_id": zack.user_id.hex}).encode()
    )
    assert got == claimer_data
    received = json.loads(got)

    # The greeter creates the user from what it decrypted; the claimer learns its ids from the
    # greeter.
    assert json.loads(confirmation) == {"user_id": zack.user_id.hex}
    ts = now()
    author = alice.device.device_id
    user = p.UserCertificate(
        author=author,
        timestamp=ts,
        user_id=zack.user_id,
        human_handle=zack.human_handle,
        public_key=p.PublicKey(bytes.fromhex(received["public_key"])),
        algorithm=p.PrivateKeyAlgorithm.X25519_XSALSA20_POLY1305,
        profile=p.UserProfile.STANDARD,
    )
    redacted_user = p.UserCertificate(
        author=author,
        timestamp=ts,
        user_id=zack.user_id,
        human_handle=None,
        public_key=user.public_key,
        algorithm=p.PrivateKeyAlgorithm.X25519_XSALSA20_POLY1305,
        profile=p.UserProfile.STANDARD,
    )
    verify_key = p.VerifyKey(bytes.fromhex(received["verify_key"]))
    device = device_cert(
        author,
        ts,
        zack.user_id,
        zack.device_id,
        p.DeviceLabel(received["device_label"]),
        verify_key,
    )
    redacted_device = device_cert(author, ts, zack.user_id, zack.device_id, None, verify_key)
    certs = UserCerts(
        zack,
        alice.sign(user),
        alice.sign(redacted_user),
        alice.sign(device),
        alice.sign(redacted_device),
        ts,
    )
    assert isinstance(alice.send(user_create_req(certs)), AC.user_create.RepOk)
    assert isinstance(alice.send(AC.invite_complete.Req(token=token)), AC.invite_complete.RepOk)

    # zack is a member now; the invitation is spent.
    zack_client = AuthenticatedClient(org.http, zack)
    assert isinstance(zack_client.send(AC.invite_list.Req()), AC.invite_list.RepOk)
    assert http_status(lambda: claimer.send(IC.invite_info.Req())) == 410
    assert http_status(lambda: greeting.c_step(step0_c())) == 410
    rep = greeting.g_step(step0_g())
    assert isinstance(rep, GS.RepInvitationCompleted), rep


def test_device_greeting_end_to_end(org: Org, bob: AuthenticatedClient) -> None:
    rep = bob.send(AC.invite_new_device.Req(send_email=False))
    token = rep.token
    claimer = invited(org, token)
    info = claimer.send(IC.invite_info.Req())
    assert isinstance(info.unit, IC.invite_info.InvitationTypeDevice), info
    assert info.unit.claimer_user_id == bob.user_id

    new_key = p.SigningKey.generate()
    new_id = p.DeviceID.new()
    greeting = Greeting.start(bob, claimer, claimer_first=False)
    got, confirmation = greeting.run(new_key.verify_key.encode(), new_id.bytes, claimer_first=False)
    assert p.VerifyKey(got) == new_key.verify_key
    assert p.DeviceID.from_bytes(confirmation) == new_id
    ts = now()
    cert = device_cert(
        bob.device_id, ts, bob.user_id, new_id, p.DeviceLabel("phone"), p.VerifyKey(got)
    )
    redacted = device_cert(bob.device_id, ts, bob.user_id, new_id, None, p.VerifyKey(got))
    rep = bob.send(
        AC.device_create.Req(
            device_certificate=bob.sign(cert), redacted_device_certificate=bob.sign(redacted)
        )
    )
    assert isinstance(rep, AC.device_create.RepOk), rep
    assert isinstance(bob.send(AC.invite_complete.Req(token=token)), AC.invite_complete.RepOk)
    phone = AuthenticatedClient(
        org.http, Device(**{**bob.device.__dict__, "device_id": new_id, "signing_key": new_key})
    )
    assert isinstance(phone.send(AC.invite_list.Req()), AC.invite_list.RepOk)


# --- attempts -------------------------------------------------------------------------------------


def test_restart_cancels_the_joined_attempt(org: Org, alice: AuthenticatedClient) -> None:
    token = invite_user(alice)
    claimer = invited(org, token)
    first = Greeting.start(alice, claimer)
    second_id = start_greeter(alice, token)  # greeter restarts
    assert second_id != first.attempt
    rep = first.c_step(step0_c())
    assert isinstance(rep, CS.RepGreetingAttemptCancelled), rep
    assert (rep.origin, rep.reason) == (p.GreeterOrClaimer.GREETER, REASON.AUTOMATICALLY_CANCELLED)
    assert start_claimer(claimer, alice.user_id) == second_id
    third_id = start_claimer(claimer, alice.user_id)  # claimer restarts
    assert third_id != second_id
    rep = alice.send(GS.Req(greeting_attempt=second_id, greeter_step=step0_g()))
    assert isinstance(rep, GS.RepGreetingAttemptCancelled), rep
    assert (rep.origin, rep.reason) == (p.GreeterOrClaimer.CLAIMER, REASON.AUTOMATICALLY_CANCELLED)
    # The greeter joins the claimer's fresh attempt and they can go on.
    assert start_greeter(alice, token) == third_id


def test_cancel_statuses(org: Org, alice: AuthenticatedClient) -> None:
    token = invite_user(alice)
    claimer = invited(org, token)
    attempt = start_greeter(alice, token)
    rep = claimer.send(
        IC.invite_claimer_cancel_greeting_attempt.Req(
            greeting_attempt=attempt, reason=REASON.MANUALLY_CANCELLED
        )
    )
    assert isinstance(rep, IC.invite_claimer_cancel_greeting_attempt.RepGreetingAttemptNotJoined), (
        rep
    )
    rep = claimer.send(IC.invite_claimer_step.Req(greeting_attempt=attempt, claimer_step=step0_c()))
    assert isinstance(rep, CS.RepGreetingAttemptNotJoined), rep
    attempt2 = start_claimer(claimer, alice.user_id)
    assert attempt2 == attempt
    rep = alice.send(
        AC.invite_greeter_cancel_greeting_attempt.Req(
            greeting_attempt=attempt, reason=REASON.INVALID_SAS_CODE
        )
    )
    assert isinstance(rep, AC.invite_greeter_cancel_greeting_attempt.RepOk), rep
    for rep in (
        alice.send(
            AC.invite_greeter_cancel_greeting_attempt.Req(
                greeting_attempt=attempt, reason=REASON.MANUALLY_CANCELLED
            )
        ),
        claimer.send(
            IC.invite_claimer_cancel_greeting_attempt.Req(
                greeting_attempt=attempt, reason=REASON.MANUALLY_CANCELLED
            )
        ),
    ):
        assert type(rep).__name__ == "RepGreetingAttemptAlreadyCancelled", rep
        assert (rep.origin, rep.reason) == (p.GreeterOrClaimer.GREETER, REASON.INVALID_SAS_CODE)
    rep = claimer.send(IC.invite_claimer_step.Req(greeting_attempt=attempt, claimer_step=step0_c()))
    assert isinstance(rep, CS.RepGreetingAttemptCancelled), rep
    assert rep.reason == REASON.INVALID_SAS_CODE
    unknown = p.GreetingAttemptID.new()
    rep = alice.send(
        AC.invite_greeter_cancel_greeting_attempt.Req(
            greeting_attempt=unknown, reason=REASON.MANUALLY_CANCELLED
        )
    )
    assert isinstance(rep, AC.invite_greeter_cancel_greeting_attempt.RepGreetingAttemptNotFound), (
        rep
    )
    rep = claimer.send(
        IC.invite_claimer_cancel_greeting_attempt.Req(
            greeting_attempt=unknown, reason=REASON.MANUALLY_CANCELLED
        )
    )
    assert isinstance(rep, IC.invite_claimer_cancel_greeting_attempt.RepGreetingAttemptNotFound), (
        rep
    )


@pytest.mark.parametrize(
    "reason",
    [
        REASON.INVALID_NONCE_HASH,
        REASON.UNDECIPHERABLE_PAYLOAD,
        REASON.UNDESERIALIZABLE_PAYLOAD,
        REASON.INCONSISTENT_PAYLOAD,
    ],
)
def test_cancellation_reason_reaches_the_peer(
    org: Org, alice: AuthenticatedClient, reason: Any
) -> None:
    claimer = invited(org, invite_user(alice))
    greeting = Greeting.start(alice, claimer)
    rep = claimer.send(
        IC.invite_claimer_cancel_greeting_attempt.Req(
            greeting_attempt=greeting.attempt, reason=reason
        )
    )
    assert isinstance(rep, IC.invite_claimer_cancel_greeting_attempt.RepOk), rep
    rep = greeting.g_step(step0_g())
    assert isinstance(rep, GS.RepGreetingAttemptCancelled), rep
    assert (rep.origin, rep.reason) == (p.GreeterOrClaimer.CLAIMER, reason)


def test_several_greeters(org: Org, alice: AuthenticatedClient) -> None:
    adam = alice.create_user("adam", p.UserProfile.ADMIN)
    token = invite_user(alice)
    claimer = invited(org, token)
    with_alice = start_claimer(claimer, alice.user_id)
    with_adam = start_claimer(claimer, adam.user_id)
    assert with_alice != with_adam
    assert start_greeter(adam, token) == with_adam
    rep = adam.send(GS.Req(greeting_attempt=with_alice, greeter_step=step0_g()))
    assert isinstance(rep, GS.RepGreetingAttemptNotFound), rep
    rep = alice.send(GS.Req(greeting_attempt=with_alice, greeter_step=step0_g()))
    assert isinstance(rep, GS.RepGreetingAttemptNotJoined), rep
    # adam's greeting runs to its end although alice's attempt is idle.
    Greeting(adam, claimer, with_adam).run(b"claimer", b"greeter")
    assert isinstance(adam.send(AC.invite_complete.Req(token=token)), AC.invite_complete.RepOk)
    rep = alice.send(GS.Req(greeting_attempt=with_alice, greeter_step=step0_g()))
    assert isinstance(rep, GS.RepInvitationCompleted), rep
    rep = alice.send(
        AC.invite_greeter_cancel_greeting_attempt.Req(
            greeting_attempt=with_alice, reason=REASON.MANUALLY_CANCELLED
        )
    )
    assert isinstance(rep, AC.invite_greeter_cancel_greeting_attempt.RepInvitationCompleted), rep


def test_attempt_of_another_invitation(org: Org, alice: AuthenticatedClient) -> None:
    c1 = invited(org, invite_user(alice, "one@example.com"))
    c2 = invited(org, invite_user(alice, "two@example.com"))
    g1 = Greeting.start(alice, c1)
    rep = c2.send(IC.invite_claimer_step.Req(greeting_attempt=g1.attempt, claimer_step=step0_c()))
    assert isinstance(rep, CS.RepGreetingAttemptNotFound), rep
    rep = c2.send(
        IC.invite_claimer_cancel_greeting_attempt.Req(
            greeting_attempt=g1.attempt, reason=REASON.MANUALLY_CANCELLED
        )
    )
    assert isinstance(rep, IC.invite_claimer_cancel_greeting_attempt.RepGreetingAttemptNotFound), (
        rep
    )


# --- steps ----------------------------------------------------------------------------------------


def test_claimer_out_of_order_and_retries(org: Org, alice: AuthenticatedClient) -> None:
    claimer = invited(org, invite_user(alice))
    greeting = Greeting.start(alice, claimer)
    commit = CS.ClaimerStepNumber1SendHashedNonce(hashed_nonce=p.HashDigest.from_data(b"nonce"))
    assert isinstance(greeting.c_step(commit), CS.RepStepTooAdvanced)
    assert isinstance(greeting.c_step(CS.ClaimerStepNumber8Acknowledge()), CS.RepStepTooAdvanced)
    c0, g0 = step0_c(), step0_g()
    assert isinstance(greeting.c_step(c0), CS.RepNotReady)
    assert isinstance(greeting.c_step(c0), CS.RepNotReady)  # polling
    assert isinstance(greeting.c_step(step0_c()), CS.RepStepMismatch)
    assert isinstance(greeting.c_step(commit), CS.RepStepTooAdvanced)  # greeter not there yet
    rep = greeting.g_step(g0)
    assert isinstance(rep, GS.RepOk) and repr(rep.claimer_step) == repr(c0)
    assert isinstance(greeting.c_step(commit), CS.RepNotReady)
    assert isinstance(greeting.c_step(CS.ClaimerStepNumber2GetNonce()), CS.RepStepTooAdvanced)
    # A reply lost: the claimer replays step 0 and gets the same answer.
    rep = greeting.c_step(c0)
    assert isinstance(rep, CS.RepOk) and repr(rep.greeter_step) == repr(g0)
    rep = greeting.g_step(GS.GreeterStepNumber1GetHashedNonce())
    assert isinstance(rep, GS.RepOk) and repr(rep.claimer_step) == repr(commit)
    other_commit = CS.ClaimerStepNumber1SendHashedNonce(
        hashed_nonce=p.HashDigest.from_data(b"other")
    )
    assert isinstance(greeting.c_step(other_commit), CS.RepStepMismatch)


def test_claimer_steps_need_api_5_2(org: Org, alice: AuthenticatedClient) -> None:
    claimer = invited(org, invite_user(alice))
    greeting = Greeting.start(alice, claimer)
    body = CS.Req(greeting_attempt=greeting.attempt, claimer_step=step0_c()).dump()
    for version in ("5.0", "5.1"):
        assert (
            claimer.post(body, headers=claimer.headers(**{"Api-Version": version})).status_code
            == 422
        )
    assert claimer.post(body, headers=claimer.headers(**{"Api-Version": "5.2"})).status_code == 200


# --- who may greet --------------------------------------------------------------------------------


def test_greeter_demoted_then_revoked_mid_greeting(org: Org, alice: AuthenticatedClient) -> None:
    adam = alice.create_user("adam", p.UserProfile.ADMIN)
    claimer = invited(org, invite_user(alice))
    greeting = Greeting.start(adam, claimer)
    assert isinstance(
        alice.update_profile(adam.user_id, p.UserProfile.STANDARD), AC.user_update.RepOk
    )
    assert isinstance(greeting.g_step(step0_g()), GS.RepAuthorNotAllowed)
    assert isinstance(greeting.c_step(step0_c()), CS.RepGreeterNotAllowed)
    rep = claimer.send(
        IC.invite_claimer_cancel_greeting_attempt.Req(
            greeting_attempt=greeting.attempt, reason=REASON.MANUALLY_CANCELLED
        )
    )
    assert isinstance(rep, IC.invite_claimer_cancel_greeting_attempt.RepGreeterNotAllowed), rep
    rep = adam.send(
        AC.invite_greeter_cancel_greeting_attempt.Req(
            greeting_attempt=greeting.attempt, reason=REASON.MANUALLY_CANCELLED
        )
    )
    assert isinstance(rep, AC.invite_greeter_cancel_greeting_attempt.RepAuthorNotAllowed), rep
    assert isinstance(alice.revoke(adam.user_id), AC.user_revoke.RepOk)
    assert isinstance(greeting.c_step(step0_c()), CS.RepGreeterRevoked)
    rep = claimer.send(
        IC.invite_claimer_cancel_greeting_attempt.Req(
            greeting_attempt=greeting.attempt, reason=REASON.MANUALLY_CANCELLED
        )
    )
    assert isinstance(rep, IC.invite_claimer_cancel_greeting_attempt.RepGreeterRevoked), rep


def test_device_invitation_is_greeted_by_its_user_only(
    org: Org, alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    token = bob.send(AC.invite_new_device.Req(send_email=False)).token
    claimer = invited(org, token)
    rep = claimer.send(IC.invite_claimer_start_greeting_attempt.Req(greeter=alice.user_id))
    assert isinstance(rep, IC.invite_claimer_start_greeting_attempt.RepGreeterNotAllowed), rep
    rep = alice.send(AC.invite_greeter_start_greeting_attempt.Req(token=token))
    assert isinstance(rep, AC.invite_greeter_start_greeting_attempt.RepAuthorNotAllowed), rep
    # Another device of bob's is bob: it may greet.
    bob2 = bob.create_device("bob-dev2")
    assert isinstance(Greeting.start(bob2, claimer), Greeting)


def test_ended_invitation(org: Org, alice: AuthenticatedClient) -> None:
    token = invite_user(alice)
    claimer = invited(org, token)
    greeting = Greeting.start(alice, claimer)
    assert isinstance(alice.send(AC.invite_cancel.Req(token=token)), AC.invite_cancel.RepOk)
    assert isinstance(greeting.g_step(step0_g()), GS.RepInvitationCancelled)
    rep = alice.send(
        AC.invite_greeter_cancel_greeting_attempt.Req(
            greeting_attempt=greeting.attempt, reason=REASON.MANUALLY_CANCELLED
        )
    )
    assert isinstance(rep, AC.invite_greeter_cancel_greeting_attempt.RepInvitationCancelled), rep
    for req in (
        CS.Req(greeting_attempt=greeting.attempt, claimer_step=step0_c()),
        IC.invite_claimer_start_greeting_attempt.Req(greeter=alice.user_id),
        IC.invite_claimer_cancel_greeting_attempt.Req(
            greeting_attempt=greeting.attempt, reason=REASON.MANUALLY_CANCELLED
        ),
    ):
        assert claimer.post(req.dump()).status_code == 410


# --- events ---------------------------------------------------------------------------------------


def next_event(stream: SseStream) -> Any:
    rep = stream.next_data().rep()
    assert isinstance(rep, EL.RepOk), rep
    return rep.unit


def test_greeting_attempt_events(
    org: Org, alice: AuthenticatedClient, bob: AuthenticatedClient
) -> None:
    token = invite_user(alice)
    claimer = invited(org, token)
    with alice.events() as stream, bob.events() as b_stream:
        assert isinstance(next_event(stream), EL.APIEventOrganizationConfig)
        assert isinstance(next_event(b_stream), EL.APIEventOrganizationConfig)
        attempt = start_claimer(claimer, alice.user_id)
        start_greeter(alice, token)
        greeting = Greeting(alice, claimer, attempt)
        c0 = step0_c()
        assert isinstance(
            greeting.c_step(c0), CS.RepNotReady
        )  # the claimer waits: the greeter is told
        ev = next_event(stream)
        assert isinstance(ev, EL.APIEventGreetingAttemptReady), ev
        assert (ev.token, ev.greeting_attempt) == (token, attempt)
        assert isinstance(greeting.g_step(step0_g()), GS.RepOk)
        ev = next_event(stream)
        assert isinstance(ev, EL.APIEventGreetingAttemptJoined), ev
        assert ev.greeting_attempt == attempt
        rep = claimer.send(
            IC.invite_claimer_cancel_greeting_attempt.Req(
                greeting_attempt=attempt, reason=REASON.MANUALLY_CANCELLED
            )
        )
        assert isinstance(rep, IC.invite_claimer_cancel_greeting_attempt.RepOk)
        ev = next_event(stream)
        assert isinstance(ev, EL.APIEventGreetingAttemptCancelled), ev
        assert ev.greeting_attempt == attempt
        # None of this concerned bob.
        bob.ping("after")
        assert isinstance(next_event(b_stream), EL.APIEventPinged)


def test_many_polls_stay_consistent(org: Org, alice: AuthenticatedClient) -> None:
    claimer = invited(org, invite_user(alice))
    greeting = Greeting.start(alice, claimer)
    c0, g0 = step0_c(), step0_g()
    for _ in range(5):
        assert isinstance(greeting.c_step(c0), CS.RepNotReady)
    for _ in range(3):
        rep = greeting.g_step(g0)
        assert isinstance(rep, GS.RepOk) and repr(rep.claimer_step) == repr(c0)
    rep = greeting.c_step(c0)
    assert isinstance(rep, CS.RepOk) and repr(rep.greeter_step) == repr(g0)
