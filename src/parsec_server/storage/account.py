"""Parsec accounts in PostgreSQL (migration 0004_accounts): accounts, vaults, authentication methods,
validation codes and the validation e-mail rate limit.

Every write to an account, its vaults or methods first locks the account row (`FOR UPDATE`), so that
a deletion, a key rotation, a recovery and a new method never interleave (e.g. a deleted account left
with an enabled method). The *current* vault is the vault of the enabled methods: a rotation or a
recovery opens a new vault and disables every method of the older ones.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple

import asyncpg

from parsec_server.protocol.ids import HumanHandle

Purpose = Literal["CREATE", "RECOVER", "DELETE"]
CodeCheck = Literal["ok", "invalid_validation_code", "send_validation_email_required"]

# A validation code is usable for one hour and for at most 3 wrong guesses (then a new e-mail is
# required), as on the official server.
CODE_VALIDITY = timedelta(hours=1)
CODE_MAX_FAILED_ATTEMPTS = 3


class AuthMethodAuth(NamedTuple):
    """What the /authenticated_account handshake needs about an enabled method."""

    account_internal_id: int
    email: str
    mac_key: bytes
    vault_internal_id: int


class NewAuthMethod(NamedTuple):
    auth_method_id: uuid.UUID
    created_by_ip: str
    created_by_user_agent: str
    mac_key: bytes
    vault_key_access: bytes
    password_algorithm: dict[str, Any] | None


class AuthMethod(NamedTuple):
    auth_method_id: uuid.UUID
    created_on: datetime
    created_by_ip: str
    created_by_user_agent: str
    vault_key_access: bytes
    password_algorithm: dict[str, Any] | None
    disabled_on: datetime | None


class Vault(NamedTuple):
    internal_id: int
    auth_methods: list[AuthMethod]
    items: dict[bytes, bytes]


class ActiveUser(NamedTuple):
    organization_id: str
    user_id: uuid.UUID
    created_on: datetime
    is_frozen: bool
    current_profile: str
    org_is_expired: bool
    org_user_profile_outsider_allowed: bool
    org_active_users_limit: int | None


class RevokedUser(NamedTuple):
    organization_id: str
    user_id: uuid.UUID
    created_on: datetime
    revoked_on: datetime
    current_profile: str


# --- handshake, password algorithm ----------------------------------------------------------------

_Q_AUTH = """
SELECT a.id, a.email, m.mac_key, m.vault
FROM account_auth_method m
JOIN account_vault v ON v.id = m.vault
JOIN account a ON a.id = v.account
WHERE m.auth_method_id = $1 AND m.disabled_on IS NULL AND a.deleted_on IS NULL
"""


_Q_LOCK_ACCOUNT = """
SELECT id FROM account
WHERE id = (
    SELECT v.account FROM account_auth_method m JOIN account_vault v ON v.id = m.vault
    WHERE m.auth_method_id = $1
)
FOR UPDATE
"""


async def auth_method_for_auth(
    conn: asyncpg.Connection, auth_method_id: uuid.UUID, *, lock: bool = False
) -> AuthMethodAuth | None:
    """The enabled method `auth_method_id` of a live account. `lock` first locks the account row
    (in a transaction), then reads the method: a statement of its own, so that it sees what a
    concurrent writer of the account committed while we waited (a key rotation that disabled the
    method). `... FOR UPDATE OF a` in one statement would re-check the account row only, and read
    the method as it was before the wait."""
    if lock:
        await conn.execute(_Q_LOCK_ACCOUNT, auth_method_id)
    row = await conn.fetchrow(_Q_AUTH, auth_method_id)
    if row is None:
        return None
    return AuthMethodAuth(row[0], row[1], bytes(row[2]), row[3])


_Q_PASSWORD_ALGORITHM = """
SELECT m.password_algorithm
FROM account a
JOIN account_vault v ON v.account = a.id
JOIN account_auth_method m ON m.vault = v.id
WHERE a.email = $1 AND a.deleted_on IS NULL AND m.disabled_on IS NULL
    AND m.password_algorithm IS NOT NULL
ORDER BY m.created_on DESC
LIMIT 1
"""


async def password_algorithm(conn: asyncpg.Connection, email: str) -> dict[str, Any] | None:
    """The password parameters of the account of `email`, None if there is no such account (or it
    has no enabled password method)."""
    raw = await conn.fetchval(_Q_PASSWORD_ALGORITHM, email)
    return None if raw is None else _algorithm(raw)


def _algorithm(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    value = json.loads(raw)
    assert isinstance(value, dict)
    return value


def _algorithm_json(algorithm: dict[str, Any] | None) -> str | None:
    return None if algorithm is None else json.dumps(algorithm, sort_keys=True)


# --- validation e-mail rate limit -----------------------------------------------------------------

_Q_RATE = """
WITH purged AS (
    DELETE FROM account_email_sent WHERE sent_on <= $1::timestamptz - interval '1 hour'
)
SELECT sent_on FROM account_email_sent
WHERE sent_on > $1::timestamptz - interval '1 hour'
    AND (recipient = $2 OR ($3 <> '' AND client_ip = $3))
ORDER BY sent_on
"""


async def register_email_intent(
    conn: asyncpg.Connection,
    now: datetime,
    client_ip: str,
    recipient: str,
    cooldown: int,
    max_per_hour: int,
) -> datetime | None:
    """Count a validation e-mail to `recipient` asked from `client_ip` ('' unknown): None if it may
    leave (then it is registered), else when it may. Limits: `cooldown` seconds since the last
    e-mail to that recipient or from that IP, and at most `max_per_hour` (0: no limit) of them in
    the last hour. Serialized across processes by a transaction-level advisory lock."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('parsec_account_email_sent'))")
    rows = await conn.fetch(_Q_RATE, now, recipient, client_ip)
    if rows:
        last: datetime = rows[-1][0]
        if now - last < timedelta(seconds=cooldown):
            return last + timedelta(seconds=cooldown)
        if max_per_hour > 0 and len(rows) >= max_per_hour:
            first: datetime = rows[0][0]
            return first + timedelta(hours=1)
    await conn.execute(
        "INSERT INTO account_email_sent (sent_on, recipient, client_ip) VALUES ($1, $2, $3)",
        now,
        recipient,
        client_ip,
    )
    return None


# --- validation codes -----------------------------------------------------------------------------

_Q_SET_CODE = """
INSERT INTO account_validation_code (purpose, email, code, created_on, failed_attempts)
VALUES ($1, $2, $3, $4, 0)
ON CONFLICT (purpose, email) DO UPDATE
    SET code = excluded.code, created_on = excluded.created_on, failed_attempts = 0
"""


async def set_code(
    conn: asyncpg.Connection, purpose: Purpose, email: str, code: str, now: datetime
) -> None:
    """A new code for (purpose, email): the previous one, if any, is replaced. Expired codes (of
    any address) are purged on the way: codes asked for and never used do not pile up."""
    await conn.execute(
        "DELETE FROM account_validation_code WHERE created_on < $1", now - CODE_VALIDITY
    )
    await conn.execute(_Q_SET_CODE, purpose, email, code, now)


async def check_code(
    conn: asyncpg.Connection, purpose: Purpose, email: str, code: str, now: datetime
) -> CodeCheck:
    """Check a code (a wrong one counts a failed attempt: commit the transaction even then). An
    expired code, or one guessed wrong CODE_MAX_FAILED_ATTEMPTS times, is as good as none."""
    row = await conn.fetchrow(
        "SELECT code, created_on, failed_attempts FROM account_validation_code"
        " WHERE purpose = $1 AND email = $2 FOR UPDATE",
        purpose,
        email,
    )
    if row is None:
        return "send_validation_email_required"
    expected, created_on, failed = row
    if now - created_on > CODE_VALIDITY or failed >= CODE_MAX_FAILED_ATTEMPTS:
        return "send_validation_email_required"
    if expected != code:
        await conn.execute(
            "UPDATE account_validation_code SET failed_attempts = failed_attempts + 1"
            " WHERE purpose = $1 AND email = $2",
            purpose,
            email,
        )
        return "invalid_validation_code"
    return "ok"


async def drop_code(conn: asyncpg.Connection, purpose: Purpose, email: str) -> None:
    await conn.execute(
        "DELETE FROM account_validation_code WHERE purpose = $1 AND email = $2", purpose, email
    )


# --- accounts -------------------------------------------------------------------------------------


async def live_account(conn: asyncpg.Connection, email: str, *, lock: bool = False) -> int | None:
    """The internal id of the (not deleted) account of `email`."""
    query = "SELECT id FROM account WHERE email = $1 AND deleted_on IS NULL"
    value: int | None = await conn.fetchval(query + (" FOR UPDATE" if lock else ""), email)
    return value


async def auth_method_id_taken(conn: asyncpg.Connection, auth_method_id: uuid.UUID) -> bool:
    found = await conn.fetchval(
        "SELECT 1 FROM account_auth_method WHERE auth_method_id = $1", auth_method_id
    )
    return found is not None


_Q_INSERT_METHOD = """
INSERT INTO account_auth_method (
    auth_method_id, vault, created_on, created_by_ip, created_by_user_agent, mac_key,
    vault_key_access, password_algorithm
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)
ON CONFLICT (auth_method_id) DO NOTHING
RETURNING id
"""


async def _insert_method(
    conn: asyncpg.Connection, vault: int, now: datetime, method: NewAuthMethod
) -> bool:
    """False when the method id is taken (then nothing was inserted)."""
    inserted = await conn.fetchval(
        _Q_INSERT_METHOD,
        method.auth_method_id,
        vault,
        now,
        method.created_by_ip,
        method.created_by_user_agent,
        method.mac_key,
        method.vault_key_access,
        _algorithm_json(method.password_algorithm),
    )
    return inserted is not None


async def _new_vault(conn: asyncpg.Connection, account: int, now: datetime) -> int:
    vault: int = await conn.fetchval(
        "INSERT INTO account_vault (account, created_on) VALUES ($1, $2) RETURNING id", account, now
    )
    return vault


_Q_UPSERT_ACCOUNT = """
INSERT INTO account (email, human_label, created_on) VALUES ($1, $2, $3)
ON CONFLICT (email) DO UPDATE
    SET human_label = excluded.human_label, created_on = excluded.created_on, deleted_on = NULL
    WHERE account.deleted_on IS NOT NULL
RETURNING id
"""


async def create(
    conn: asyncpg.Connection, now: datetime, human: HumanHandle, method: NewAuthMethod
) -> Literal["ok", "auth_method_id_already_exists", "account_already_exists"]:
    """Create the account of `human.email` (or bring a deleted one back, with a new vault) and its
    first method. Nothing is written unless "ok"."""
    if await auth_method_id_taken(conn, method.auth_method_id):
        return "auth_method_id_already_exists"
    try:
        async with conn.transaction():  # a savepoint: a lost race leaves nothing behind
            account = await conn.fetchval(_Q_UPSERT_ACCOUNT, human.email, human.label, now)
            if account is None:
                return "account_already_exists"
            vault = await _new_vault(conn, account, now)
            if not await _insert_method(conn, vault, now, method):
                raise _Rollback()
    except _Rollback:
        return "auth_method_id_already_exists"
    return "ok"


class _Rollback(Exception):
    """Raised inside a savepoint to undo it."""


async def info(conn: asyncpg.Connection, account: int) -> HumanHandle:
    row = await conn.fetchrow("SELECT email, human_label FROM account WHERE id = $1", account)
    assert row is not None
    return HumanHandle(row[0], row[1])


async def _disable_all_methods(conn: asyncpg.Connection, account: int, now: datetime) -> None:
    await conn.execute(
        "UPDATE account_auth_method SET disabled_on = $2"
        " WHERE disabled_on IS NULL"
        " AND vault IN (SELECT id FROM account_vault WHERE account = $1)",
        account,
        now,
    )


async def delete(conn: asyncpg.Connection, account: int, email: str, now: datetime) -> None:
    """Mark the account deleted and disable its methods (its vaults stay until creation again)."""
    await conn.execute("UPDATE account SET deleted_on = $2 WHERE id = $1", account, now)
    await _disable_all_methods(conn, account, now)
    await conn.execute("DELETE FROM account_validation_code WHERE email = $1", email)


async def replace_vault(
    conn: asyncpg.Connection,
    account: int,
    now: datetime,
    method: NewAuthMethod,
    items: dict[bytes, bytes] | None = None,
) -> bool:
    """Open a new current vault with `method` (and `items`), disabling every method of the older
    vaults (recovery, key rotation). False, with nothing written, when the method id is taken; the
    account row must be locked."""
    if await auth_method_id_taken(conn, method.auth_method_id):
        return False
    try:
        async with conn.transaction():
            await _disable_all_methods(conn, account, now)
            vault = await _new_vault(conn, account, now)
            if not await _insert_method(conn, vault, now, method):
                raise _Rollback()
            if items:
                await conn.executemany(
                    "INSERT INTO account_vault_item (vault, fingerprint, data) VALUES ($1, $2, $3)",
                    [(vault, fp, data) for fp, data in items.items()],
                )
    except _Rollback:
        return False
    return True


# --- authentication methods -----------------------------------------------------------------------


async def add_method(
    conn: asyncpg.Connection, vault: int, now: datetime, method: NewAuthMethod
) -> bool:
    """Add `method` to the current vault `vault` (a password method replaces the enabled password
    method: one at a time). False, with nothing written, when the id is taken."""
    if await auth_method_id_taken(conn, method.auth_method_id):
        return False
    try:
        async with conn.transaction():
            if method.password_algorithm is not None:
                await conn.execute(
                    "UPDATE account_auth_method SET disabled_on = $2 WHERE vault = $1"
                    " AND password_algorithm IS NOT NULL AND disabled_on IS NULL",
                    vault,
                    now,
                )
            if not await _insert_method(conn, vault, now, method):
                raise _Rollback()
    except _Rollback:
        return False
    return True


_Q_DISABLE_TARGET = """
SELECT v.account, m.disabled_on IS NOT NULL
FROM account_auth_method m JOIN account_vault v ON v.id = m.vault
WHERE m.auth_method_id = $1
FOR UPDATE OF m
"""


async def disable_method(
    conn: asyncpg.Connection, account: int, target: uuid.UUID, now: datetime
) -> Literal["ok", "auth_method_not_found", "auth_method_already_disabled"]:
    """Disable `target`, a method of `account` (another account's method is "not found")."""
    row = await conn.fetchrow(_Q_DISABLE_TARGET, target)
    if row is None or row[0] != account:
        return "auth_method_not_found"
    if row[1]:
        return "auth_method_already_disabled"
    await conn.execute(
        "UPDATE account_auth_method SET disabled_on = $2 WHERE auth_method_id = $1", target, now
    )
    return "ok"


_METHOD_COLUMNS = (
    "auth_method_id, created_on, created_by_ip, created_by_user_agent, vault_key_access,"
    " password_algorithm, disabled_on"
)


def _method(row: asyncpg.Record) -> AuthMethod:
    return AuthMethod(
        row["auth_method_id"],
        row["created_on"],
        row["created_by_ip"],
        row["created_by_user_agent"],
        bytes(row["vault_key_access"]),
        _algorithm(row["password_algorithm"]),
        row["disabled_on"],
    )


async def enabled_methods(conn: asyncpg.Connection, vault: int) -> list[AuthMethod]:
    rows = await conn.fetch(
        f"SELECT {_METHOD_COLUMNS} FROM account_auth_method"
        " WHERE vault = $1 AND disabled_on IS NULL ORDER BY created_on, id",
        vault,
    )
    return [_method(r) for r in rows]


# --- vault ----------------------------------------------------------------------------------------


async def upload_item(
    conn: asyncpg.Connection, vault: int, fingerprint: bytes, item: bytes
) -> bool:
    """False when the vault already holds `fingerprint`."""
    inserted = await conn.fetchval(
        "INSERT INTO account_vault_item (vault, fingerprint, data) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING RETURNING 1",
        vault,
        fingerprint,
        item,
    )
    return inserted is not None


async def items(conn: asyncpg.Connection, vault: int) -> dict[bytes, bytes]:
    rows = await conn.fetch(
        "SELECT fingerprint, data FROM account_vault_item WHERE vault = $1", vault
    )
    return {bytes(r[0]): bytes(r[1]) for r in rows}


async def key_access(conn: asyncpg.Connection, auth_method_id: uuid.UUID) -> bytes:
    value: bytes = await conn.fetchval(
        "SELECT vault_key_access FROM account_auth_method WHERE auth_method_id = $1",
        auth_method_id,
    )
    return bytes(value)


async def all_vaults(conn: asyncpg.Connection, account: int) -> list[Vault]:
    """Every vault of `account`, oldest first, with all their methods (disabled ones too)."""
    vault_ids = [
        r[0]
        for r in await conn.fetch(
            "SELECT id FROM account_vault WHERE account = $1 ORDER BY id", account
        )
    ]
    methods: dict[int, list[AuthMethod]] = {v: [] for v in vault_ids}
    for row in await conn.fetch(
        f"SELECT vault, {_METHOD_COLUMNS} FROM account_auth_method"
        " WHERE vault = ANY($1::bigint[]) ORDER BY created_on, id",
        vault_ids,
    ):
        methods[row["vault"]].append(_method(row))
    contents: dict[int, dict[bytes, bytes]] = {v: {} for v in vault_ids}
    for row in await conn.fetch(
        "SELECT vault, fingerprint, data FROM account_vault_item WHERE vault = ANY($1::bigint[])",
        vault_ids,
    ):
        contents[row[0]][bytes(row[1])] = bytes(row[2])
    return [Vault(v, methods[v], contents[v]) for v in vault_ids]


# --- organizations and invitations of the account's e-mail ----------------------------------------

_Q_USERS = """
SELECT o.organization_id, u.user_id, u.created_on, u.revoked_on, u.frozen, u.current_profile,
    o.is_expired, o.user_profile_outsider_allowed, o.active_users_limit
FROM human h
JOIN user_ u ON u.human = h.id
JOIN organization o ON o.id = h.organization
WHERE h.email = $1
ORDER BY o.organization_id, u.created_on
"""


async def users_of_email(
    conn: asyncpg.Connection, email: str
) -> tuple[list[ActiveUser], list[RevokedUser]]:
    """The users with this e-mail in every organization: active ones and revoked ones."""
    active: list[ActiveUser] = []
    revoked: list[RevokedUser] = []
    for r in await conn.fetch(_Q_USERS, email):
        if r["revoked_on"] is None:
            active.append(
                ActiveUser(
                    r["organization_id"],
                    r["user_id"],
                    r["created_on"],
                    r["frozen"],
                    r["current_profile"],
                    r["is_expired"],
                    r["user_profile_outsider_allowed"],
                    r["active_users_limit"],
                )
            )
        else:
            revoked.append(
                RevokedUser(
                    r["organization_id"],
                    r["user_id"],
                    r["created_on"],
                    r["revoked_on"],
                    r["current_profile"],
                )
            )
    return active, revoked


_Q_INVITATIONS = """
SELECT o.organization_id, i.token, i.type
FROM invitation i
JOIN organization o ON o.id = i.organization
LEFT JOIN user_ u ON u.id = i.claimer_user AND u.revoked_on IS NULL
LEFT JOIN human h ON h.id = u.human
WHERE i.deleted_on IS NULL AND (i.claimer_email = $1 OR h.email = $1)
ORDER BY i.created_on, i.id
"""


async def invitations_of_email(
    conn: asyncpg.Connection, email: str
) -> list[tuple[str, bytes, str]]:
    """Pending invitations for this e-mail: USER ones to it, DEVICE and SHAMIR_RECOVERY ones for
    a non-revoked user with it, in every organization."""
    return [(r[0], bytes(r[1]), r[2]) for r in await conn.fetch(_Q_INVITATIONS, email)]
