"""Account creation (anonymous_server): validation e-mail on a real SMTP server, code checks,
creation, password algorithm (real and fake), server_config, and the /authenticated_account
handshake (protocol.md §1.6)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from account_support import (
    ARGON2ID,
    Account,
    HttpError,
    account_server,
    anonymous_server,
    create_account,
    new_method,
)

from parsec_server.asgi.metrics import request_family
from parsec_server.protocol.codec import packb
from parsec_server.protocol.ids import HumanHandle, is_valid_validation_code


def _create_step(
    code: str, address: str, method_id: uuid.UUID, mac_key: bytes
) -> dict[str, object]:
    return {
        "step": "NUMBER_1_CREATE",
        "validation_code": code,
        "human_handle": HumanHandle(address, "Zoe"),
        "auth_method_password_algorithm": ARGON2ID,
        "auth_method_mac_key": mac_key,
        "auth_method_id": method_id,
        "vault_key_access": b"access",
    }


async def test_create_validate_and_sign_in(db_url: str) -> None:
    async with account_server(db_url) as (server, box):
        address = "zoe@example.com"
        assert await anonymous_server(
            server, "account_create_send_validation_email", email=address
        ) == {"status": "ok"}
        [msg] = box.to(address)
        assert msg["Subject"] == "Parsec Account: Confirm your email address"
        assert msg.get_body(("html",)) is not None
        code = box.last_code(address)
        assert is_valid_validation_code(code)
        wrong = "AAAAAA" if code != "AAAAAA" else "BBBBBB"
        check = {"step": "NUMBER_0_CHECK_CODE", "email": address}
        assert await anonymous_server(
            server,
            "account_create_proceed",
            account_create_step={**check, "validation_code": wrong},
        ) == {"status": "invalid_validation_code"}
        assert await anonymous_server(
            server, "account_create_proceed", account_create_step={**check, "validation_code": code}
        ) == {"status": "ok"}
        method_id, mac_key = new_method()
        rep = await anonymous_server(
            server,
            "account_create_proceed",
            account_create_step=_create_step(code, address, method_id, mac_key),
        )
        assert rep == {"status": "ok"}
        # The code is spent.
        assert await anonymous_server(
            server,
            "account_create_proceed",
            account_create_step=_create_step(code, address, *new_method()),
        ) == {"status": "send_validation_email_required"}
        acct = Account(server, address, method_id, mac_key)
        assert await acct.rpc("ping", ping="hi") == {"status": "ok", "pong": "hi"}
        assert await acct.rpc("account_info") == {
            "status": "ok",
            "human_handle": [address, "Zoe"],
        }
        assert await anonymous_server(
            server, "auth_method_password_get_algorithm", email=address
        ) == {"status": "ok", "password_algorithm": ARGON2ID}


async def test_wrong_codes_then_a_new_email_is_required(db_url: str) -> None:
    async with account_server(db_url) as (server, box):
        address = "guess@example.com"
        await anonymous_server(server, "account_create_send_validation_email", email=address)
        code = box.last_code(address)
        wrong = "AAAAAA" if code != "AAAAAA" else "BBBBBB"
        check = {"step": "NUMBER_0_CHECK_CODE", "email": address}
        for _ in range(3):
            assert await anonymous_server(
                server,
                "account_create_proceed",
                account_create_step={**check, "validation_code": wrong},
            ) == {"status": "invalid_validation_code"}
        assert await anonymous_server(
            server, "account_create_proceed", account_create_step={**check, "validation_code": code}
        ) == {"status": "send_validation_email_required"}
        # A new e-mail, a new code that works.
        await anonymous_server(server, "account_create_send_validation_email", email=address)
        new_code = box.last_code(address)
        assert await anonymous_server(
            server,
            "account_create_proceed",
            account_create_step={**check, "validation_code": new_code},
        ) == {"status": "ok"}
        # Never asked: no code.
        assert await anonymous_server(
            server,
            "account_create_proceed",
            account_create_step={**check, "email": "other@example.com", "validation_code": code},
        ) == {"status": "send_validation_email_required"}


async def test_existing_account_gets_ok_and_no_email(db_url: str) -> None:
    async with account_server(db_url) as (server, box):
        acct = await create_account(server, box, "known@example.com")
        before = len(box.messages)
        assert await anonymous_server(
            server, "account_create_send_validation_email", email=acct.email
        ) == {"status": "ok"}
        assert len(box.messages) == before
        # Recovery of an unknown address: ok, no e-mail either.
        assert await anonymous_server(
            server, "account_recover_send_validation_email", email="nobody@example.com"
        ) == {"status": "ok"}
        assert len(box.messages) == before


async def test_auth_method_id_already_exists(db_url: str) -> None:
    async with account_server(db_url) as (server, box):
        acct = await create_account(server, box, "first@example.com")
        await anonymous_server(
            server, "account_create_send_validation_email", email="b@example.com"
        )
        code = box.last_code("b@example.com")
        step = _create_step(code, "b@example.com", acct.auth_method_id, b"k" * 32)
        assert await anonymous_server(
            server, "account_create_proceed", account_create_step=step
        ) == {"status": "auth_method_id_already_exists"}
        # Nothing was written, the code is still good.
        step = _create_step(code, "b@example.com", *new_method())
        assert await anonymous_server(
            server, "account_create_proceed", account_create_step=step
        ) == {"status": "ok"}


async def test_fake_password_algorithm_is_stable_and_looks_real(db_url: str) -> None:
    async with account_server(db_url) as (server, _):
        reps = [
            await anonymous_server(server, "auth_method_password_get_algorithm", email=e)
            for e in ("x@example.com", "x@example.com", "y@example.com")
        ]
        assert reps[0] == reps[1] == reps[2] == {"status": "ok", "password_algorithm": ARGON2ID}


async def test_rate_limit(db_url: str) -> None:
    async with account_server(db_url, cooldown=60, per_hour=3) as (server, box):
        assert await anonymous_server(
            server, "account_create_send_validation_email", email="r@example.com"
        ) == {"status": "ok"}
        rep = await anonymous_server(
            server, "account_create_send_validation_email", email="r@example.com"
        )
        assert rep["status"] == "email_sending_rate_limited"
        assert 50 < rep["wait_until"].timestamp() - time.time() <= 61
        # The same client IP for another recipient, and recovery too: the same limit.
        rep = await anonymous_server(
            server, "account_recover_send_validation_email", email="s@example.com"
        )
        assert rep["status"] == "email_sending_rate_limited"
        assert len(box.messages) == 1


async def test_server_config_announces_the_account_mode(db_url: str) -> None:
    for mode in ("ENABLED_WITH_VAULT", "DISABLED"):
        async with account_server(db_url, mode=mode) as (server, _):
            rep = await anonymous_server(server, "server_config")
            assert rep["account"] == mode


async def test_account_handshake(db_url: str) -> None:
    async with account_server(db_url) as (server, box):
        acct = await create_account(server, box, "hs@example.com")
        body = packb({"cmd": "ping", "ping": "x"})
        assert (await acct.post(body)).status_code == 200
        # Bad MAC, unknown method: 403; out of the ballpark: 498.
        assert (
            await acct.with_method(acct.auth_method_id, b"x" * 32).post(body)
        ).status_code == 403
        assert (await acct.with_method(uuid.uuid4(), acct.mac_key).post(body)).status_code == 403
        assert (await acct.post(body, seconds=int(time.time()) - 3600)).status_code == 498
        # Missing or malformed Authorization: 401; an unknown command: 415.
        r = await server.http.post(
            "/authenticated_account",
            content=body,
            headers={"Api-Version": "5.5", "Content-Type": "application/msgpack"},
        )
        assert r.status_code == 401
        r = await server.http.post(
            "/authenticated_account",
            content=body,
            headers={**acct.headers(), "Authorization": "Bearer PARSEC-MAC-BLAKE2B.zz"},
        )
        assert r.status_code == 401
        assert (await acct.post(packb({"cmd": "vlob_create"}))).status_code == 415
        r = await server.http.get("/authenticated_account", headers=acct.headers())
        assert r.status_code == 405
        try:
            await acct.with_method(uuid.uuid4(), acct.mac_key).rpc("account_info")
        except HttpError as exc:
            assert exc.status_code == 403


async def test_operator_templates(db_url: str, tmp_path: Path) -> None:
    """`--template-dir` with the official names and variables overrides the built-in bodies."""
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "account_create.txt.j2").write_text(
        "Welcome! Your validation code: {{ validation_code }} ({{ server_url }})\n"
    )
    (tmp_path / "email" / "account_create.html.j2").write_text(
        "<p>Code <b>{{ validation_code }}</b></p>\n"
    )
    async with account_server(db_url, template_dir=tmp_path) as (server, box):
        await anonymous_server(
            server, "account_create_send_validation_email", email="t@example.com"
        )
        [msg] = box.to("t@example.com")
        code = box.last_code("t@example.com")
        text = msg.get_body(("plain",))
        html = msg.get_body(("html",))
        assert text is not None and html is not None
        assert text.get_content().rstrip() == (
            f"Welcome! Your validation code: {code} (http://127.0.0.1:6777)"
        )
        assert html.get_content().rstrip() == f"<p>Code <b>{code}</b></p>"


async def test_expired_codes_are_refused_and_purged(db_url: str) -> None:
    async with account_server(db_url) as (server, box):
        await anonymous_server(
            server, "account_create_send_validation_email", email="old@example.com"
        )
        code = box.last_code("old@example.com")
        async with server.backend.db.connection() as conn:
            await conn.execute(
                "UPDATE account_validation_code SET created_on = created_on - interval '61 minutes'"
            )
        check = {"step": "NUMBER_0_CHECK_CODE", "email": "old@example.com", "validation_code": code}
        assert await anonymous_server(
            server, "account_create_proceed", account_create_step=check
        ) == {"status": "send_validation_email_required"}
        # The next code asked for (any address) purges it.
        await anonymous_server(
            server, "account_create_send_validation_email", email="new@example.com"
        )
        async with server.backend.db.connection() as conn:
            emails = await conn.fetch("SELECT email FROM account_validation_code")
        assert [r[0] for r in emails] == ["new@example.com"]


async def test_metrics_family(db_url: str) -> None:
    assert request_family("/authenticated_account") == "authenticated_account"
    async with account_server(db_url, metrics=True) as (server, box):
        acct = await create_account(server, box, "metrics@example.com")
        await acct.rpc("ping", ping="m")
        text = (await server.http.get("/metrics")).text
    assert (
        'parsec_requests_total{command="ping",family="authenticated_account",status="ok"} 1.0'
        in text
    )
