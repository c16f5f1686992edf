"""What the server under test sent by e-mail: the messages the loopback SMTP server of
scripts/compat.sh (smtp_sink.py) wrote to PARSEC_COMPAT_MAILDIR. Fixture `mailbox` (conftest.py).

    msg = mailbox.wait_for("zoe@example.com", subject_contains="Confirm your email")
    code = mailbox.validation_code(msg)
"""

from __future__ import annotations

import email
import email.policy
import re
import time
from email.message import EmailMessage
from pathlib import Path

# The official ValidationCode alphabet: 2-9 and A-Z without I and O.
_CODE_RE = re.compile(r"(?<![A-Za-z0-9])([A-HJ-NP-Z2-9]{6})(?![A-Za-z0-9])")


class Mailbox:
    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir

    def messages(self) -> list[EmailMessage]:
        out = []
        for path in sorted(self.maildir.glob("*.eml")):
            msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            out.append(msg)
        return out

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages() if address in str(m["To"])]

    def wait_for(
        self, address: str, subject_contains: str = "", *, after: int = 0, timeout: float = 10.0
    ) -> EmailMessage:
        """The first message to `address` whose subject contains `subject_contains`, once more than
        `after` of them arrived (servers may send after answering: poll until `timeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.to(address) if subject_contains in str(m["Subject"])]
            if len(found) > after:
                return found[after]
            if time.monotonic() > deadline:
                raise AssertionError(f"no e-mail to {address} ({subject_contains!r}) in {timeout}s")
            time.sleep(0.05)

    def count(self, address: str, subject_contains: str = "") -> int:
        return len([m for m in self.to(address) if subject_contains in str(m["Subject"])])

    @staticmethod
    def text(msg: EmailMessage) -> str:
        part = msg.get_body(("plain", "html"))
        assert part is not None
        content = part.get_content()
        assert isinstance(content, str)
        return content

    @classmethod
    def validation_code(cls, msg: EmailMessage) -> str:
        """The 6-character validation code of an account e-mail (official or ours)."""
        text = cls.text(msg)
        found = _CODE_RE.findall(text)
        assert found, text
        return str(found[0])
