"""Structured logging on the standard library: JSON lines (production) or readable console lines.

Usage: `log = get_logger(__name__)`, then `log.info("rpc_done", cmd="vlob_create", status="ok")`.
Never log tokens, keys or blobs. Values may come from clients (an organization id in a URL, a
header): both formatters escape control characters (and line separators) in the event and every
field, so no value can end a line or forge another one, whatever the call site.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import Any

_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn adds a coloured duplicate of the message
}


_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(c: str) -> str:
    known = _ESCAPES.get(c)
    if known is not None:
        return known
    code = ord(c)
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )


def escape(value: object) -> str:
    """`value` as text on one line: backslashes and non-printable characters (control characters,
    line and paragraph separators...) become Python-style escapes (`\\n`, `\\x1b`, `\\u2028`)."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable() and "\\" not in text:  # the usual case, checked in C
        return text
    return "".join(c if c.isprintable() and c != "\\" else _escape_char(c) for c in text)


# Characters JSON leaves raw in strings but some log viewers take as line ends (DEL and C1 controls
# included): written as \uXXXX escapes, which JSON readers decode back.
_JSON_RAW_BREAKS = {c: f"\\u{c:04x}" for c in (*range(0x7F, 0xA0), 0x2028, 0x2029)}


# one encoder for every line (json.dumps with options builds a new one per call)
_encode_json = json.JSONEncoder(default=str, ensure_ascii=False).encode


class JsonFormatter(logging.Formatter):
    _second = -1
    _prefix = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # strftime once per second, not per line
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        doc: dict[str, Any] = {
            "ts": f"{self._prefix}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        doc.update((k, v) for k, v in record.__dict__.items() if k not in _RESERVED)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        line = _encode_json(doc)  # JSON escapes the C0 controls (\\n...) itself
        return line if line.isascii() else line.translate(_JSON_RAW_BREAKS)


class ConsoleFormatter(logging.Formatter):
    _second = -1
    _ts = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:
            self._ts = time.strftime("%H:%M:%S", time.localtime(second))
            self._second = second
        ts = self._ts
        extras = " ".join(
            f"{k}={escape(v)}" for k, v in record.__dict__.items() if k not in _RESERVED
        )
        line = f"{ts} [{record.levelname.lower():<7}] {escape(record.getMessage())}" + (
            f" {extras}" if extras else ""
        )
        if record.exc_info:
            # indented: an exception message holding client data cannot start a line of its own
            tb = self.formatException(record.exc_info)
            line += "\n" + "\n".join("    " + t for t in tb.splitlines())
        return line


class StructLogger:
    """A thin wrapper: keyword arguments become structured fields."""

    __slots__ = ("_logger",)

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def isEnabledFor(self, level: int) -> bool:
        return self._logger.isEnabledFor(level)

    def _log(self, level: int, event: str, exc_info: Any = None, **fields: Any) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, event, extra=fields, exc_info=exc_info, stacklevel=3)

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, event, **fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, event, exc_info=True, **fields)

    def rpc(self, org: str | None, family: str, cmd: str, status: str, started: float) -> None:
        """The per-request line (`rpc`, INFO): built directly, without `Logger.log`'s caller lookup
        (a stack walk) and keyword plumbing, since it runs for every request. The caller checks the
        level."""
        logger = self._logger
        record = logging.LogRecord(logger.name, logging.INFO, "", 0, "rpc", None, None)
        fields = record.__dict__
        fields["org"] = org
        fields["family"] = family
        fields["cmd"] = cmd
        fields["status"] = status
        fields["ms"] = round((time.perf_counter() - started) * 1000, 2)
        logger.handle(record)


class StepBatchingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes the lines logged during one event loop step together, at the end of that step: one
    write system call per step instead of one per line (the server logs a line per request, and
    many requests complete in one step under load). WARNING and above, lines logged outside an
    event loop, and `flush()` (called by `logging.shutdown` at exit) write at once."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop a write is scheduled on

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._pending.append(line)
        if record.levelno >= logging.WARNING:
            self._write_pending()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write_pending()
            return
        if self._loop is not loop:
            self._loop = loop
            loop.call_soon(self._end_of_step)

    def _end_of_step(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._loop = None
            self._write_pending()

    def _write_pending(self) -> None:
        if not self._pending:
            return
        data = "\n".join(self._pending) + "\n"
        self._pending.clear()
        try:
            self.stream.write(data)
            self.stream.flush()
        except Exception:  # like logging's handleError: never let logging break the caller
            if logging.raiseExceptions:
                sys.stderr.write("--- logging error: cannot write log lines\n")

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write_pending()
            super().flush()


def get_logger(name: str) -> StructLogger:
    return StructLogger(logging.getLogger(name))


def configure(level: str = "info", fmt: str = "console") -> None:
    handler = StepBatchingHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    # Every line would otherwise look up its thread and process names, which no formatter shows.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("uvicorn.error").propagate = True
    logging.getLogger("uvicorn.error").handlers[:] = []
    logging.getLogger("uvicorn").handlers[:] = []
