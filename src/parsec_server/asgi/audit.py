"""The audit trail of administration actions (docs/observability.md "Audit log").

One `admin_action` line per action (logger `parsec_server.audit`, level INFO) whether it comes from
the administration API (`actor="administration_token"`, `peer` the client address) or from an
operator command (`actor="cli:<os user>"`): `action` says what was done, the other fields on what.
Never a secret: no token, no bootstrap URL, no password; only identifiers and setting values.
The log formatters escape every value (log.py), so client-supplied text cannot forge a line.
"""

from __future__ import annotations

import getpass
import logging
import os
import sys

from parsec_server.log import ConsoleFormatter, JsonFormatter, get_logger

AUDIT_LOGGER = "parsec_server.audit"
audit_log = get_logger(AUDIT_LOGGER)


def admin_action(
    action: str, *, actor: str, peer: str | None = None, outcome: str = "ok", **what: object
) -> None:
    """Log one administration action. `what`: identifiers and non-secret values only."""
    _emit(action, actor, peer, outcome, what)


def _emit(action: str, actor: str, peer: str | None, outcome: str, what: dict[str, object]) -> None:
    audit_log.info("admin_action", action=action, actor=actor, peer=peer, outcome=outcome, **what)


def cli_actor() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no user name for this uid (containers)
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"cli:{user}"


def cli_action(action: str, outcome: str = "ok", **what: object) -> None:
    """An operator command's action: the line goes to stderr (stdout stays the command's output),
    as JSON when PARSEC_LOG_FORMAT=json, unless logging was configured already."""
    logger = logging.getLogger(AUDIT_LOGGER)
    if not logging.getLogger().handlers and not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        fmt = os.environ.get("PARSEC_LOG_FORMAT", "console").lower()
        handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    _emit(action, cli_actor(), None, outcome, what)


__all__ = ["AUDIT_LOGGER", "admin_action", "audit_log", "cli_action", "cli_actor"]
