#!/usr/bin/env python3
"""Micro-benchmark of the protocol/crypto hot paths (per call, best of 5 runs).

    .venv/bin/python tools/bench_protocol.py

Uses the golden vectors (tests/unit/protocol/vectors) as inputs.
"""

from __future__ import annotations

import datetime
import json
import timeit
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from parsec_server.crypto import certificates, tokens
from parsec_server.protocol.registry import decode_req, encode_rep

VECTORS = Path(__file__).resolve().parent.parent / "tests" / "unit" / "protocol" / "vectors"


def bench(label: str, fn: Callable[[], Any], number: int = 20_000) -> None:
    best = min(timeit.repeat(fn, number=number, repeat=5)) / number
    print(f"{label:44s} {best * 1e6:8.2f} us")


def main() -> None:
    requests = json.loads((VECTORS / "requests.json").read_text())
    for cmd in (
        "vlob_create",
        "vlob_update",
        "vlob_read_batch",
        "block_create",
        "certificate_get",
        "ping",
    ):
        body = bytes.fromhex(next(v["hex"] for v in requests if v["cmd"] == cmd))
        bench(f"decode_req {cmd}", lambda body=body: decode_req("authenticated", body))
    now = datetime.datetime.now(datetime.UTC)
    bench("encode_rep {status: ok}", lambda: encode_rep({"status": "ok"}))
    rgt = {"status": "require_greater_timestamp", "strictly_greater_than": now}
    bench("encode_rep require_greater_timestamp", lambda: encode_rep(rgt))
    block = {
        "status": "ok",
        "block": b"x" * 4096,
        "key_index": 1,
        "needed_realm_certificate_timestamp": now,
    }
    bench("encode_rep block_read ok (4 KiB)", lambda: encode_rep(block))
    items = [(uuid.uuid4(), 1, uuid.uuid4(), 1, now, b"x" * 500) for _ in range(10)]
    batch = {
        "status": "ok",
        "items": items,
        "needed_common_certificate_timestamp": now,
        "needed_realm_certificate_timestamp": now,
    }
    bench("encode_rep vlob_read_batch ok (10 items)", lambda: encode_rep(batch))
    certs = json.loads((VECTORS / "certificates.json").read_text())
    v = next(c for c in certs if c["type"] == "realm_role_certificate")
    signed, key = bytes.fromhex(v["signed"]), bytes.fromhex(v["verify_key"])
    bench(
        "verify_and_load realm_role_certificate",
        lambda: certificates.verify_and_load("realm_role_certificate", signed, key),
        2_000,
    )
    misc = json.loads((VECTORS / "misc.json").read_text())
    header = ("Bearer " + misc["token_good"]).encode()
    verify_key = bytes.fromhex(misc["token_verify_key"])
    bench("parse_authorization", lambda: tokens.parse_authorization(header))
    token = tokens.parse_authorization(header)
    bench("token verify (cached)", lambda: token.verify(verify_key))
    bench(
        "token verify (uncached)",
        lambda: certificates.ed25519_verify(token.signature, token.signed, verify_key),
        2_000,
    )


if __name__ == "__main__":
    main()
