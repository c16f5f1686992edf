"""Account validation e-mails (account creation, recovery, deletion): plain text + HTML, templates
`templates/account_validation.*`, sent with `parsec_server.email.send`. Subjects are the official
server's, so that users and mail filters see the same messages whichever server they use."""

from __future__ import annotations

import html
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Literal

from parsec_server.config import EmailConfig
from parsec_server.email import _template

ValidationPurpose = Literal["CREATE", "RECOVER", "DELETE"]

_SUBJECTS: dict[ValidationPurpose, str] = {
    "CREATE": "Parsec Account: Confirm your email address",
    "RECOVER": "Parsec Account: Confirm account recovery",
    "DELETE": "Parsec Account: Confirm account deletion",
}
_INTROS: dict[ValidationPurpose, str] = {
    "CREATE": "To create your Parsec account with this e-mail address, confirm it with the code below.",
    "RECOVER": (
        "To recover your Parsec account (and choose a new password), confirm it with the code below."
    ),
    "DELETE": "To delete your Parsec account, confirm it with the code below.",
}


def validation_message(
    config: EmailConfig, *, purpose: ValidationPurpose, to: str, code: str, server_url: str
) -> EmailMessage:
    """The validation e-mail of `purpose`: multipart/alternative, plain text then HTML."""
    subject = _SUBJECTS[purpose]
    intro = _INTROS[purpose]
    server_url = server_url.removesuffix("/")
    text = _template("account_validation.txt").substitute(
        intro=intro, code=code, server_url=server_url
    )
    body_html = _template("account_validation.html").substitute(
        subject=html.escape(subject),
        intro=html.escape(intro),
        code=html.escape(code),
        server_url=html.escape(server_url, quote=True),
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
