"""The e-mail of an administration TOTP reset (docs/totp.md): plain text + HTML, built-in templates
`templates/totp_reset.*` or the operator's `email/totp_reset.{txt,html}.j2` (`--template-dir`, with
the official variables `organization_id`, `totp_reset_url`, `server_url`). The subject is the
official server's."""

from __future__ import annotations

from email.message import EmailMessage

from parsec_server.config import EmailConfig
from parsec_server.email.render import templated_message

__all__ = ["totp_reset_message"]


def totp_reset_message(
    config: EmailConfig, *, to: str, organization_id: str, totp_reset_url: str, server_url: str
) -> EmailMessage:
    official = {
        "organization_id": organization_id,
        "totp_reset_url": totp_reset_url,
        "server_url": server_url.removesuffix("/"),
    }
    return templated_message(
        config,
        to=to,
        subject=f"[Parsec] Your MFA has been reset for {organization_id}",
        official_name="totp_reset",
        values=official,
        official_values=official,
    )
