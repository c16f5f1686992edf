"""Our ASGI application for a server started by its own command line (granian, uvicorn CLI), for
bench/run.py --ours-server: configured from BENCH_DB_URL, BENCH_ADMIN_TOKEN, BENCH_PORT.

    BENCH_DB_URL=... BENCH_ADMIN_TOKEN=... BENCH_PORT=6771 \
        granian --interface asgi --factory bench.granian_app:app_factory --port 6771
"""

from __future__ import annotations

import os

from parsec_server.asgi.app import ParsecApp, build_app
from parsec_server.config import ServerConfig
from parsec_server.log import configure


def app_factory() -> ParsecApp:
    configure("warning")
    port = int(os.environ["BENCH_PORT"])
    return build_app(
        ServerConfig(
            db_url=os.environ["BENCH_DB_URL"],
            administration_token=os.environ["BENCH_ADMIN_TOKEN"],
            server_addr=f"parsec3://127.0.0.1:{port}?no_ssl=true",
            port=port,
        )
    )
