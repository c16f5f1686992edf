"""Shamir recovery (protocol.md §4.8, §4.9): setup and deletion with every status, the shamir topic
of certificate_get, and a recovery: a share holder invites the user back, greets him, and the user
reveals his ciphered data with the reveal token rebuilt from the shares."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import parsec._parsec as p
import pytest
from client import AC, IC, AuthenticatedClient, InvitedClient, Org, now
from test_inv_greeting import Greeting, step0_c

SETUP = AC.shamir_recovery_setup
DELETE = AC.shamir_recovery_delete


def brief(
    author: AuthenticatedClient,
    ts: p.DateTime,
    shares: dict[p.UserID, int],
    threshold: int = 1,
    user_id: p.UserID | None = None,
) -> bytes:
    return author.sign(
        p.ShamirRecoveryBriefCertificate(
            author=author.device_id,
            user_id=user_id or author.user_id,
            timestamp=ts,
            threshold=threshold,
            per_recipient_shares=shares,
        )
    )


def share(author: AuthenticatedClient, ts: p.DateTime, recipient: p.UserID) -> bytes:
    return author.sign(
        p.ShamirRecoveryShareCertificate(
            author=author.device_id,
            user_id=author.user_id,
            timestamp=ts,
            recipient=recipient,
            ciphered_share=b"share-for-" + recipient.bytes,
        )
    )


def setup_req(
    author: AuthenticatedClient,
    recipients: list[AuthenticatedClient],
    ts: p.DateTime | None = None,
    reveal_token: p.AccessToken | None = None,
    **override: Any,
) -> Any:
    ts = ts or now()
    fields: dict[str, Any] = {
        "ciphered_data": b"ciphered-device-keys",
        "reveal_token": reveal_token or p.AccessToken.new(),
        "shamir_recovery_brief_certificate": brief(
            author, ts, {r.user_id: 1 for r in recipients}, threshold=min(2, len(recipients))
        ),
        "shamir_recovery_share_certificates": [share(author, ts, r.user_id) for r in recipients],
    }
    fields.update(override)
    return SETUP.Req(**fields)


def delete_req(
    author: AuthenticatedClient,
    setup_ts: p.DateTime,
    recipients: list[p.UserID],
    ts: p.DateTime | None = None,
    user_id: p.UserID | None = None,
) -> Any:
    cert = p.ShamirRecoveryDeletionCertificate(
        author=author.device_id,
        timestamp=ts or now(),
        setup_to_delete_timestamp=setup_ts,
        setup_to_delete_user_id=user_id or author.user_id,
        share_recipients=set(recipients),
    )
    return DELETE.Req(shamir_recovery_deletion_certificate=author.sign(cert))


def shamir_certs(who: AuthenticatedClient, after: p.DateTime | None = None) -> list[bytes]:
    return list(who.certificates(shamir_recovery_after=after).shamir_recovery_certificates)


@pytest.fixture
def carol(alice: AuthenticatedClient) -> AuthenticatedClient:
    return alice.create_user("carol")


@pytest.fixture
def dave(alice: AuthenticatedClient) -> AuthenticatedClient:
    return alice.create_user("dave")


# --- setup ----------------------------------------------------------------------------------------


def test_setup_and_certificate_visibility(
    alice: AuthenticatedClient,
    bob: AuthenticatedClient,
    carol: AuthenticatedClient,
    dave: AuthenticatedClient,
) -> None:
    ts = now()
    assert isinstance(alice.send(setup_req(alice, [bob, carol], ts=ts)), SETUP.RepOk)
    owner = shamir_certs(alice)
    assert len(owner) == 1
    b = p.ShamirRecoveryBriefCertificate.verify_and_load(
        owner[0], alice.device.verify_key, expected_author=alice.device_id
    )
    assert (b.user_id, b.threshold, b.timestamp) == (alice.user_id, 2, ts)
    assert b.per_recipient_shares == {bob.user_id: 1, carol.user_id: 1}
    for who in (bob, carol):
        certs = shamir_certs(who)
        assert len(certs) == 2 and certs[0] == owner[0]  # brief first, then its own share only
        s = p.ShamirRecoveryShareCertificate.verify_and_load(
            certs[1],
            alice.device.verify_key,
            expected_author=alice.device_id,
            expected_recipient=who.user_id,
        )
        assert s.ciphered_share == b"share-for-" + who.user_id.bytes
    assert shamir_certs(dave) == []
    assert shamir_certs(bob, after=ts) == []


@pytest.mark.parametrize(
    "case",
    [
        "brief_garbage",
        "brief_other_signer",
        "user_id_not_self",
        "missing_share",
        "share_garbage",
        "share_timestamp",
        "share_recipient_not_in_brief",
        "duplicate_share",
        "author_as_recipient",
    ],
)
def test_setup_invalid_certificates(
    case: str,
    alice: AuthenticatedClient,
    bob: AuthenticatedClient,
    carol: AuthenticatedClient,
    dave: AuthenticatedClient,
) -> None:
    ts = now()
    two = {bob.user_id: 1, carol.user_id: 1}
    s_bob = share(alice, ts, bob.user_id)
    override, expected = {
        "brief_garbage": (
            {"shamir_recovery_brief_certificate": b"garbage"},
            SETUP.RepInvalidCertificateBriefCorrupted,
        ),
        "brief_other_signer": (
            {"shamir_recovery_brief_certificate": brief(bob, ts, two, user_id=alice.user_id)},
            SETUP.RepInvalidCertificateBriefCorrupted,
        ),
        "user_id_not_self": (
            {"shamir_recovery_brief_certificate": brief(alice, ts, two, user_id=bob.user_id)},
            SETUP.RepInvalidCertificateUserIdMustBeSelf,
        ),
        "missing_share": (
            {"shamir_recovery_share_certificates": [s_bob]},
            SETUP.RepInvalidCertificateMissingShareForRecipient,
        ),
        "share_garbage": (
            {"shamir_recovery_share_certificates": [s_bob, b"garbage"]},
            SETUP.RepInvalidCertificateShareCorrupted,
        ),
        "share_timestamp": (
            {
                "shamir_recovery_share_certificates": [
                    s_bob,
                    share(alice, ts.add(seconds=1), carol.user_id),
                ]
            },
            SETUP.RepInvalidCertificateShareInconsistentTimestamp,
        ),
        "share_recipient_not_in_brief": (
            {"shamir_recovery_share_certificates": [s_bob, share(alice, ts, dave.user_id)]},
            SETUP.RepInvalidCertificateShareRecipientNotInBrief,
        ),
        "duplicate_share": (
            {"shamir_recovery_share_certificates": [s_bob, s_bob]},
            SETUP.RepInvalidCertificateDuplicateShareForRecipient,
        ),
        "author_as_recipient": (
            {
                "shamir_recovery_brief_certificate": brief(
                    alice, ts, {bob.user_id: 1, alice.user_id: 1}
                ),
                "shamir_recovery_share_certificates": [s_bob, share(alice, ts, alice.user_id)],
            },
            SETUP.RepInvalidCertificateAuthorIncludedAsRecipient,
        ),
    }[case]
    rep = alice.send(setup_req(alice, [bob, carol], ts=ts, **override))
    assert isinstance(rep, expected), rep


def test_setup_recipients_and_timestamps(
    alice: AuthenticatedClient, bob: AuthenticatedClient, dave: AuthenticatedClient
) -> None:
    ghost = SimpleNamespace(user_id=p.UserID.new())  # nobody in the organization
    rep = alice.send(setup_req(alice, [bob, ghost]))  # type: ignore[list-item]
    assert isinstance(rep, SETUP.RepRecipientNotFound), rep
    revoked_at = now()
    assert isinstance(alice.revoke(dave.user_id, timestamp=revoked_at), AC.user_revoke.RepOk)
    rep = alice.send(setup_req(alice, [bob, dave]))
    assert isinstance(rep, SETUP.RepRevokedRecipient), rep
    assert rep.last_common_certificate_timestamp == revoked_at
    old = now().subtract(seconds=600)
    rep = alice.send(setup_req(alice, [bob], ts=old))
    assert isinstance(rep, SETUP.RepTimestampOutOfBallpark), rep
    assert rep.client_timestamp == old
    assert (rep.ballpark_client_early_offset, rep.ballpark_client_late_offset) == (300.0, 320.0)
    rep = alice.send(setup_req(alice, [bob], ts=revoked_at))
    assert isinstance(rep, SETUP.RepRequireGreaterTimestamp), rep
    assert rep.strictly_greater_than == revoked_at


def test_one_setup_at_a_time(
    alice: AuthenticatedClient, bob: AuthenticatedClient, carol: AuthenticatedClient
) -> None:
    ts = now()
    assert isinstance(alice.send(setup_req(alice, [bob], ts=ts)), SETUP.RepOk)
    rep = alice.send(setup_req(alice, [carol], shamir_recovery_brief_certificate=b"garbage"))
    assert isinstance(rep, SETUP.RepShamirRecoveryAlreadyExists), (
        rep
    )  # checked before the certificates
    assert rep.last_shamir_certificate_timestamp == ts
    # Another user's setup must come after the shamir topic.
    rep = bob.send(setup_req(bob, [carol], ts=ts))
    assert isinstance(rep, SETUP.RepRequireGreaterTimestamp), rep
    assert rep.strictly_greater_than == ts
    assert isinstance(bob.send(setup_req(bob, [carol])), SETUP.RepOk)


# --- delete ---------------------------------------------------------------------------------------


def test_delete_statuses(
    alice: AuthenticatedClient,
    bob: AuthenticatedClient,
    carol: AuthenticatedClient,
    dave: AuthenticatedClient,
) -> None:
    ts = now()
    assert isinstance(alice.send(setup_req(alice, [bob, carol], ts=ts)), SETUP.RepOk)
    rep = alice.send(DELETE.Req(shamir_recovery_deletion_certificate=b"garbage"))
    assert isinstance(rep, DELETE.RepInvalidCertificateCorrupted), rep
    rep = bob.send(delete_req(bob, ts, [bob.user_id, carol.user_id], user_id=alice.user_id))
    assert isinstance(rep, DELETE.RepInvalidCertificateUserIdMustBeSelf), rep
    recipients = [bob.user_id, carol.user_id]
    rep = alice.send(delete_req(alice, ts.add(microseconds=1), recipients))
    assert isinstance(rep, DELETE.RepShamirRecoveryNotFound), rep
    rep = alice.send(delete_req(alice, ts, [bob.user_id]))
    assert isinstance(rep, DELETE.RepRecipientsMismatch), rep
    rep = alice.send(delete_req(alice, ts, [*recipients, dave.user_id]))
    assert isinstance(rep, DELETE.RepRecipientsMismatch), rep
    rep = alice.send(delete_req(alice, ts, recipients, ts=now().subtract(seconds=600)))
    assert isinstance(rep, DELETE.RepTimestampOutOfBallpark), rep
    rep = alice.send(delete_req(alice, ts, recipients, ts=ts))
    assert isinstance(rep, DELETE.RepRequireGreaterTimestamp), rep
    assert rep.strictly_greater_than == ts
    deleted_at = now()
    assert isinstance(alice.send(delete_req(alice, ts, recipients, ts=deleted_at)), DELETE.RepOk)
    rep = alice.send(delete_req(alice, ts, recipients))
    assert isinstance(rep, DELETE.RepShamirRecoveryAlreadyDeleted), rep
    assert rep.last_shamir_certificate_timestamp == deleted_at
    # The deletion certificate reaches the owner and the recipients.
    assert len(shamir_certs(alice)) == 2
    assert len(shamir_certs(bob)) == 3
    assert len(shamir_certs(bob, after=ts)) == 1
    # A new setup is possible again.
    assert isinstance(alice.send(setup_req(alice, [dave])), SETUP.RepOk)


# --- recovery -------------------------------------------------------------------------------------


def test_recovery(
    org: Org,
    alice: AuthenticatedClient,
    bob: AuthenticatedClient,
    carol: AuthenticatedClient,
    dave: AuthenticatedClient,
) -> None:
    new = AC.invite_new_shamir_recovery
    rep = bob.send(new.Req(claimer_user_id=alice.user_id, send_email=False))
    assert isinstance(rep, new.RepAuthorNotAllowed), rep  # no setup yet
    setup_ts = now()
    reveal_token = p.AccessToken.new()
    rep = alice.send(setup_req(alice, [bob, carol], ts=setup_ts, reveal_token=reveal_token))
    assert isinstance(rep, SETUP.RepOk), rep
    rep = bob.send(new.Req(claimer_user_id=p.UserID.new(), send_email=False))
    assert isinstance(rep, new.RepUserNotFound), rep
    rep = dave.send(new.Req(claimer_user_id=alice.user_id, send_email=False))
    assert isinstance(rep, new.RepAuthorNotAllowed), rep  # not a share holder
    rep = bob.send(new.Req(claimer_user_id=alice.user_id, send_email=False))
    assert isinstance(rep, new.RepOk), rep
    token = rep.token
    assert carol.send(new.Req(claimer_user_id=alice.user_id, send_email=False)).token == token

    for who, sees in ((bob, True), (carol, True), (dave, False), (alice, False)):
        items = [
            i
            for i in who.send(AC.invite_list.Req()).invitations
            if isinstance(i, AC.invite_list.InviteListItemShamirRecovery)
        ]
        assert [i.token for i in items] == ([token] if sees else [])
        if sees:
            assert items[0].claimer_user_id == alice.user_id
            assert items[0].shamir_recovery_created_on == setup_ts
            assert items[0].status == p.InvitationStatus.PENDING

    claimer = InvitedClient(org.http, org.organization_id, token)
    unit = claimer.send(IC.invite_info.Req()).unit
    assert isinstance(unit, IC.invite_info.InvitationTypeShamirRecovery), unit
    assert unit.claimer_user_id == alice.user_id
    assert unit.claimer_human_handle == alice.device.human_handle
    assert unit.shamir_recovery_created_on == setup_ts
    assert unit.threshold == 2
    assert [(r.user_id, r.shares, r.revoked_on) for r in unit.recipients] == [
        (bob.user_id, 1, None),
        (carol.user_id, 1, None),
    ]
    assert unit.created_by.user_id == bob.user_id

    # Only share holders greet.
    rep = claimer.send(IC.invite_claimer_start_greeting_attempt.Req(greeter=dave.user_id))
    assert isinstance(rep, IC.invite_claimer_start_greeting_attempt.RepGreeterNotAllowed), rep
    rep = dave.send(AC.invite_greeter_start_greeting_attempt.Req(token=token))
    assert isinstance(rep, AC.invite_greeter_start_greeting_attempt.RepAuthorNotAllowed), rep
    # Each share holder greets the claimer, who gets their share in the greeter payload.
    shares = []
    for holder in (bob, carol):
        _, greeter_payload = Greeting.start(holder, claimer).run(
            b"claimer-hello", b"share-of-" + holder.user_id.bytes
        )
        shares.append(greeter_payload)
    assert shares == [b"share-of-" + bob.user_id.bytes, b"share-of-" + carol.user_id.bytes]

    # With the token rebuilt from the shares, the claimer gets its device keys back.
    rep = claimer.send(IC.invite_shamir_recovery_reveal.Req(reveal_token=p.AccessToken.new()))
    assert isinstance(rep, IC.invite_shamir_recovery_reveal.RepBadRevealToken), rep
    rep = claimer.send(IC.invite_shamir_recovery_reveal.Req(reveal_token=reveal_token))
    assert isinstance(rep, IC.invite_shamir_recovery_reveal.RepOk), rep
    assert rep.ciphered_data == b"ciphered-device-keys"
    # Not through another kind of invitation.
    user_token = alice.send(
        AC.invite_new_user.Req(claimer_email=p.EmailAddress("z@example.com"), send_email=False)
    ).token
    rep = InvitedClient(org.http, org.organization_id, user_token).send(
        IC.invite_shamir_recovery_reveal.Req(reveal_token=reveal_token)
    )
    assert isinstance(rep, IC.invite_shamir_recovery_reveal.RepBadInvitationType), rep
    assert isinstance(bob.send(AC.invite_complete.Req(token=token)), AC.invite_complete.RepOk)
    assert claimer.post(IC.invite_info.Req().dump()).status_code == 410


def test_deleted_setup_ends_its_recovery(
    org: Org, alice: AuthenticatedClient, bob: AuthenticatedClient, carol: AuthenticatedClient
) -> None:
    setup_ts = now()
    reveal_token = p.AccessToken.new()
    assert isinstance(
        alice.send(setup_req(alice, [bob, carol], ts=setup_ts, reveal_token=reveal_token)),
        SETUP.RepOk,
    )
    token = bob.send(
        AC.invite_new_shamir_recovery.Req(claimer_user_id=alice.user_id, send_email=False)
    ).token
    claimer = InvitedClient(org.http, org.organization_id, token)
    greeting = Greeting.start(bob, claimer)
    assert isinstance(
        alice.send(delete_req(alice, setup_ts, [bob.user_id, carol.user_id])), DELETE.RepOk
    )
    for req in (
        IC.invite_info.Req(),
        IC.invite_shamir_recovery_reveal.Req(reveal_token=reveal_token),
        IC.invite_claimer_step.Req(greeting_attempt=greeting.attempt, claimer_step=step0_c()),
    ):
        assert claimer.post(req.dump()).status_code == 410
    rep = bob.send(AC.invite_greeter_start_greeting_attempt.Req(token=token))
    assert isinstance(rep, AC.invite_greeter_start_greeting_attempt.RepInvitationCancelled), rep
    items = [i for i in bob.send(AC.invite_list.Req()).invitations if i.token == token]
    assert items[0].status == p.InvitationStatus.CANCELLED
    rep = bob.send(
        AC.invite_new_shamir_recovery.Req(claimer_user_id=alice.user_id, send_email=False)
    )
    assert isinstance(rep, AC.invite_new_shamir_recovery.RepAuthorNotAllowed), rep


def test_revoked_share_holder(
    org: Org, alice: AuthenticatedClient, bob: AuthenticatedClient, carol: AuthenticatedClient
) -> None:
    assert isinstance(alice.send(setup_req(alice, [bob, carol])), SETUP.RepOk)
    token = bob.send(
        AC.invite_new_shamir_recovery.Req(claimer_user_id=alice.user_id, send_email=False)
    ).token
    assert isinstance(alice.revoke(carol.user_id), AC.user_revoke.RepOk)
    claimer = InvitedClient(org.http, org.organization_id, token)
    rep = claimer.send(IC.invite_claimer_start_greeting_attempt.Req(greeter=carol.user_id))
    assert isinstance(rep, IC.invite_claimer_start_greeting_attempt.RepGreeterRevoked), rep
    recipients = claimer.send(IC.invite_info.Req()).unit.recipients
    assert [r.revoked_on is not None for r in recipients] == [False, True]
