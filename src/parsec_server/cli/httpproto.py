"""The HTTP/1.1 connection protocol `run` gives uvicorn: its httptools protocol with bounds.

uvicorn by itself accepts request heads of any size (httptools keeps a header being received in
memory, however long), keeps a connection that never finishes its request head open forever, and
accepts every connection the kernel hands it. `GuardedHttpProtocol` adds, per connection:

* a bound on the request head (request line and headers, counted in bytes as they arrive, whatever
  their split into lines): beyond it `431`; a URL beyond `MAX_URL` `414`; a header line beyond
  `MAX_HEADER_LINE` or more than `max_headers` headers `431`; then the connection is closed;
* a deadline for the request head: a connection that has not completed its head `head_timeout`
  seconds after it opened, or after the first byte of a later request, is closed (`408` when part
  of a head was received). Once the head is complete the deadline is gone: a slow upload or an
  event stream (which never completes its response) is not cut. Idle keep-alive connections
  between requests are closed by uvicorn's `timeout_keep_alive` (`--keep-alive-timeout`);
* a cap on the open connections of the process: beyond it a new connection gets `503` and is
  closed at once; one warning when the cap is reached and one line when the process is back under it,
  per episode.

A connection refused or closed early answers, stops reading and sends its FIN at once, then waits
`LINGER` seconds before closing: an immediate close with unread data would send a TCP reset that
can destroy the answer before the client reads it. Nothing more is read meanwhile: what the client
keeps sending fills the kernel's buffers, then the client blocks, until the close.

Each response goes out in one write (`_OneWriteTransport`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httptools

from parsec_server.config import HttpLimits
from parsec_server.log import get_logger

log = get_logger("parsec_server.http")

MAX_URL = 8 * 1024  # bytes of the request target (414 beyond)
MAX_HEADER_LINE = 16 * 1024  # bytes of one header's name and value (431 beyond)
LINGER = 1.0  # seconds between the answer (and FIN) of a refused connection and its close
WARNING_INTERVAL = 60.0  # seconds between two warnings of the same kind (refused heads, timeouts)

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


class _OneWriteTransport:
    """A transport proxy sending a response's head and body in one write.

    uvicorn writes the status line and headers as soon as the application sends
    `http.response.start`, then the body in a second write: two send() system calls and two TCP
    segments per response. Here the head waits for what comes next within the same event loop
    step (the body, for our replies: the application sends both without pausing) and both go out
    together (`writelines`: one writev). A head with nothing after it in that step (streams, HEAD
    requests) goes out at the end of the step (`call_soon`).

    `close()` asks the protocol first (`on_close`): a connection closed while its request body is
    still arriving (an answer before the end of the body: 413) lingers instead (see the module)."""

    __slots__ = ("_head", "_loop", "_transport", "on_close")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head: bytes | None = None
        self._loop = asyncio.get_running_loop()
        # True when the protocol took care of the close (see the class)
        self.on_close: Callable[[], bool] | None = None

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.writelines((head, data))
        elif data[-4:] == b"\r\n\r\n" and data[:5] == b"HTTP/":
            self._head = data
            self._loop.call_soon(self._flush)
        else:
            self._transport.write(data)

    def _flush(self) -> None:
        head = self._head
        if head is not None:
            self._head = None
            if not self._transport.is_closing():
                self._transport.write(head)

    def writelines(self, chunks: Any) -> None:
        self._flush()
        self._transport.writelines(chunks)

    def close(self) -> None:
        self._flush()
        on_close = self.on_close
        if on_close is not None and on_close():
            return
        self._transport.close()

    def force_close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _RateLimitedWarning:
    """At most one warning line per `WARNING_INTERVAL` for one kind of event, with the number of
    events since the previous line (a flood of bad connections must not flood the log)."""

    __slots__ = ("_count", "_event", "_last")

    def __init__(self, event: str) -> None:
        self._event = event
        self._last = -WARNING_INTERVAL
        self._count = 0

    def hit(self, **fields: object) -> None:
        self._count += 1
        now = time.monotonic()
        if now - self._last >= WARNING_INTERVAL:
            log.warning(self._event, count=self._count, **fields)
            self._last = now
            self._count = 0


@dataclass(slots=True)
class _CapState:
    """Per process: whether the connection cap is being hit, and how many were refused since."""

    limit: int
    active: bool = False
    refused: int = 0


class _Refused(Exception):
    """Raised from a parser callback to stop parsing: the request is refused with `status`."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def guarded_protocol(limits: HttpLimits) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with the bounds of `limits` (see the module)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    cap = _CapState(limits.max_connections)
    refused_heads = _RateLimitedWarning("http_request_refused")
    timed_out = _RateLimitedWarning("http_request_head_timeout")
    max_head = limits.max_request_head_size
    max_url = min(MAX_URL, max_head)
    max_line = min(MAX_HEADER_LINE, max_head)
    max_headers = limits.max_request_headers
    head_timeout = limits.request_head_timeout

    class GuardedHttpProtocol(HttpToolsProtocol):
        _in_head = True  # between two requests or inside a head: the bounds apply
        _head_bytes = 0
        _header_count = 0
        _head_timer: asyncio.TimerHandle | None = None
        _lingering = False
        _proxy: _OneWriteTransport | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            proxy = _OneWriteTransport(transport)
            proxy.on_close = self._on_transport_close
            self._proxy = proxy
            super().connection_made(proxy)  # type: ignore[arg-type]
            if len(self.connections) > cap.limit:
                if not cap.active:
                    cap.active = True
                    cap.refused = 0
                    log.warning(
                        "connection_cap_reached",
                        limit=cap.limit,
                        detail="new connections are answered 503 and closed until some close "
                        "(--max-connections)",
                    )
                cap.refused += 1
                # closed at once (nothing to read yet): a flood must not pile up lingering sockets
                self._refuse(503, "", linger=False)
                return
            self._head_timer = self.loop.call_later(head_timeout, self._head_timeout)

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            if self._proxy is not None:
                self._proxy.on_close = None  # uvicorn closes the (lost) transport: no lingering
            super().connection_lost(exc)
            if cap.active and len(self.connections) < cap.limit:
                cap.active = False
                log.info("connection_cap_cleared", limit=cap.limit, refused=cap.refused)

        def eof_received(self) -> bool | None:  # type: ignore[override]
            if self._lingering:  # the client has sent everything: no need to wait any longer
                assert self._proxy is not None
                self._proxy.force_close()
            return None

        # --- bounds on the request head ----------------------------------------------------------
        def data_received(self, data: bytes) -> None:
            if self._lingering:
                return  # (reading is paused) the answer is out, the connection closes soon
            self._unset_keepalive_if_required()
            if self._in_head:
                self._head_bytes += len(data)
                if self._head_timer is None:
                    self._head_timer = self.loop.call_later(head_timeout, self._head_timeout)
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                return  # no protocol upgrade is served (uvicorn is given ws="none")
            except httptools.HttpParserError as exc:
                cause = exc.__context__  # httptools wraps what a callback raises
                if isinstance(cause, _Refused):
                    self._refuse(cause.status, cause.reason)
                else:
                    self._refuse(400, "invalid HTTP request")
                return
            if self._in_head and self._head_bytes > max_head and not self._lingering:
                self._refuse(431, "request head too large")

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._header_count = 0

        def on_url(self, url: bytes) -> None:
            super().on_url(url)
            if len(self.url) > max_url:
                raise _Refused(414, "URL too long")

        def on_header(self, name: bytes, value: bytes) -> None:
            self._header_count += 1
            if self._header_count > max_headers:
                raise _Refused(431, "too many headers")
            if len(name) + len(value) > max_line:
                raise _Refused(431, "header line too long")
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._cancel_head_timer()
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_head = True
            self._head_bytes = 0

        def on_response_complete(self) -> None:
            if self._lingering:  # uvicorn would resume reading and arm the keep-alive timer
                self.server_state.total_requests += 1
                return
            super().on_response_complete()

        # --- deadlines -----------------------------------------------------------------------------
        def _cancel_head_timer(self) -> None:
            timer = self._head_timer
            if timer is not None:
                timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if self._lingering or self.transport.is_closing():
                return
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                # a pipelined head arrived while a response is still being sent: wait for it
                self._head_timer = self.loop.call_later(head_timeout, self._head_timeout)
                return
            if self._head_bytes:
                timed_out.hit(received=self._head_bytes, timeout=head_timeout)
                self._refuse(408, "")
            else:  # a connection opened and left silent: nothing to answer, nothing unread
                assert self._proxy is not None
                self._cancel_head_timer()
                self._proxy.force_close()

        # --- closing ---------------------------------------------------------------------------
        def _refuse(self, status: int, reason: str, linger: bool = True) -> None:
            """Answer `status` (with `reason` as the body) and close the connection (after
            `LINGER` unless `linger` is false)."""
            if status != 503 and status != 408:
                refused_heads.hit(status=status, reason=reason)
            body = reason.encode("ascii")
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                % (status, _REASONS[status], len(body), body)
            )
            if linger:
                self._linger()
            else:
                self._lingering = True
                assert self._proxy is not None
                self._proxy.force_close()

        def _on_transport_close(self) -> bool:
            """uvicorn closes the transport after a `connection: close` answer: linger when the
            request body is still arriving (e.g. 413 before the end of a large body)."""
            cycle = self.cycle
            if self._lingering:
                return True
            if cycle is not None and cycle.more_body and not self._in_head:
                self._linger()
                return True
            return False

        def _linger(self) -> None:
            self._cancel_head_timer()
            self._unset_keepalive_if_required()
            if self._lingering:
                return
            self._lingering = True
            proxy = self._proxy
            assert proxy is not None
            if proxy.is_closing():
                return
            if self.flow is not None:
                self.flow.pause_reading()  # what the client still sends waits in the kernel
            try:
                proxy.write_eof()
            except (OSError, RuntimeError, NotImplementedError):  # pragma: no cover
                proxy.force_close()
                return
            self.loop.call_later(LINGER, proxy.force_close)

    return GuardedHttpProtocol


__all__ = ["LINGER", "MAX_HEADER_LINE", "MAX_URL", "guarded_protocol"]
