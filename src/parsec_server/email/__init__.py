"""Emails: invitation messages (plain text + HTML, templates in `templates/`, or the operator's from
`--template-dir`: `templated_message` in email/render.py) sent over SMTP.

`send(config, message)` reports what really happened, as the `email_sent` status of invite_new_*:

* SUCCESS: the SMTP server accepted the message for the recipient (or nothing was asked to be sent);
* RECIPIENT_REFUSED: the server refused the recipient address;
* SERVER_UNAVAILABLE: no SMTP server configured (`--email-host` not given), or it could not be
  reached, refused the connection/login/TLS, or failed otherwise.

(The official server answers SUCCESS whatever happened; clients then tell their user the email left
when it did not. Reporting the real outcome is what the protocol's statuses are for.)

Sending runs smtplib in a worker thread with a timeout, after the invitation's transaction has
committed: a slow or dead SMTP server never holds database locks.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.headerregistry import Address
from email.message import EmailMessage

from parsec_server.config import EmailConfig
from parsec_server.email.render import templated_message
from parsec_server.log import get_logger

log = get_logger("parsec_server.email")

SUCCESS = "SUCCESS"
SERVER_UNAVAILABLE = "SERVER_UNAVAILABLE"
RECIPIENT_REFUSED = "RECIPIENT_REFUSED"

SMTP_TIMEOUT = 10.0  # seconds, per SMTP operation

__all__ = [
    "RECIPIENT_REFUSED",
    "SERVER_UNAVAILABLE",
    "SUCCESS",
    "invitation_message",
    "send",
]


# Per invitation type: subject and the sentence that says what the link is for.
_SUBJECTS = {
    "USER": "[Parsec] {greeter} invited you to {organization}",
    "DEVICE": "[Parsec] New device invitation to {organization}",
    "SHAMIR_RECOVERY": "[Parsec] {greeter} started the recovery of your access to {organization}",
}
_INTROS = {
    "USER": "{greeter} invited you to join the organization {organization} on Parsec.",
    "DEVICE": (
        "You asked to add a new device to your account in the organization {organization}"
        " on Parsec."
    ),
    "SHAMIR_RECOVERY": (
        "{greeter} started the recovery of your access to the organization {organization}"
        " on Parsec."
    ),
}
_ACTIONS = {
    "USER": "To accept the invitation, open this link with the Parsec application",
    "DEVICE": "To set up the new device, open this link on it with the Parsec application",
    "SHAMIR_RECOVERY": "To recover your access, open this link with the Parsec application",
}


def invitation_message(
    config: EmailConfig,
    *,
    invitation_type: str,
    to: str,
    organization_id: str,
    invitation_url: str,
    server_url: str,
    greeter_name: str | None = None,
    reply_to: str | None = None,
) -> EmailMessage:
    """The invitation email: multipart/alternative, plain text then HTML; Reply-To the greeter."""
    greeter = greeter_name or "A member of your organization"
    values = {"greeter": greeter, "organization": organization_id}
    # The official server's variables, for operator templates (`--template-dir`, email/render.py).
    official = {
        "is_user_invitation": invitation_type == "USER",
        "is_device_invitation": invitation_type == "DEVICE",
        "is_shamir_recovery_invitation": invitation_type == "SHAMIR_RECOVERY",
        "greeter": greeter_name,
        "organization_id": organization_id,
        "invitation_url": invitation_url,
        "server_url": server_url.removesuffix("/"),
    }
    return templated_message(
        config,
        to=to,
        subject=_SUBJECTS[invitation_type].format(**values),
        official_name="invitation",
        values={
            "intro": _INTROS[invitation_type].format(**values),
            "action": _ACTIONS[invitation_type],
            "invitation_url": invitation_url,
            "server_url": server_url,
            "organization": organization_id,
        },
        official_values=official,
        reply_to=(
            Address(display_name=greeter_name or "", addr_spec=reply_to) if reply_to else None
        ),
    )


def _smtp_send(config: EmailConfig, message: EmailMessage) -> str:
    assert config.host is not None
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if config.use_ssl:
        smtp = smtplib.SMTP_SSL(config.host, config.port, timeout=SMTP_TIMEOUT, context=context)
    else:
        smtp = smtplib.SMTP(config.host, config.port, timeout=SMTP_TIMEOUT)
    with smtp:
        if config.use_tls and not config.use_ssl:
            smtp.starttls(context=context)
        if config.user and config.password:
            smtp.login(config.user, config.password)
        smtp.send_message(message)
    return SUCCESS


async def send(config: EmailConfig, message: EmailMessage) -> str:
    """Send `message` to its `To` address: SUCCESS, RECIPIENT_REFUSED or SERVER_UNAVAILABLE."""
    if not config.host:
        log.info("email_not_sent", reason="no --email-host configured", subject=message["Subject"])
        return SERVER_UNAVAILABLE
    try:
        status = await asyncio.to_thread(_smtp_send, config, message)
    except smtplib.SMTPRecipientsRefused:
        # The address comes from a user: not an operational problem worth a warning.
        log.info("email_recipient_refused", subject=message["Subject"])
        return RECIPIENT_REFUSED
    except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        log.warning(
            "email_server_unavailable",
            host=config.host,
            port=config.port,
            error=f"{type(exc).__name__}: {exc}",
        )
        return SERVER_UNAVAILABLE
    log.info("email_sent", subject=message["Subject"])
    return status
