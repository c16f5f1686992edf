"""Parsec accounts: creation, recovery and deletion with a validation code sent by e-mail, the
password algorithm of an e-mail, and the account's own ping/account_info (docs/accounts.md).

As on the official server 3.9.3:

* `*_send_validation_email` first counts the e-mail against the rate limit
  (`--validation-email-rate-limit`: per recipient and per client IP), then answers `ok` without
  sending anything when the e-mail must not go (creation for an address that has an account,
  recovery for one that has none): no status tells whether an account exists.
* A code is valid one hour, for 3 wrong guesses; a wrong one answers `invalid_validation_code` and
  is counted (committed), then `send_validation_email_required`. A successful proceed consumes it.
* `auth_method_password_get_algorithm` answers for an unknown e-mail what a real account created
  by an official client has: the same for every call (see fake_password_algorithm).
* The commands are served whatever `--account-config` says; it only sets what server_config
  announces.
"""

from __future__ import annotations

import secrets
from typing import Any, Literal, TypedDict

from parsec_server import email
from parsec_server.commands.context import AccountClient, AnonymousClient
from parsec_server.commands.registry import command
from parsec_server.email.account import ValidationPurpose, validation_message
from parsec_server.protocol.addr import ServerAddr
from parsec_server.protocol.codec import now as utc_now
from parsec_server.protocol.generated import anonymous_server as anon
from parsec_server.protocol.generated import authenticated_account as acc
from parsec_server.protocol.ids import DateTime, HumanHandle
from parsec_server.storage import account as storage

# The official ValidationCode alphabet (protocol/ids.py checks it): no 0/1/I/O.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6

# The parameters official clients (3.9.3) create password methods with: what an account that
# exists would answer, hence what an unknown e-mail gets.
DEFAULT_ARGON2ID = {"memlimit_kb": 131072, "opslimit": 3, "parallelism": 1}


def new_validation_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def fake_password_algorithm(seed: bytes, email_address: str) -> dict[str, Any]:
    """The password algorithm answered for an e-mail without account: the same for every call.

    API 5.5's UntrustedPasswordAlgorithm is Argon2id cost parameters only, no salt: nothing in it
    varies between accounts, so the one answer that cannot be told from a real account's is the
    parameters official clients create accounts with (what the official 3.9.3 server answers too,
    whatever its seed). `seed` (`--fake-account-password-algorithm-seed`) has nothing to vary here;
    it is the input a salted algorithm would derive its fake salt from (keyed by `email_address`)."""
    return {"type": "ARGON2ID", **DEFAULT_ARGON2ID}


class _Sent(TypedDict):
    status: Literal["ok"]


class _ServerUnavailable(TypedDict):
    status: Literal["email_server_unavailable"]


class _RecipientRefused(TypedDict):
    status: Literal["email_recipient_refused"]


_SendStatus = _Sent | _ServerUnavailable | _RecipientRefused


async def _send_code(
    client: AnonymousClient | AccountClient, purpose: ValidationPurpose, to: str, code: str
) -> _SendStatus:
    config = client.backend.config
    try:
        server_url = ServerAddr.parse(config.server_addr).to_http_url()
    except ValueError:
        return {"status": "email_server_unavailable"}
    message = validation_message(
        config.email, purpose=purpose, to=to, code=code, server_url=server_url
    )
    match await email.send(config.email, message):
        case email.SUCCESS:
            return {"status": "ok"}
        case email.RECIPIENT_REFUSED:
            return {"status": "email_recipient_refused"}
        case _:
            return {"status": "email_server_unavailable"}


class _InvalidCode(TypedDict):
    status: Literal["invalid_validation_code"]


class _CodeRequired(TypedDict):
    status: Literal["send_validation_email_required"]


def _refused(
    checked: Literal["invalid_validation_code", "send_validation_email_required"],
) -> _InvalidCode | _CodeRequired:
    """The reply of a refused validation code (the same two statuses in every *_proceed)."""
    if checked == "invalid_validation_code":
        return {"status": "invalid_validation_code"}
    return {"status": "send_validation_email_required"}


async def _prepare_code(
    client: AnonymousClient | AccountClient, purpose: ValidationPurpose, email_address: str
) -> str | DateTime | None:
    """Rate limit, then a new code for (purpose, e-mail) when an e-mail must go: the code, None
    (answer ok, send nothing) or the DateTime until which the client is rate limited."""
    config = client.backend.config.account
    now = utc_now()
    async with client.backend.db.transaction() as conn:
        wait_until = await storage.register_email_intent(
            conn,
            now,
            client.client_ip,
            email_address,
            config.validation_email_cooldown,
            config.validation_email_max_per_hour,
        )
        if wait_until is not None:
            return wait_until
        account = await storage.live_account(conn, email_address, lock=True)
        if (purpose == "CREATE") == (account is not None):
            return None  # creation for an existing account, recovery/deletion without one
        code = new_validation_code()
        await storage.set_code(conn, purpose, email_address, code, now)
    return code


# --- anonymous_server ------------------------------------------------------------------------------


@command(anon.AuthMethodPasswordGetAlgorithmReq)
async def auth_method_password_get_algorithm(
    client: AnonymousClient, req: anon.AuthMethodPasswordGetAlgorithmReq
) -> anon.AuthMethodPasswordGetAlgorithmRep:
    async with client.backend.db.connection() as conn:
        found = await storage.password_algorithm(conn, req.email)
    fake = fake_password_algorithm(
        client.backend.config.account.fake_password_algorithm_seed, req.email
    )
    return {"status": "ok", "password_algorithm": fake if found is None else found}


@command(anon.AccountCreateSendValidationEmailReq)
async def account_create_send_validation_email(
    client: AnonymousClient, req: anon.AccountCreateSendValidationEmailReq
) -> anon.AccountCreateSendValidationEmailRep:
    prepared = await _prepare_code(client, "CREATE", req.email)
    if isinstance(prepared, DateTime):
        return {"status": "email_sending_rate_limited", "wait_until": prepared}
    if prepared is None:
        return {"status": "ok"}
    return await _send_code(client, "CREATE", req.email, prepared)


@command(anon.AccountCreateProceedReq)
async def account_create_proceed(
    client: AnonymousClient, req: anon.AccountCreateProceedReq
) -> anon.AccountCreateProceedRep:
    step = req.account_create_step
    now = utc_now()
    async with client.backend.db.transaction() as conn:
        if step["step"] == "NUMBER_0_CHECK_CODE":
            match await storage.check_code(
                conn, "CREATE", step["email"], step["validation_code"], now
            ):
                case "ok":
                    return {"status": "ok"}
                case refused:
                    return _refused(refused)
        human: HumanHandle = step["human_handle"]
        checked = await storage.check_code(
            conn, "CREATE", human.email, step["validation_code"], now
        )
        if checked != "ok":
            return _refused(checked)
        method = storage.NewAuthMethod(
            step["auth_method_id"],
            client.client_ip,
            client.user_agent,
            step["auth_method_mac_key"],
            step["vault_key_access"],
            step["auth_method_password_algorithm"],
        )
        match await storage.create(conn, now, human, method):
            case "ok":
                await storage.drop_code(conn, "CREATE", human.email)
                return {"status": "ok"}
            case "auth_method_id_already_exists":
                return {"status": "auth_method_id_already_exists"}
            case "account_already_exists":
                # Only when another request created it since the code was sent: the code is spent.
                await storage.drop_code(conn, "CREATE", human.email)
                return {"status": "send_validation_email_required"}


@command(anon.AccountRecoverSendValidationEmailReq)
async def account_recover_send_validation_email(
    client: AnonymousClient, req: anon.AccountRecoverSendValidationEmailReq
) -> anon.AccountRecoverSendValidationEmailRep:
    prepared = await _prepare_code(client, "RECOVER", req.email)
    if isinstance(prepared, DateTime):
        return {"status": "email_sending_rate_limited", "wait_until": prepared}
    if prepared is None:
        return {"status": "ok"}
    return await _send_code(client, "RECOVER", req.email, prepared)


@command(anon.AccountRecoverProceedReq)
async def account_recover_proceed(
    client: AnonymousClient, req: anon.AccountRecoverProceedReq
) -> anon.AccountRecoverProceedRep:
    """A new current vault (empty: the client re-uploads what it recovers from the previous ones)
    with one new method; every method of the older vaults is disabled."""
    now = utc_now()
    async with client.backend.db.transaction() as conn:
        checked = await storage.check_code(conn, "RECOVER", req.email, req.validation_code, now)
        if checked != "ok":
            return _refused(checked)
        account = await storage.live_account(conn, req.email, lock=True)
        if account is None:  # deleted since the code was sent
            await storage.drop_code(conn, "RECOVER", req.email)
            return {"status": "send_validation_email_required"}
        method = storage.NewAuthMethod(
            req.new_auth_method_id,
            client.client_ip,
            client.user_agent,
            req.new_auth_method_mac_key,
            req.new_vault_key_access,
            req.new_auth_method_password_algorithm,
        )
        if not await storage.replace_vault(conn, account, now, method):
            return {"status": "auth_method_id_already_exists"}
        await storage.drop_code(conn, "RECOVER", req.email)
    return {"status": "ok"}


# --- authenticated_account: ping, account_info, deletion ---------------------------------------------


@command(acc.PingReq)
async def account_ping(client: AccountClient, req: acc.PingReq) -> acc.PingRep:
    return {"status": "ok", "pong": req.ping}


@command(acc.AccountInfoReq)
async def account_info(client: AccountClient, req: acc.AccountInfoReq) -> acc.AccountInfoRep:
    async with client.backend.db.connection() as conn:
        human = await storage.info(conn, client.account_internal_id)
    return {"status": "ok", "human_handle": human}


@command(acc.AccountDeleteSendValidationEmailReq)
async def account_delete_send_validation_email(
    client: AccountClient, req: acc.AccountDeleteSendValidationEmailReq
) -> acc.AccountDeleteSendValidationEmailRep:
    prepared = await _prepare_code(client, "DELETE", client.email)
    if isinstance(prepared, DateTime):
        return {"status": "email_sending_rate_limited", "wait_until": prepared}
    if prepared is None:  # deleted meanwhile: the method the request was signed with is gone
        return {"status": "ok"}
    return await _send_code(client, "DELETE", client.email, prepared)


@command(acc.AccountDeleteProceedReq)
async def account_delete_proceed(
    client: AccountClient, req: acc.AccountDeleteProceedReq
) -> acc.AccountDeleteProceedRep:
    now = utc_now()
    async with client.backend.db.transaction() as conn:
        checked = await storage.check_code(conn, "DELETE", client.email, req.validation_code, now)
        if checked != "ok":
            return _refused(checked)
        if await storage.live_account(conn, client.email, lock=True) is None:
            return {"status": "send_validation_email_required"}
        await storage.delete(conn, client.account_internal_id, client.email, now)
    return {"status": "ok"}
