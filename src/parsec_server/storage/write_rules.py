"""The refusal rules of a realm write (vlob_create, vlob_update, block_create), decided once.

A write statement (storage/vlob.py, storage/block.py) reads the facts below in its snapshot and
writes only when its SQL `ok` condition holds; `write_refusal()` reads the same facts and says why a
write was refused, in the official server's order:

    realm_not_found -> realm_archived / realm_deleted -> author_not_allowed (role below
    CONTRIBUTOR) -> bad_key_index -> (update) vlob_not_found -> bad_vlob_version ->
    timestamp_out_of_ballpark -> require_greater_timestamp (common topic first, then realm topic)
    -> (create) already_exists.

The one difference between vlobs and blocks is the official server's too: block_create checks the
key index before the role (`key_index_first`); a block write has no timestamp (no ballpark, no
causality) and no version (`expect="create"`, `current_version` 1 when the id is taken).

`write_ok_sql()` is the SQL side of the same rules: tests/integration/commands/test_write_rules.py
checks, on generated facts evaluated by PostgreSQL, that it is true exactly when `write_refusal()`
finds no refusal (and the author is neither revoked nor expired, and the snapshot is not stale).
"""

from __future__ import annotations

import datetime
import enum
from typing import Literal, NamedTuple

__all__ = [
    "WRITE_ROLES",
    "Refusal",
    "WriteFacts",
    "write_ok_sql",
    "write_refusal",
]

WRITE_ROLES = frozenset({"OWNER", "MANAGER", "CONTRIBUTOR"})
_WRITE_ROLES_SQL = ", ".join(f"'{r}'" for r in sorted(WRITE_ROLES))


class Refusal(enum.Enum):
    REALM_NOT_FOUND = "realm_not_found"
    REALM_ARCHIVED = "realm_archived"
    REALM_DELETED = "realm_deleted"
    AUTHOR_NOT_ALLOWED = "author_not_allowed"
    BAD_KEY_INDEX = "bad_key_index"
    VLOB_NOT_FOUND = "vlob_not_found"
    BAD_VLOB_VERSION = "bad_vlob_version"
    TIMESTAMP_OUT_OF_BALLPARK = "timestamp_out_of_ballpark"
    REQUIRE_GREATER_COMMON_TIMESTAMP = "require_greater_timestamp (common)"
    REQUIRE_GREATER_REALM_TIMESTAMP = "require_greater_timestamp (realm)"
    ALREADY_EXISTS = "already_exists"


class WriteFacts(NamedTuple):
    """What a write statement read about the realm and the target (None: no realm, or no role, or
    no such vlob/block). `current_version`: the target's last version (vlobs), or 1 when a block
    already exists, None when the target does not exist."""

    realm_found: bool
    status: str | None
    role: str | None
    key_index: int | None
    common_ts: datetime.datetime | None
    realm_ts: datetime.datetime | None
    current_version: int | None


# What a write asks for: `version` for a versioned update, "create" for a new target; `timestamp`
# None for a write without a declared timestamp (blocks: no ballpark, no causality check).
Expect = int | Literal["create"]


def write_refusal(
    facts: WriteFacts,
    *,
    key_index: int,
    expect: Expect,
    timestamp: datetime.datetime | None,
    in_ballpark: bool,
    key_index_first: bool = False,
) -> Refusal | None:
    """Why the write is refused, or None (the first rule broken, in the official order)."""
    if not facts.realm_found:
        return Refusal.REALM_NOT_FOUND
    if facts.status != "AVAILABLE":
        return Refusal.REALM_DELETED if facts.status == "DELETED" else Refusal.REALM_ARCHIVED
    if key_index_first and facts.key_index != key_index:
        return Refusal.BAD_KEY_INDEX
    if facts.role not in WRITE_ROLES:
        return Refusal.AUTHOR_NOT_ALLOWED
    if facts.key_index != key_index:
        return Refusal.BAD_KEY_INDEX
    current = facts.current_version
    if expect != "create":
        if current is None:
            return Refusal.VLOB_NOT_FOUND
        if expect != current + 1:
            return Refusal.BAD_VLOB_VERSION
    if timestamp is not None:
        if not in_ballpark:
            return Refusal.TIMESTAMP_OUT_OF_BALLPARK
        if facts.common_ts is None or timestamp <= facts.common_ts:
            return Refusal.REQUIRE_GREATER_COMMON_TIMESTAMP
        if facts.realm_ts is None or timestamp <= facts.realm_ts:
            return Refusal.REQUIRE_GREATER_REALM_TIMESTAMP
    if expect == "create" and current is not None:
        return Refusal.ALREADY_EXISTS
    return None


def write_ok_sql(
    f: str,
    *,
    key_index: str,
    version: str,
    update: str,
    timestamp: str | None,
    in_ballpark: str | None,
) -> str:
    """The SQL condition of `write_refusal() is None` plus the handshake-level facts (author not
    revoked, organization not expired, snapshot not stale), over the columns of relation `f`
    (is_expired, revoked, stale, status, role, key_index, common_ts, realm_ts, current_version);
    the other arguments are SQL expressions (parameters) of the request. NULL means refused."""
    cond = f"""
        NOT {f}.is_expired AND NOT {f}.revoked AND NOT {f}.stale
        AND {f}.status = 'AVAILABLE'
        AND {f}.role IN ({_WRITE_ROLES_SQL})
        AND {f}.key_index = {key_index}
        AND CASE WHEN {update}
            THEN {f}.current_version + 1 = {version}
            ELSE {f}.current_version IS NULL
        END"""
    if timestamp is not None:
        cond += f"""
        AND {in_ballpark}
        AND {timestamp} > {f}.common_ts AND {timestamp} > {f}.realm_ts"""
    return cond
