"""Invitation emails through a real SMTP server on loopback (aiosmtpd): what leaves, to whom, and
the `email_sent` status telling what really happened."""

from __future__ import annotations

import base64
import email
import email.policy
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "commands"))

from invite_support import Org, Server, bootstrap_org, build_config, start_server

from parsec_server import email as parsec_email
from parsec_server.config import EmailConfig
from parsec_server.protocol.codec import unpackb

REFUSED = "refused@example.com"


@dataclass
class Mailbox:
    """An SMTP server's handler: keeps what it accepted, refuses one address."""

    messages: list[tuple[Envelope, EmailMessage]] = field(default_factory=list)

    async def handle_RCPT(
        self,
        server: Any,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address == REFUSED:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append((envelope, msg))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture
async def mail_org(db_url: str, smtp: tuple[Mailbox, int]) -> AsyncIterator[tuple[Org, Mailbox]]:
    box, port = smtp
    config = build_config(
        db_url, EmailConfig(host="127.0.0.1", port=port, sender="parsec@example.com")
    )
    app, http = await start_server(config)
    try:
        yield await bootstrap_org(Server(app, http)), box
    finally:
        await http.aclose()
        await app.shutdown()


def parts(msg: EmailMessage) -> tuple[str, str]:
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def invitation_link(text: str) -> str:
    links = [w for w in text.split() if "/redirect/" in w]
    assert len(links) == 1, text
    return links[0]


async def test_user_invitation_email(mail_org: tuple[Org, Mailbox]) -> None:
    org, box = mail_org
    rep = await org.auth(
        org.alice, "invite_new_user", claimer_email="zack@example.com", send_email=True
    )
    assert rep["status"] == "ok"
    assert rep["email_sent"] == "SUCCESS"
    assert len(box.messages) == 1
    envelope, msg = box.messages[0]
    assert envelope.mail_from == "parsec@example.com"
    assert envelope.rcpt_tos == ["zack@example.com"]
    assert msg["To"] == "zack@example.com"
    assert msg["From"] == "parsec@example.com"
    assert msg["Reply-To"].addresses[0].addr_spec == org.alice.email
    assert msg["Reply-To"].addresses[0].display_name == org.alice.label
    assert msg["Subject"] == f"[Parsec] Alice invited you to {org.org_id}"
    assert msg.get_content_type() == "multipart/alternative"
    text, html = parts(msg)
    link = invitation_link(text)
    # The link is the HTTP redirection to parsec3://, built from --server-addr, carrying the token.
    url = urlsplit(link)
    assert (url.scheme, url.netloc, url.path) == (
        "http",
        "parsec.example.com:6777",
        f"/redirect/{org.org_id}",
    )
    query = parse_qs(url.query)
    assert query["a"] == ["claim_user"]
    p = query["p"][0]
    assert unpackb(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) == rep["token"]
    assert f'href="{link.replace("&", "&amp;")}"' in html  # escaped in the attribute
    assert "Alice invited you to join the organization" in text and org.org_id in html
    # Reusing the pending invitation sends the same link again.
    again = await org.auth(
        org.alice, "invite_new_user", claimer_email="zack@example.com", send_email=True
    )
    assert again["token"] == rep["token"]
    assert invitation_link(parts(box.messages[1][1])[0]) == link


async def test_device_and_shamir_invitation_emails(mail_org: tuple[Org, Mailbox]) -> None:
    org, box = mail_org
    bob = await org.create_user("bob")
    rep = await org.auth(bob, "invite_new_device", send_email=True)
    assert rep["email_sent"] == "SUCCESS"
    envelope, msg = box.messages[-1]
    assert envelope.rcpt_tos == [bob.email]
    assert msg["Subject"] == f"[Parsec] New device invitation to {org.org_id}"
    assert "Reply-To" not in msg
    assert "a=claim_device" in invitation_link(parts(msg)[0])

    # Shamir recovery: bob (a share holder) invites alice back; the link goes to alice.
    ts = org.ts()
    brief = org.alice.sign(
        {
            "type": "shamir_recovery_brief_certificate",
            "timestamp": ts,
            "user_id": org.alice.user_id,
            "threshold": 1,
            "per_recipient_shares": {bob.user_id: 1},
        }
    )
    share = org.alice.sign(
        {
            "type": "shamir_recovery_share_certificate",
            "timestamp": ts,
            "user_id": org.alice.user_id,
            "recipient": bob.user_id,
            "ciphered_share": b"s",
        }
    )
    rep = await org.auth(
        org.alice,
        "shamir_recovery_setup",
        ciphered_data=b"d",
        reveal_token=bytes(16),
        shamir_recovery_brief_certificate=brief,
        shamir_recovery_share_certificates=[share],
    )
    assert rep == {"status": "ok"}
    rep = await org.auth(
        bob, "invite_new_shamir_recovery", claimer_user_id=org.alice.user_id, send_email=True
    )
    assert rep["email_sent"] == "SUCCESS"
    envelope, msg = box.messages[-1]
    assert envelope.rcpt_tos == [org.alice.email]
    assert msg["Reply-To"].addresses[0].addr_spec == bob.email
    assert "a=claim_shamir_recovery" in invitation_link(parts(msg)[0])


async def test_refused_recipient_is_reported(mail_org: tuple[Org, Mailbox]) -> None:
    org, box = mail_org
    rep = await org.auth(org.alice, "invite_new_user", claimer_email=REFUSED, send_email=True)
    assert rep["status"] == "ok"  # the invitation exists all the same
    assert rep["email_sent"] == "RECIPIENT_REFUSED"
    assert box.messages == []
    listed = (await org.auth(org.alice, "invite_list"))["invitations"]
    assert [i["token"] for i in listed] == [rep["token"]]


async def test_send_email_false_sends_nothing(mail_org: tuple[Org, Mailbox]) -> None:
    org, box = mail_org
    rep = await org.auth(
        org.alice, "invite_new_user", claimer_email="zack@example.com", send_email=False
    )
    assert rep["email_sent"] == "SUCCESS"
    assert box.messages == []


@pytest.mark.parametrize(
    "config",
    [
        EmailConfig(host=None),
        EmailConfig(host="127.0.0.1", port=free_port()),  # nothing listens there
    ],
    ids=["no-email-host", "nothing-listening"],
)
async def test_unavailable_server_is_reported(db_url: str, config: EmailConfig) -> None:
    app, http = await start_server(build_config(db_url, config))
    try:
        org = await bootstrap_org(Server(app, http))
        rep = await org.auth(
            org.alice, "invite_new_user", claimer_email="zack@example.com", send_email=True
        )
        assert rep["status"] == "ok"
        assert rep["email_sent"] == "SERVER_UNAVAILABLE"
    finally:
        await http.aclose()
        await app.shutdown()


# --- SMTP options, directly -----------------------------------------------------------------------


class Authenticator:
    def __call__(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            b"parsec",
            b"pw",
        )
        return AuthResult(success=ok, handled=False)


def message_to(to: str) -> EmailMessage:
    return parsec_email.invitation_message(
        EmailConfig(sender="parsec@example.com"),
        invitation_type="USER",
        to=to,
        organization_id="Org",
        invitation_url="http://x/redirect/Org?a=claim_user&p=xBA",
        server_url="http://x",
        greeter_name="Jean-José & Co",
        reply_to="jj@example.com",
    )


async def test_smtp_login() -> None:
    box = Mailbox()
    port = free_port()
    controller = Controller(
        box, hostname="127.0.0.1", port=port, authenticator=Authenticator(), auth_require_tls=False
    )
    controller.start()
    try:
        good = EmailConfig(
            host="127.0.0.1", port=port, user="parsec", password="pw", sender="parsec@example.com"
        )
        assert await parsec_email.send(good, message_to("a@example.com")) == "SUCCESS"
        bad = EmailConfig(
            host="127.0.0.1",
            port=port,
            user="parsec",
            password="wrong",
            sender="parsec@example.com",
        )
        assert await parsec_email.send(bad, message_to("b@example.com")) == "SERVER_UNAVAILABLE"
        assert [env.rcpt_tos for env, _ in box.messages] == [["a@example.com"]]
        # Non-ASCII greeter names are encoded, HTML-escaped in the HTML part.
        msg = box.messages[0][1]
        assert msg["Reply-To"].addresses[0].display_name == "Jean-José & Co"
        assert "Jean-José &amp; Co invited you" in parts(msg)[1]
        assert "Jean-José & Co invited you" in parts(msg)[0]
    finally:
        controller.stop()


async def test_tls_options_against_a_plain_server(smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    for config in (
        EmailConfig(host="127.0.0.1", port=port, use_ssl=True, sender="parsec@example.com"),
        EmailConfig(host="127.0.0.1", port=port, use_tls=True, sender="parsec@example.com"),
    ):
        # The server speaks neither implicit TLS nor STARTTLS: nothing may leave in clear text.
        assert await parsec_email.send(config, message_to("a@example.com")) == "SERVER_UNAVAILABLE"
    assert box.messages == []
