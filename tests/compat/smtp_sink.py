"""A loopback SMTP server for the compat suite (started by scripts/compat.sh, with the dev venv's
aiosmtpd): every message it accepts is written to MAILDIR as `<n>.eml` (complete files only), so
that tests read what the server under test really sent (the `mailbox` fixture).

    python tests/compat/smtp_sink.py MAILDIR PORT

Binds 127.0.0.1 only; writes MAILDIR/.ready once listening; stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session


class Sink:
    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir
        self.counter = itertools.count(1)
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        assert isinstance(content, bytes)
        with self.lock:
            n = next(self.counter)
        tmp = self.maildir / f".{n}.tmp"
        tmp.write_bytes(content)
        os.replace(tmp, self.maildir / f"{n:06d}.eml")
        return "250 Message accepted for delivery"


def main() -> None:
    maildir, port = Path(sys.argv[1]), int(sys.argv[2])
    maildir.mkdir(parents=True, exist_ok=True)
    controller = Controller(Sink(maildir), hostname="127.0.0.1", port=port)
    controller.start()
    (maildir / ".ready").write_text(str(port))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
