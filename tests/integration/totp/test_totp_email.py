"""The TOTP reset e-mail through a real SMTP server on loopback (aiosmtpd), its audit line, and
operator templates from `--template-dir` for every e-mail (invitations too)."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "commands"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "email"))

from invite_support import (
    Org,
    Server,
    bootstrap_org,
    build_config,
    new_identity,
    start_server,
    user_certificates,
)
from smtp_mailbox import Mailbox, smtp_server

from parsec_server.config import EmailConfig

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    with smtp_server(box) as port:
        yield box, port


@pytest.fixture
def template_dir(tmp_path: Path) -> Path:
    """The server's --template-dir: empty (all built-in) unless the test writes into it."""
    path = tmp_path / "templates"
    (path / "email").mkdir(parents=True)
    return path


@pytest.fixture
async def mail_org(
    db_url: str, smtp: tuple[Mailbox, int], template_dir: Path
) -> AsyncIterator[tuple[Org, Mailbox]]:
    box, port = smtp
    emails = EmailConfig(
        host="127.0.0.1",
        port=port,
        sender="parsec@example.com",
        template_dir=template_dir,
    )
    app, http = await start_server(build_config(db_url, emails))
    try:
        yield await bootstrap_org(Server(app, http)), box
    finally:
        await http.aclose()
        await app.shutdown()


def parts(msg: EmailMessage) -> tuple[str, str]:
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return text.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")


async def reset(org: Org, **body: Any) -> dict[str, Any]:
    r = await org.server.admin("POST", f"/organizations/{org.org_id}/users/reset_totp", json=body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def test_reset_email(mail_org: tuple[Org, Mailbox], caplog: pytest.LogCaptureFixture) -> None:
    org, box = mail_org
    caplog.set_level(logging.INFO, logger="parsec_server")
    body = await reset(org, user_id=org.alice.user_id.hex, send_email=True)
    assert body["email_sent_status"] == "SENT_AS_REQUESTED"
    assert len(box.messages) == 1
    msg = box.messages[0]
    assert msg["To"] == org.alice.email and msg["From"] == "parsec@example.com"
    assert msg["Subject"] == f"[Parsec] Your MFA has been reset for {org.org_id}"
    text, html = parts(msg)
    link = body["totp_reset_url_as_http_redirection"]
    assert link in text.split()
    assert f'href="{link.replace("&", "&amp;")}"' in html
    # Not asked: nothing sent.
    body = await reset(org, user_email=org.alice.email)
    assert body["email_sent_status"] == "NOT_SENT_AS_REQUESTED" and len(box.messages) == 1
    # The audit lines: who, what, never the link or its token.
    audit = [r for r in caplog.records if r.name == "parsec_server.audit"]
    assert [(getattr(r, "action", None), getattr(r, "outcome", None)) for r in audit] == [
        ("user_reset_totp", "ok"),
        ("user_reset_totp", "ok"),
    ]
    assert getattr(audit[0], "user_id", None) == org.alice.user_id.hex
    assert getattr(audit[0], "email_sent_status", None) == "SENT_AS_REQUESTED"
    payload = link.rsplit("p=", 1)[1]
    for record in caplog.records:
        assert payload not in str(record.__dict__)


async def test_reset_email_without_smtp_server(db_url: str) -> None:
    app, http = await start_server(build_config(db_url))
    try:
        org = await bootstrap_org(Server(app, http))
        body = await reset(org, user_email=org.alice.email, send_email=True)
        assert body["email_sent_status"] == "SERVER_UNAVAILABLE"
        assert "a=totp_reset" in body["totp_reset_url"]  # the link is there to hand over anyway
    finally:
        await http.aclose()
        await app.shutdown()


def write(template_dir: Path, name: str, text: str) -> None:
    path = template_dir / "email" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def overrides(template_dir: Path) -> Path:
    write(
        template_dir,
        "totp_reset.txt.j2",
        "Custom MFA reset for {{ organization_id }}: {{ totp_reset_url }}\n",
    )
    write(
        template_dir,
        "invitation.html.j2",
        "{% extends 'email/base.html.j2' %}{% block body %}"
        "<p>{{ greeter }} invites you to {{ organization_id }}"
        "{% if is_user_invitation %} as a user{% endif %}</p>"
        '<a href="{{ invitation_url }}">join</a>{% endblock %}',
    )
    write(template_dir, "base.html.j2", "<html><body>{% block body %}{% endblock %}</body></html>")
    return template_dir


async def test_template_dir_overrides(overrides: Path, mail_org: tuple[Org, Mailbox]) -> None:
    org, box = mail_org
    body = await reset(org, user_email=org.alice.email, send_email=True)
    text, html = parts(box.messages[-1])
    assert text == (
        f"Custom MFA reset for {org.org_id}: {body['totp_reset_url_as_http_redirection']}\n"
    )
    assert "has been reset by its administrator" in html  # no override: built-in HTML

    # Invitations: the HTML is the operator's (autoescaped), the text stays built-in.
    bob = await org.create_user("bob")
    rep = await org.auth(
        org.alice, "invite_new_user", claimer_email="zack@example.com", send_email=True
    )
    assert rep["status"] == "ok" and rep["email_sent"] == "SUCCESS"
    text, html = parts(box.messages[-1])
    assert html.startswith("<html><body><p>Alice invites you to " + org.org_id + " as a user</p>")
    assert 'href="http://parsec.example.com:6777/redirect/' in html
    assert "invited you to join the organization" in text  # built-in text
    assert bob.email not in text


async def test_html_override_is_autoescaped(
    template_dir: Path, mail_org: tuple[Org, Mailbox]
) -> None:
    write(template_dir, "invitation.html.j2", "<p>{{ greeter }}</p>")
    org, box = mail_org
    mallory = replace(new_identity(org.org_id, "mallory", "ADMIN"), label="Tom & 'Jerry'")
    rep = await org.auth(
        org.alice, "user_create", **user_certificates(org.alice, None, mallory, org.ts())
    )
    assert rep == {"status": "ok"}, rep
    rep = await org.auth(mallory, "invite_new_user", claimer_email="z@example.com", send_email=True)
    assert rep["email_sent"] == "SUCCESS"
    _, html = parts(box.messages[-1])
    assert html.strip() == "<p>Tom &amp; &#39;Jerry&#39;</p>"


async def test_broken_override_falls_back_to_builtin(
    template_dir: Path, mail_org: tuple[Org, Mailbox], caplog: pytest.LogCaptureFixture
) -> None:
    write(template_dir, "totp_reset.txt.j2", "{{ no_such_variable }}")
    write(template_dir, "totp_reset.html.j2", "{{ organization_id + 1 }}")  # TypeError
    org, box = mail_org
    body = await reset(org, user_email=org.alice.email, send_email=True)
    assert body["email_sent_status"] == "SENT_AS_REQUESTED"
    text, html = parts(box.messages[-1])
    assert "has been reset by its administrator" in text.replace("\n", " ")
    assert "has been reset by its administrator" in html
    assert any(
        getattr(r, "event", r.getMessage()) == "email_template_failed"
        or "email_template_failed" in r.getMessage()
        for r in caplog.records
    )


OFFICIAL_TEMPLATES = sorted(
    (REPO / ".venv-compat" / "lib").glob("python3*/site-packages/parsec/templates")
)


@pytest.mark.skipif(not OFFICIAL_TEMPLATES, reason="no official server installed (.venv-compat)")
async def test_official_template_directory_works(
    template_dir: Path, mail_org: tuple[Org, Mailbox]
) -> None:
    """The official server's own templates, as an operator would copy them, render here."""
    shutil.copytree(OFFICIAL_TEMPLATES[0], template_dir, dirs_exist_ok=True)
    org, box = mail_org
    body = await reset(org, user_email=org.alice.email, send_email=True)
    text, html = parts(box.messages[-1])
    assert "Your MFA (Multi-Factor Authentication) has been reset" in text
    assert body["totp_reset_url_as_http_redirection"] in text
    assert "Re-enable MFA" in html
    rep = await org.auth(
        org.alice, "invite_new_user", claimer_email="z@example.com", send_email=True
    )
    assert rep["email_sent"] == "SUCCESS"
    text, html = parts(box.messages[-1])
    assert "You have received an invitation from Alice" in text


def test_cli_refuses_a_broken_template_dir(tmp_path: Path) -> None:
    write(tmp_path, "invitation.txt.j2", "{% if %}")
    done = subprocess.run(
        [sys.executable, "-m", "parsec_server.cli.main", "run", "--template-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "invitation.txt.j2, line 1" in done.stderr
    assert "Traceback" not in done.stderr
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "parsec_server.cli.main",
            "run",
            "--template-dir",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
