"""TOTP multi-factor with the official client library: set up, required to fetch an opaque key
(wrong codes throttled), reset by the administrator (the reset e-mail on the loopback SMTP server)
and set up again with the reset token. Codes are computed by the official server's own TOTP
(`parsec.components.totp`, installed beside the client library)."""

from __future__ import annotations

from typing import Any

import parsec._parsec as p
import pytest
from client import AC, ANC, AuthenticatedClient, Org
from mail_support import Mailbox
from parsec.components.totp import compute_totp_one_time_password


def code(secret: bytes, steps: int = 0) -> str:
    return compute_totp_one_time_password(now=p.DateTime.now(), secret=secret, window_offset=steps)


def wrong(secret: bytes) -> str:
    accepted = {code(secret, s) for s in (-2, -1, 0, 1, 2)}
    return next(c for c in (f"{i:06d}" for i in range(10)) if c not in accepted)


def setup_totp(alice: AuthenticatedClient) -> bytes:
    rep = alice.send(AC.totp_setup_get_secret.Req())
    assert isinstance(rep, AC.totp_setup_get_secret.RepOk), rep
    secret: bytes = rep.totp_secret
    rep = alice.send(AC.totp_setup_confirm.Req(one_time_password=code(secret)))
    assert isinstance(rep, AC.totp_setup_confirm.RepOk), rep
    return secret


def fetch(org: Org, user_id: p.UserID, key_id: p.TOTPOpaqueKeyID, otp: str) -> Any:
    return org.anonymous.send(
        ANC.totp_fetch_opaque_key.Req(user_id=user_id, opaque_key_id=key_id, one_time_password=otp)
    )


def reset_totp(org: Org, **body: Any) -> Any:
    return org.admin.request(
        "POST", f"/organizations/{org.organization_id}/users/reset_totp", json=body
    )


def test_totp_setup(alice: AuthenticatedClient) -> None:
    first = alice.send(AC.totp_setup_get_secret.Req())
    assert isinstance(first, AC.totp_setup_get_secret.RepOk), first
    assert len(first.totp_secret) == 20
    again = alice.send(AC.totp_setup_get_secret.Req())
    assert again.totp_secret == first.totp_secret  # the pending secret, until confirmed
    secret = first.totp_secret
    rep = alice.send(AC.totp_setup_confirm.Req(one_time_password=wrong(secret)))
    assert isinstance(rep, AC.totp_setup_confirm.RepInvalidOneTimePassword), rep
    rep = alice.send(AC.totp_setup_confirm.Req(one_time_password=code(secret, -1)))
    assert isinstance(rep, AC.totp_setup_confirm.RepOk), rep  # one step of drift accepted
    rep = alice.send(AC.totp_setup_get_secret.Req())
    assert isinstance(rep, AC.totp_setup_get_secret.RepAlreadySetup), rep
    rep = alice.send(AC.totp_setup_confirm.Req(one_time_password=code(secret)))
    assert isinstance(rep, AC.totp_setup_confirm.RepAlreadySetup), rep


def test_opaque_key_needs_the_code(org: Org, alice: AuthenticatedClient) -> None:
    bob = alice.create_user("bob")
    bob_secret = bob.send(AC.totp_setup_get_secret.Req()).totp_secret
    bob_key = bob.send(AC.totp_create_opaque_key.Req())
    assert isinstance(bob_key, AC.totp_create_opaque_key.RepOk), bob_key
    # Setup not confirmed: even the right code is refused, like a wrong one.
    rep = fetch(org, bob.user_id, bob_key.opaque_key_id, code(bob_secret))
    assert isinstance(rep, ANC.totp_fetch_opaque_key.RepInvalidOneTimePassword), rep

    secret = setup_totp(alice)
    key = alice.send(AC.totp_create_opaque_key.Req())
    assert isinstance(key, AC.totp_create_opaque_key.RepOk), key
    rep = fetch(org, alice.user_id, key.opaque_key_id, code(secret))
    assert isinstance(rep, ANC.totp_fetch_opaque_key.RepOk), rep
    assert rep.opaque_key.secret == key.opaque_key.secret
    # Another user's key, an unknown key or user: indistinguishable from a wrong code.
    for user_id, key_id in (
        (bob.user_id, key.opaque_key_id),
        (alice.user_id, p.TOTPOpaqueKeyID.new()),
        (p.UserID.new(), key.opaque_key_id),
    ):
        rep = fetch(org, user_id, key_id, code(secret))
        assert isinstance(rep, ANC.totp_fetch_opaque_key.RepInvalidOneTimePassword), rep


def test_wrong_codes_are_throttled(org: Org, alice: AuthenticatedClient) -> None:
    secret = setup_totp(alice)
    key = alice.send(AC.totp_create_opaque_key.Req())
    other = alice.send(AC.totp_create_opaque_key.Req())
    # 2^(n-1) s after the n-th wrong code: a few wrong codes in a row reach a throttle of seconds
    # (the first waits only 1 s, which a slow machine may let pass).
    throttled = None
    for _ in range(6):
        rep = fetch(org, alice.user_id, key.opaque_key_id, wrong(secret))
        if isinstance(rep, ANC.totp_fetch_opaque_key.RepThrottled):
            throttled = rep
            break
        assert isinstance(rep, ANC.totp_fetch_opaque_key.RepInvalidOneTimePassword), rep
    assert throttled is not None
    assert throttled.wait_until > p.DateTime.now()
    # The right code too is refused while throttled...
    rep = fetch(org, alice.user_id, key.opaque_key_id, code(secret))
    assert isinstance(rep, ANC.totp_fetch_opaque_key.RepThrottled), rep
    assert rep.wait_until == throttled.wait_until
    # ...per key: the user's other key is not.
    rep = fetch(org, alice.user_id, other.opaque_key_id, code(secret))
    assert isinstance(rep, ANC.totp_fetch_opaque_key.RepOk), rep


def test_reset_by_the_administrator(org: Org, alice: AuthenticatedClient) -> None:
    old_secret = setup_totp(alice)
    key = alice.send(AC.totp_create_opaque_key.Req())
    r = reset_totp(org, user_email=alice.device.email)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user_id"] == alice.user_id.hex
    assert body["user_email"] == alice.device.email
    assert body["email_sent_status"] == "NOT_SENT_AS_REQUESTED"
    url = p.ParsecTOTPResetAddr.from_url(body["totp_reset_url"])
    http_url = p.ParsecTOTPResetAddr.from_url(
        body["totp_reset_url_as_http_redirection"], allow_http_redirection=True
    )
    assert url == http_url
    assert url.organization_id.str == org.organization_id and url.user_id == alice.user_id

    # Until set up again, no code opens the key.
    rep = fetch(org, alice.user_id, key.opaque_key_id, code(old_secret))
    assert isinstance(rep, ANC.totp_fetch_opaque_key.RepInvalidOneTimePassword), rep
    # The anonymous setup needs the reset token.
    bad = p.AccessToken.new()
    rep = org.anonymous.send(ANC.totp_setup_get_secret.Req(user_id=alice.user_id, token=bad))
    assert isinstance(rep, ANC.totp_setup_get_secret.RepBadToken), rep
    rep = org.anonymous.send(
        ANC.totp_setup_confirm.Req(user_id=alice.user_id, token=bad, one_time_password="000000")
    )
    assert isinstance(rep, ANC.totp_setup_confirm.RepBadToken), rep
    rep = org.anonymous.send(ANC.totp_setup_get_secret.Req(user_id=alice.user_id, token=url.token))
    assert isinstance(rep, ANC.totp_setup_get_secret.RepOk), rep
    secret = rep.totp_secret
    assert secret != old_secret
    rep = org.anonymous.send(
        ANC.totp_setup_confirm.Req(
            user_id=alice.user_id, token=url.token, one_time_password=wrong(secret)
        )
    )
    assert isinstance(rep, ANC.totp_setup_confirm.RepInvalidOneTimePassword), rep
    rep = org.anonymous.send(
        ANC.totp_setup_confirm.Req(
            user_id=alice.user_id, token=url.token, one_time_password=code(secret)
        )
    )
    assert isinstance(rep, ANC.totp_setup_confirm.RepOk), rep
    # The token is spent; the key opens with the new secret.
    rep = org.anonymous.send(ANC.totp_setup_get_secret.Req(user_id=alice.user_id, token=url.token))
    assert isinstance(rep, ANC.totp_setup_get_secret.RepBadToken), rep
    rep = fetch(org, alice.user_id, key.opaque_key_id, code(secret))
    assert isinstance(rep, ANC.totp_fetch_opaque_key.RepOk), rep
    assert rep.opaque_key.secret == key.opaque_key.secret


def test_reset_email(org: Org, alice: AuthenticatedClient, mailbox: Mailbox) -> None:
    setup_totp(alice)
    address = alice.device.email
    before = mailbox.count(address, "MFA")
    r = reset_totp(org, user_id=alice.user_id.hex, send_email=True)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["email_sent_status"] == "SENT_AS_REQUESTED"
    msg = mailbox.wait_for(address, "MFA", after=before)
    assert msg["Subject"] == f"[Parsec] Your MFA has been reset for {org.organization_id}"
    text = Mailbox.text(msg)
    assert body["totp_reset_url_as_http_redirection"] in text
    links = [w for w in text.split() if "a=totp_reset" in w]
    url = p.ParsecTOTPResetAddr.from_url(links[0], allow_http_redirection=True)
    rep = org.anonymous.send(ANC.totp_setup_get_secret.Req(user_id=alice.user_id, token=url.token))
    assert isinstance(rep, ANC.totp_setup_get_secret.RepOk), rep


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({}, 400, "Missing either `user_id` or `user_email` field"),
        (
            {"user_id": "USER", "user_email": "alice@example.com"},
            400,
            "Both `user_id` and `user_email` fields are provided",
        ),
        ({"user_id": "UNKNOWN"}, 404, "User not found"),
        ({"user_email": "nobody@example.com"}, 404, "User not found"),
        ({"user_id": "REVOKED"}, 404, "User has been revoked"),
    ],
)
def test_reset_refusals(
    org: Org, alice: AuthenticatedClient, body: dict[str, Any], status: int, detail: str
) -> None:
    if body.get("user_id") == "USER":
        body = {**body, "user_id": alice.user_id.hex}
    elif body.get("user_id") == "UNKNOWN":
        body = {"user_id": p.UserID.new().hex}
    elif body.get("user_id") == "REVOKED":
        bob = alice.create_user("bob")
        alice.revoke(bob.user_id)
        body = {"user_id": bob.user_id.hex}
    r = reset_totp(org, **body)
    assert (r.status_code, r.json()["detail"]) == (status, detail), r.text
    r = org.admin.request(
        "POST", "/organizations/NoSuchOrg/users/reset_totp", json={"user_id": alice.user_id.hex}
    )
    assert (r.status_code, r.json()["detail"]) == (404, "Organization not found")
