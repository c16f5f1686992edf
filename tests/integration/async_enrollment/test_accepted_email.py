"""async_enrollment_accept with `send_email`: the official "Request accepted" e-mail through a real
SMTP server on loopback (aiosmtpd), text + HTML, and an operator override from --template-dir."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from core_helpers import Org, Server, new_user_certs, running_server
from pki_support import accept_payload, openbao_signature, submit_payload
from smtp_mailbox import Mailbox, smtp_server

from parsec_server.config import EmailConfig


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    with smtp_server(box) as port:
        yield box, port


@pytest.fixture
async def mail_server(
    db_url: str, smtp: tuple[Mailbox, int], tmp_path: Path
) -> AsyncIterator[tuple[Server, Mailbox, Path]]:
    box, port = smtp
    template_dir = tmp_path / "templates"
    (template_dir / "email").mkdir(parents=True)
    emails = EmailConfig(
        host="127.0.0.1", port=port, sender="parsec@example.com", template_dir=template_dir
    )
    async with running_server(db_url, email=emails) as server:
        yield server, box, template_dir


async def _submit_and_accept(server: Server, org: Org) -> dict[str, Any]:
    eid = uuid.uuid4()
    rep = await server.anonymous(
        org.organization_id,
        "async_enrollment_submit",
        enrollment_id=eid,
        force=False,
        submit_payload=submit_payload(),
        submit_payload_signature=openbao_signature("submitter"),
    )
    assert rep["status"] == "ok", rep
    certs = new_user_certs(org.alice.device_id, org.alice.signing_key, "carol")
    return await org.alice.rpc(
        "async_enrollment_accept",
        enrollment_id=eid,
        submitter_user_certificate=certs.user_certificate,
        submitter_device_certificate=certs.device_certificate,
        submitter_redacted_user_certificate=certs.redacted_user_certificate,
        submitter_redacted_device_certificate=certs.redacted_device_certificate,
        accept_payload=accept_payload(
            certs.user_id, certs.device_id, certs.human, "STANDARD", bytes(org.root_key.verify_key)
        ),
        accept_payload_signature=openbao_signature("accepter"),
        send_email=True,
    )


def _parts(msg: EmailMessage) -> tuple[str, str]:
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


async def test_accept_sends_the_accepted_email(
    mail_server: tuple[Server, Mailbox, Path],
) -> None:
    server, box, _ = mail_server
    org = await server.bootstrap_org()
    assert await _submit_and_accept(server, org) == {"status": "ok", "email_sent": "SUCCESS"}
    (msg,) = box.messages
    assert msg["To"] == "carol@example.com"
    assert msg["From"] == "parsec@example.com"
    assert msg["Subject"] == f"[Parsec] Request accepted to join {org.organization_id}"
    text, html = _parts(msg)
    assert org.organization_id in text and "http://127.0.0.1:6777" in text
    assert f"<b>{org.organization_id}</b>" in html


async def test_operator_template_overrides_the_text(
    mail_server: tuple[Server, Mailbox, Path],
) -> None:
    server, box, template_dir = mail_server
    (template_dir / "email" / "async_enrollment_accepted.txt.j2").write_text(
        "Welcome to {{ organization_id }} ({{ server_url }})\n"
    )
    org = await server.bootstrap_org()
    assert (await _submit_and_accept(server, org))["email_sent"] == "SUCCESS"
    text, html = _parts(box.messages[0])
    assert text.strip() == f"Welcome to {org.organization_id} (http://127.0.0.1:6777)"
    assert "has been accepted" in html  # the HTML part stays built-in
