#!/usr/bin/env python3
"""Container health check: GET /health on the local parsec-server; exit 0 if it answers 200, else 1.

Installed in the image as `parsec-healthcheck` (see Dockerfile `HEALTHCHECK`). It reads the same
PARSEC_HOST / PARSEC_PORT variables as `parsec-server run`: changing the port needs no other edit.
The standard library only: the image has no curl.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request

_ANY_ADDRESS = {"", "0.0.0.0", "::", "[::]"}


def health_url(environ: dict[str, str] | os._Environ[str]) -> str:
    host = environ.get("PARSEC_HOST", "").strip()
    if host in _ANY_ADDRESS:
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 literal
    port = environ.get("PARSEC_PORT", "").strip() or "6777"
    return f"http://{host}:{port}/health"


def main() -> int:
    url = health_url(os.environ)
    try:
        with urllib.request.urlopen(
            url, timeout=float(os.environ.get("PARSEC_HEALTHCHECK_TIMEOUT", "4"))
        ) as rep:
            body = rep.read(4096)
            status = rep.status
    except urllib.error.HTTPError as exc:  # 503: the database is unreachable
        body, status = exc.read(4096), exc.code
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    try:
        detail = json.loads(body)
    except ValueError:
        detail = body[:200].decode("utf-8", "replace")
    if status != 200:
        print(f"unhealthy: {url} answered {status}: {detail}", file=sys.stderr)
        return 1
    print(f"healthy: {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
