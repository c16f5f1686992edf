"""The e-mail telling a requester that their asynchronous enrollment was accepted
(docs/async-enrollment.md): plain text + HTML, built-in templates `templates/async_enrollment_accepted.*`
or the operator's `email/async_enrollment_accepted.{txt,html}.j2` (`--template-dir`, with the
official variables `organization_id`, `server_url`). The subject is the official server's."""

from __future__ import annotations

from email.message import EmailMessage

from parsec_server.config import EmailConfig
from parsec_server.email.render import templated_message

__all__ = ["async_enrollment_accepted_message"]


def async_enrollment_accepted_message(
    config: EmailConfig, *, to: str, organization_id: str, server_url: str
) -> EmailMessage:
    official = {"organization_id": organization_id, "server_url": server_url.removesuffix("/")}
    return templated_message(
        config,
        to=to,
        subject=f"[Parsec] Request accepted to join {organization_id}",
        official_name="async_enrollment_accepted",
        values=official,
        official_values=official,
    )
