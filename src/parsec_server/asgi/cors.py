"""`--cors-allow-origins`: Cross-Origin Resource Sharing, so that the web client served from another
origin can call the server from a browser (docs/configuration.md).

Same policy as the official server (protocol.md §1.1): methods OPTIONS/GET/POST/PATCH; request headers
`Api-Version`, `Authorization`, `User-Agent`, `Last-Event-ID` (sent by the browser when an event
stream reconnects) and the CORS-safelisted ones (`Content-Type`...). The protocol headers the client
reads from replies are exposed to it (`Api-Version`, `Supported-Api-Versions`, `Retry-After`...).
"""

from __future__ import annotations

from parsec_server.asgi.http import Headers, Message, Scope, Send, header, send_response

ALLOW_METHODS = ("OPTIONS", "GET", "POST", "PATCH")
ALLOW_HEADERS = (
    "api-version",
    "authorization",
    "user-agent",
    "last-event-id",
    # CORS-safelisted request headers: always allowed (a non-form Content-Type still needs a preflight).
    "accept",
    "accept-language",
    "content-language",
    "content-type",
)
EXPOSE_HEADERS = (
    "api-version",
    "supported-api-versions",
    "retry-after",
    "server",
    "content-type",
    "content-length",
)
MAX_AGE = 600  # seconds a browser may cache a preflight answer

_ALLOW_METHODS = ", ".join(ALLOW_METHODS).encode()
_ALLOW_HEADERS = ", ".join(ALLOW_HEADERS).encode()
_EXPOSE_HEADERS = ", ".join(EXPOSE_HEADERS).encode()


class Cors:
    def __init__(self, origins: tuple[str, ...]) -> None:
        self.any_origin = "*" in origins
        self.origins = frozenset(o.rstrip("/") for o in origins if o != "*")

    def _allow_origin(self, origin: bytes) -> Headers | None:
        """The Allow-Origin headers for this Origin, None when it is not allowed."""
        if self.any_origin:
            return [(b"access-control-allow-origin", b"*")]
        if origin.decode("latin-1") in self.origins:
            return [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]
        return None

    async def preflight(self, scope: Scope, send: Send, origin: bytes, method: bytes) -> None:
        """OPTIONS with Origin and Access-Control-Request-Method: 200 with the policy, or 400 with
        the reason (the browser then refuses the real request)."""
        allow = self._allow_origin(origin)
        problems = []
        if allow is None:
            problems.append("origin")
        if method.decode("latin-1").upper() not in ALLOW_METHODS:
            problems.append("method")
        requested = header(scope, b"access-control-request-headers") or b""
        names = {h.strip().lower() for h in requested.decode("latin-1").split(",") if h.strip()}
        if not names <= set(ALLOW_HEADERS):
            problems.append("headers")
        headers: Headers = [
            (b"access-control-allow-methods", _ALLOW_METHODS),
            (b"access-control-allow-headers", _ALLOW_HEADERS),
            (b"access-control-max-age", str(MAX_AGE).encode()),
            *(allow or [(b"vary", b"Origin")]),
        ]
        if problems:
            body = f"Disallowed CORS {', '.join(problems)}".encode()
            return await send_response(
                send, 400, body, [(b"content-type", b"text/plain"), *headers]
            )
        await send_response(send, 200, b"OK", [(b"content-type", b"text/plain"), *headers])

    def wrap_send(self, origin: bytes, send: Send) -> Send:
        """`send` adding Allow-Origin and Expose-Headers to the response of an allowed origin."""
        allow = self._allow_origin(origin)
        if allow is None:
            return send
        extra: Headers = [*allow, (b"access-control-expose-headers", _EXPOSE_HEADERS)]

        async def cors_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        return cors_send


__all__ = ["ALLOW_HEADERS", "ALLOW_METHODS", "EXPOSE_HEADERS", "Cors"]
