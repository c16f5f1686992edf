"""`GET /administration/openapi.json`: the OpenAPI 3 reference of the administration API.

The document is written by hand (asgi/openapi.json, shipped as package data) and checked against the
route table of asgi/admin.py and the server's real answers by tests/integration/transport/
test_openapi.py. No authentication: it holds no secret, as the official server's /docs.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from parsec_server.asgi.http import Send, send_response


@cache
def openapi_document() -> bytes:
    return resources.files("parsec_server.asgi").joinpath("openapi.json").read_bytes()


async def send_openapi(send: Send) -> None:
    await send_response(
        send,
        200,
        openapi_document(),
        [(b"content-type", b"application/json"), (b"cache-control", b"no-cache")],
    )
