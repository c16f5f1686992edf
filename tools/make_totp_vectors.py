#!/usr/bin/env python3
# mypy: ignore-errors
"""TOTP golden vectors from the official server 3.9.3 (parsec.components.totp), for
tests/unit/crypto/test_crypto_totp.py.

    .venv-compat/bin/python tools/make_totp_vectors.py

Must run in the venv that has the official `parsec` package. Writes
tests/unit/crypto/vectors/totp.json: for seeded random secrets and instants, the official code of
each instant, whether the official `verify_totp` accepts the codes of the surrounding steps, and
the official throttle deadline (`compute_wait_until`) for a few failure counts.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from parsec._parsec import DateTime
from parsec.components.totp import compute_totp_one_time_password, compute_wait_until, verify_totp

OUT = Path(__file__).resolve().parent.parent / "tests" / "unit" / "crypto" / "vectors" / "totp.json"


def main() -> None:
    rng = random.Random(20261204)
    codes = []
    for i in range(200):
        secret = rng.randbytes(20 if i % 4 else rng.choice([16, 32, 64]))
        us = rng.randrange(0, 4_102_444_800 * 10**6)  # up to 2100
        if i < 10:  # step boundaries
            us = (us // 30_000_000) * 30_000_000 + rng.choice([0, 29_999_999])
        at = DateTime.from_timestamp_micros(us)
        code = compute_totp_one_time_password(now=at, secret=secret)
        checks = {}
        for delta in (-90, -60, -31, -30, -1, 1, 29, 30, 31, 60, 90):
            other = DateTime.from_timestamp_micros(us + delta * 10**6)
            checks[str(delta)] = verify_totp(now=other, secret=secret, one_time_password=code)
        codes.append(
            {"secret": secret.hex(), "at_us": us, "code": code, "verify_at_offset": checks}
        )
    throttle = []
    for failed in range(0, 12):
        last = DateTime.from_timestamp_micros(rng.randrange(0, 4_102_444_800 * 10**6))
        wait = compute_wait_until(failed, last if failed else None)
        throttle.append(
            {
                "failed_attempts": failed,
                "last_failed_attempt_us": last.as_timestamp_micros() if failed else None,
                "wait_until_us": None if wait is None else wait.as_timestamp_micros(),
            }
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"codes": codes, "throttle": throttle}, indent=1) + "\n")
    print(f"{OUT}: {len(codes)} codes, {len(throttle)} throttle deadlines")


if __name__ == "__main__":
    main()
