"""Time-based one-time passwords (RFC 6238) with the parameters of the official server 3.9.3.

HMAC-SHA1, 6 digits, 30-second steps, and one step of drift accepted either way (a code of the
previous, current or next step is right). The secret is 20 random bytes (RFC 4226 §4's 160 bits),
handed to the client, which shows it to the user's authenticator app.

Failed codes against one opaque key are throttled: after the n-th consecutive failure, the key
cannot be tried before 2^(n-1) seconds after that failure (`wait_until`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

DIGITS = 6
STEP_SECONDS = 30
DRIFT_STEPS = 1  # steps accepted before and after the current one
SECRET_SIZE = 20

__all__ = [
    "DIGITS",
    "DRIFT_STEPS",
    "SECRET_SIZE",
    "STEP_SECONDS",
    "code_at",
    "hotp",
    "new_secret",
    "verify",
    "wait_until",
]


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_SIZE)


def hotp(secret: bytes, counter: int, digits: int = DIGITS) -> str:
    """RFC 4226 §5.3: HMAC-SHA1 of the big-endian counter, dynamically truncated."""
    mac = hmac.new(secret, counter.to_bytes(8, "big"), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def _step(at: datetime) -> int:
    # Whole seconds since the epoch, floored (a timestamp before 1970 is not a case here).
    return int(at.timestamp()) // STEP_SECONDS


def code_at(secret: bytes, at: datetime, digits: int = DIGITS) -> str:
    """The one-time password of the step `at` falls in."""
    return hotp(secret, _step(at), digits)


def verify(secret: bytes, code: str, at: datetime) -> bool:
    """Whether `code` is right at `at`, within the accepted drift (compared in constant time)."""
    step = _step(at)
    right = False
    candidate = code.encode("utf-8", "surrogatepass")
    for offset in range(-DRIFT_STEPS, DRIFT_STEPS + 1):
        expected = hotp(secret, step + offset).encode("ascii")
        right |= hmac.compare_digest(candidate, expected)
    return right


def wait_until(failed_attempts: int, last_failed_attempt: datetime | None) -> datetime | None:
    """Until when (inclusive) a key is throttled after `failed_attempts` consecutive failures."""
    if failed_attempts <= 0 or last_failed_attempt is None:
        return None
    # Capped (2^34 s is over 500 years) so that the date stays representable.
    return last_failed_attempt + timedelta(seconds=2 ** min(failed_attempts - 1, 34))
