"""The e-mail of an administration TOTP reset (docs/totp.md): plain text + HTML, built-in templates
`templates/totp_reset.*` or the operator's `email/totp_reset.{txt,html}.j2` (`--template-dir`, with
the official variables `organization_id`, `totp_reset_url`, `server_url`). The subject is the
official server's."""

from __future__ import annotations

import html
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from parsec_server.config import EmailConfig
from parsec_server.email.render import render

__all__ = ["totp_reset_message"]


def totp_reset_message(
    config: EmailConfig, *, to: str, organization_id: str, totp_reset_url: str, server_url: str
) -> EmailMessage:
    server_url = server_url.removesuffix("/")
    subject = f"[Parsec] Your MFA has been reset for {organization_id}"
    official = {
        "organization_id": organization_id,
        "totp_reset_url": totp_reset_url,
        "server_url": server_url,
    }
    text = render(
        config.template_dir,
        official_name="totp_reset.txt",
        builtin_name="totp_reset.txt",
        builtin_values=official,
        official_values=official,
    )
    body_html = render(
        config.template_dir,
        official_name="totp_reset.html",
        builtin_name="totp_reset.html",
        builtin_values={
            "subject": html.escape(subject),
            "organization_id": html.escape(organization_id),
            "totp_reset_url": html.escape(totp_reset_url, quote=True),
            "server_url": html.escape(server_url, quote=True),
        },
        official_values=official,
    )
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = config.sender
    msg["To"] = to
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=config.sender.rpartition("@")[2] or None)
    msg.set_content(text)
    msg.add_alternative(body_html, subtype="html")
    return msg
