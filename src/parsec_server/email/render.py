"""E-mails from templates: the built-in ones, or the operator's from `--template-dir`.

`templated_message` is what every e-mail of the server goes through (invitations, account
validation codes, TOTP resets, accepted enrollments): it renders the plain-text and the HTML body
and assembles the multipart/alternative message that `parsec_server.email.send` sends; the modules
of this package only say what differs (subject, template names, variables).

The built-in templates are `string.Template` files in `templates/`: `<name>.txt` is the whole text
body, `<name>.html` the rows of the message placed in the shared page `_layout.html` (head, frame,
"Parsec" header). An operator directory uses the
official server's layout and language (Jinja2): `<dir>/email/<name>.j2`, e.g.
`email/invitation.html.j2`, `email/totp_reset.txt.j2`, rendered with the official server's
variables (docs/configuration.md, "E-mail templates"). Every e-mail the server sends looks for its
override first; a name the directory lacks keeps the built-in one, so a directory copied from an
official server works as is and a partial one is fine.

HTML overrides are autoescaped (`{{ greeter }}` cannot inject markup; `|safe` opts out). An
override that fails to render (unknown variable, error in the template) is logged and the built-in
body is sent instead: a broken template never stops an invitation or a reset from going out.
Templates are checked when the server starts (`check_template_dir`).
"""

from __future__ import annotations

import html
import string
from collections.abc import Mapping
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from functools import cache
from importlib import resources
from pathlib import Path

import jinja2

from parsec_server.config import EmailConfig
from parsec_server.log import get_logger

log = get_logger("parsec_server.email")

__all__ = ["TemplateDirError", "builtin", "check_template_dir", "render", "templated_message"]


class TemplateDirError(ValueError):
    """An operator template that does not compile (message names the file and the line)."""


@cache
def builtin(name: str) -> string.Template:
    text = resources.files(__package__).joinpath("templates", name).read_text(encoding="utf-8")
    return string.Template(text)


def _autoescape(name: str | None) -> bool:
    return name is not None and name.endswith((".html.j2", ".html"))


@cache
def _environment(template_dir: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir),
        undefined=jinja2.StrictUndefined,
        autoescape=_autoescape,
        keep_trailing_newline=True,
    )


def _override(template_dir: Path, official_name: str) -> jinja2.Template | None:
    name = f"email/{official_name}.j2"
    if not (template_dir / name).is_file():
        return None
    return _environment(template_dir).get_template(name)


def render(
    template_dir: Path | None,
    *,
    official_name: str,
    builtin_name: str,
    builtin_values: Mapping[str, str],
    official_values: Mapping[str, object],
    layout: str | None = None,
) -> str:
    """The body: `<template_dir>/email/<official_name>.j2` rendered with `official_values` if the
    operator has it, else the built-in `builtin_name` with `builtin_values` (already escaped for
    HTML by the caller), placed as `$content` in the built-in `layout` if one is named (the layout
    also sees `builtin_values`). An operator's template is the whole body: no layout around it."""
    if template_dir is not None:
        try:
            template = _override(template_dir, official_name)
            if template is not None:
                return template.render(**official_values)
        except Exception as exc:  # the operator's code: whatever it raises, the e-mail leaves
            log.error(
                "email_template_failed",
                template=f"email/{official_name}.j2",
                error=f"{type(exc).__name__}: {exc}",
            )
    body = builtin(builtin_name).substitute(builtin_values)
    if layout is None:
        return body
    return builtin(layout).substitute(builtin_values, content=body.removesuffix("\n"))


def templated_message(
    config: EmailConfig,
    *,
    to: str,
    subject: str,
    official_name: str,
    builtin_name: str | None = None,
    values: Mapping[str, str],
    official_values: Mapping[str, object],
    reply_to: Address | None = None,
) -> EmailMessage:
    """The e-mail to `to`: multipart/alternative, plain text then HTML.

    Each body is the operator's `email/<official_name>.{txt,html}.j2` rendered with
    `official_values` if `--template-dir` has it, else the built-in `<builtin_name>.txt` (default:
    `official_name`) with `values`, and `<builtin_name>.html` with the same values HTML-escaped and
    `subject`, inside `_layout.html`."""
    name = builtin_name or official_name
    text = render(
        config.template_dir,
        official_name=f"{official_name}.txt",
        builtin_name=f"{name}.txt",
        builtin_values=values,
        official_values=official_values,
    )
    escaped = {key: html.escape(value) for key, value in values.items()}
    escaped["subject"] = html.escape(subject)
    body_html = render(
        config.template_dir,
        official_name=f"{official_name}.html",
        builtin_name=f"{name}.html",
        builtin_values=escaped,
        official_values=official_values,
        layout="_layout.html",
    )
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = config.sender
    msg["To"] = to
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=config.sender.rpartition("@")[2] or None)
    if reply_to is not None:
        msg["Reply-To"] = reply_to
    msg.set_content(text)
    msg.add_alternative(body_html, subtype="html")
    return msg


def check_template_dir(template_dir: Path) -> list[str]:
    """Compile every `email/*.j2` of the directory: the names found, or TemplateDirError."""
    if not template_dir.is_dir():
        raise TemplateDirError(f"{template_dir}: not a directory")
    found: list[str] = []
    env = _environment(template_dir)
    for path in sorted((template_dir / "email").glob("*.j2")):
        name = f"email/{path.name}"
        try:
            env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateDirError(
                f"{template_dir / name}, line {exc.lineno}: {exc.message}"
            ) from None
        except (jinja2.TemplateError, OSError, UnicodeDecodeError) as exc:
            raise TemplateDirError(f"{template_dir / name}: {exc}") from None
        found.append(name)
    return found
