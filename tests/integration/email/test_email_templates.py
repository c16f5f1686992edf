"""The invitation templates: shipped with the package, complete, escaped where they must be."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import pytest

from parsec_server import email as parsec_email
from parsec_server.config import EmailConfig

REPO = Path(__file__).resolve().parents[3]


def test_templates_are_package_data() -> None:
    """A non-editable install (the Docker image) must ship the templates, or sending would fail."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["parsec_server"]
    for name in ("invitation.txt", "invitation.html"):
        assert (REPO / "src/parsec_server/email/templates" / name).is_file()
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
