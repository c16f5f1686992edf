"""Account validation e-mails (account creation, recovery, deletion): plain text + HTML, built-in
templates `templates/account_validation.*`, or the operator's `email/account_create|account_recover|
account_delete.{txt,html}.j2` from `--template-dir` (the official names and variables:
`validation_code`, `server_url`; email/render.py). Sent with `parsec_server.email.send`. Subjects are
the official server's, so that users and mail filters see the same messages whichever server they
use."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Literal

from parsec_server.config import EmailConfig
from parsec_server.email.render import templated_message

ValidationPurpose = Literal["CREATE", "RECOVER", "DELETE"]

_SUBJECTS: dict[ValidationPurpose, str] = {
    "CREATE": "Parsec Account: Confirm your email address",
    "RECOVER": "Parsec Account: Confirm account recovery",
    "DELETE": "Parsec Account: Confirm account deletion",
}
_OFFICIAL_NAMES: dict[ValidationPurpose, str] = {
    "CREATE": "account_create",
    "RECOVER": "account_recover",
    "DELETE": "account_delete",
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
    server_url = server_url.removesuffix("/")
    return templated_message(
        config,
        to=to,
        subject=_SUBJECTS[purpose],
        official_name=_OFFICIAL_NAMES[purpose],
        builtin_name="account_validation",
        values={"intro": _INTROS[purpose], "code": code, "server_url": server_url},
        official_values={"validation_code": code, "server_url": server_url},
    )
