"""The built-in e-mail templates: shipped with the package, complete, escaped where they must be,
every HTML body in the one shared page (`_layout.html`)."""

from __future__ import annotations

import fnmatch
import tomllib
from email.message import EmailMessage
from html import escape
from pathlib import Path

import pytest

from parsec_server import email as parsec_email
from parsec_server.config import EmailConfig
from parsec_server.email.account import validation_message
from parsec_server.email.async_enrollment import async_enrollment_accepted_message
from parsec_server.email.totp import totp_reset_message

REPO = Path(__file__).resolve().parents[3]


def test_templates_are_package_data() -> None:
    """A non-editable install (the Docker image) must ship the templates, or sending would fail."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["parsec_server"]
    names = [p.name for p in (REPO / "src/parsec_server/email/templates").iterdir()]
    assert {"invitation.txt", "invitation.html", "_layout.html"} <= set(names)
    for name in names:
        assert any(fnmatch.fnmatch(f"email/templates/{name}", pat) for pat in patterns), patterns


@pytest.mark.parametrize("invitation_type", ["USER", "DEVICE", "SHAMIR_RECOVERY"])
def test_every_invitation_type_renders(invitation_type: str) -> None:
    url = "https://parsec.example.com/redirect/Org?a=claim_user&p=xBA"
    msg = parsec_email.invitation_message(
        EmailConfig(sender="no-reply@example.com"),
        invitation_type=invitation_type,
        to="zack@example.com",
        organization_id="Org-1",
        invitation_url=url,
        server_url="https://parsec.example.com",
        greeter_name="Alice <script>",
        reply_to="alice@example.com",
    )
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    text_content, html_content = text.get_content(), html.get_content()
    assert "$" not in text_content.replace("$$", "")  # every placeholder substituted
    assert url in text_content
    assert url.replace("&", "&amp;") in html_content
    assert "<script>" not in html_content
    assert "Org-1" in msg["Subject"]
    if invitation_type == "DEVICE":
        assert "Alice" not in msg["Subject"]
    else:
        assert "Alice &lt;script&gt;" in html_content


def _every_builtin_message() -> list[EmailMessage]:
    config = EmailConfig(sender="no-reply@example.com")
    tricky = "Org<&>$1"
    return [
        parsec_email.invitation_message(
            config,
            invitation_type="USER",
            to="z@example.com",
            organization_id=tricky,
            invitation_url="https://h/redirect/O?a=claim_user&p=x",
            server_url="https://h",
        ),
        *(
            validation_message(
                config, purpose=purpose, to="a@example.com", code="AB<C", server_url="https://h/"
            )
            for purpose in ("CREATE", "RECOVER", "DELETE")
        ),
        totp_reset_message(
            config,
            to="t@example.com",
            organization_id=tricky,
            totp_reset_url="https://h/x?a=1&b=2",
            server_url="https://h/",
        ),
        async_enrollment_accepted_message(
            config, to="e@example.com", organization_id=tricky, server_url="https://h"
        ),
    ]


def test_every_builtin_html_body_is_one_page_in_the_shared_layout() -> None:
    """Each e-mail's HTML is the shared page (`_layout.html`) around its own rows: one document,
    the escaped subject as its title, every placeholder substituted, nothing escaped twice."""
    templates = REPO / "src/parsec_server/email/templates"
    layout = (templates / "_layout.html").read_text(encoding="utf-8")
    head, _, tail = layout.partition("$content\n")
    head = head.replace("<title>$subject</title>", "<title>{title}</title>")
    for name in templates.glob("*.html"):
        if name.name != "_layout.html":  # a message's rows only: the page is not repeated
            assert "<html" not in name.read_text(encoding="utf-8"), name
    for msg in _every_builtin_message():
        html_part = msg.get_body(preferencelist=("html",))
        text_part = msg.get_body(preferencelist=("plain",))
        assert html_part is not None and text_part is not None
        body = html_part.get_content()
        assert body.startswith(head.format(title=escape(msg["Subject"]))), msg["Subject"]
        assert body.endswith(tail) and body.count("<html") == 1
        assert "$" not in body.replace("$1", "") and "&amp;amp;" not in body
        assert "$" not in text_part.get_content().replace("$1", "")


def test_subjects_are_as_documented() -> None:
    """docs/configuration.md, "E-mail templates": the official server's subjects, except that an
    invitation's names what it is for."""
    subjects = [msg["Subject"] for msg in _every_builtin_message()]
    assert subjects == [
        "[Parsec] A member of your organization invited you to Org<&>$1",
        "Parsec Account: Confirm your email address",
        "Parsec Account: Confirm account recovery",
        "Parsec Account: Confirm account deletion",
        "[Parsec] Your MFA has been reset for Org<&>$1",
        "[Parsec] Request accepted to join Org<&>$1",
    ]
    config = EmailConfig(sender="no-reply@example.com")
    kinds = {"USER": "invited you to", "DEVICE": "New device invitation to"}
    kinds["SHAMIR_RECOVERY"] = "started the recovery of your access to"
    for invitation_type, words in kinds.items():
        msg = parsec_email.invitation_message(
            config,
            invitation_type=invitation_type,
            to="z@example.com",
            organization_id="Org",
            invitation_url="https://h/x",
            server_url="https://h",
            greeter_name="Alice",
        )
        assert words in msg["Subject"] and msg["Subject"].endswith(" Org")
    docs = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert "`[Parsec] New device invitation to Org`" in docs
