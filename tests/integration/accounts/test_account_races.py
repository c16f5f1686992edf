"""Concurrent account requests on real PostgreSQL: a validation code creates one account only, a
fingerprint is uploaded once, a rotation and a new method cannot both win."""

from __future__ import annotations

import asyncio
import hashlib

from account_support import (
    ARGON2ID,
    account_server,
    anonymous_server,
    create_account,
    new_method,
)

from parsec_server.protocol.ids import HumanHandle


async def test_one_code_creates_one_account(db_url: str) -> None:
    async with account_server(db_url) as (server, box):
        address = "race@example.com"
        await anonymous_server(server, "account_create_send_validation_email", email=address)
        code = box.last_code(address)

        async def create() -> str:
            method_id, mac_key = new_method()
            rep = await anonymous_server(
                server,
                "account_create_proceed",
                account_create_step={
                    "step": "NUMBER_1_CREATE",
                    "validation_code": code,
                    "human_handle": HumanHandle(address, "Race"),
                    "auth_method_password_algorithm": ARGON2ID,
                    "auth_method_mac_key": mac_key,
                    "auth_method_id": method_id,
                    "vault_key_access": b"k",
                },
            )
            return str(rep["status"])

        statuses = sorted(await asyncio.gather(*(create() for _ in range(4))))
        assert statuses == ["ok"] + ["send_validation_email_required"] * 3
        async with server.backend.db.connection() as conn:
            assert await conn.fetchval("SELECT count(*) FROM account_vault") == 1


async def test_concurrent_uploads_and_rotation(db_url: str) -> None:
    async with account_server(db_url) as (server, box):
        acct = await create_account(server, box, "up@example.com")
        item = b"item"
        fingerprint = hashlib.sha256(item).digest()
        reps = await asyncio.gather(
            *(
                acct.rpc("vault_item_upload", item_fingerprint=fingerprint, item=item)
                for _ in range(4)
            )
        )
        assert sorted(r["status"] for r in reps) == ["fingerprint_already_exists"] * 3 + ["ok"]

        # A key rotation racing a new method: the method lands in the old vault (then disabled by
        # the rotation) or the rotation comes second and disables it; never an enabled method on a
        # vault that is not current.
        rot_id, rot_key = new_method()
        other_id, other_key = new_method()
        rotation, creation = await asyncio.gather(
            acct.rpc(
                "vault_key_rotation",
                new_auth_method_id=rot_id,
                new_auth_method_mac_key=rot_key,
                new_auth_method_password_algorithm=ARGON2ID,
                new_vault_key_access=b"k2",
                items={fingerprint: b"item2"},
            ),
            acct.rpc(
                "auth_method_create",
                auth_method_password_algorithm=None,
                auth_method_mac_key=other_key,
                auth_method_id=other_id,
                vault_key_access=b"k3",
            ),
            return_exceptions=True,
        )
        assert rotation == {"status": "ok"}
        async with server.backend.db.connection() as conn:
            vaults = await conn.fetch(
                "SELECT DISTINCT m.vault FROM account_auth_method m WHERE m.disabled_on IS NULL"
            )
        assert len(vaults) == 1
        rotated = acct.with_method(rot_id, rot_key)
        methods = (await rotated.rpc("auth_method_list"))["items"]
        assert [m["auth_method_id"] for m in methods] == [rot_id]
        # The creation either succeeded before the rotation or was refused as no longer signed in.
        assert creation == {"status": "ok"} or getattr(creation, "status_code", None) == 403
