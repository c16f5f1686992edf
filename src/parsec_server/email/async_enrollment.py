"""The e-mail telling a requester that their asynchronous enrollment was accepted
(docs/async-enrollment.md): plain text + HTML, built-in templates `templates/async_enrollment_accepted.*`
or the operator's `email/async_enrollment_accepted.{txt,html}.j2` (`--template-dir`, with the
official variables `organization_id`, `server_url`). The subject is the official server's."""

from __future__ import annotations

import html
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from parsec_server.config import EmailConfig
from parsec_server.email.render import render

__all__ = ["async_enrollment_accepted_message"]


def async_enrollment_accepted_message(
    config: EmailConfig, *, to: str, organization_id: str, server_url: str
) -> EmailMessage:
    server_url = server_url.removesuffix("/")
    subject = f"[Parsec] Request accepted to join {organization_id}"
    official = {"organization_id": organization_id, "server_url": server_url}
    text = render(
        config.template_dir,
        official_name="async_enrollment_accepted.txt",
        builtin_name="async_enrollment_accepted.txt",
        builtin_values=official,
        official_values=official,
    )
    body_html = render(
        config.template_dir,
        official_name="async_enrollment_accepted.html",
        builtin_name="async_enrollment_accepted.html",
        builtin_values={
            "subject": html.escape(subject),
            "organization_id": html.escape(organization_id),
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
