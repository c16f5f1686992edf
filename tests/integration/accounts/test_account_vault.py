"""Signed-in account commands: authentication methods, vault items, key rotation, recovery after a
lost password (account_recover_*), deletion, and the organizations/invitations of the e-mail."""

from __future__ import annotations

import hashlib
import sys
import uuid
from pathlib import Path

from account_support import (
    ARGON2ID,
    Account,
    HttpError,
    Mailbox,
    account_server,
    anonymous_server,
    create_account,
    new_method,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "commands"))
from core_helpers import Server

from parsec_server.protocol.codec import packb


def fp(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


async def _status(acct: Account) -> int:
    return (await acct.post(packb({"cmd": "ping", "ping": "p"}))).status_code


async def test_auth_methods(db_url: str) -> None:
    async with account_server(db_url) as (server, box):
        acct = await create_account(server, box, "m@example.com")
        other = await create_account(server, box, "other@example.com")
        [first] = (await acct.rpc("auth_method_list"))["items"]
        assert first["auth_method_id"] == acct.auth_method_id
        assert first["password_algorithm"] == ARGON2ID
        assert first["vault_key_access"] == b"ka1"
        assert first["created_by_ip"] == "127.0.0.1"

        # A client-provided method (no password algorithm) joins the password one.
        keyring_id, keyring_key = new_method()
        rep = await acct.rpc(
            "auth_method_create",
            auth_method_password_algorithm=None,
            auth_method_mac_key=keyring_key,
            auth_method_id=keyring_id,
            vault_key_access=b"ka-keyring",
        )
        assert rep == {"status": "ok"}
        assert await acct.rpc(
            "auth_method_create",
            auth_method_password_algorithm=None,
            auth_method_mac_key=keyring_key,
            auth_method_id=other.auth_method_id,
            vault_key_access=b"x",
        ) == {"status": "auth_method_id_already_exists"}
        keyring = acct.with_method(keyring_id, keyring_key)
        items = (await keyring.rpc("auth_method_list"))["items"]
        assert [i["auth_method_id"] for i in items] == [acct.auth_method_id, keyring_id]
        assert (await keyring.rpc("vault_item_list"))["key_access"] == b"ka-keyring"

        # A new password method replaces the previous password method.
        pw_id, pw_key = new_method()
        assert await keyring.rpc(
            "auth_method_create",
            auth_method_password_algorithm=ARGON2ID,
            auth_method_mac_key=pw_key,
            auth_method_id=pw_id,
            vault_key_access=b"ka-pw2",
        ) == {"status": "ok"}
        assert await _status(acct) == 403
        items = (await keyring.rpc("auth_method_list"))["items"]
        assert [i["auth_method_id"] for i in items] == [keyring_id, pw_id]

        # Disabling.
        assert await keyring.rpc("auth_method_disable", auth_method_id=keyring_id) == {
            "status": "self_disable_not_allowed"
        }
        for unknown in (uuid.uuid4(), other.auth_method_id):
            assert await keyring.rpc("auth_method_disable", auth_method_id=unknown) == {
                "status": "auth_method_not_found"
            }
        assert await keyring.rpc("auth_method_disable", auth_method_id=acct.auth_method_id) == {
            "status": "auth_method_already_disabled"
        }
        pw = acct.with_method(pw_id, pw_key)
        assert await pw.rpc("auth_method_disable", auth_method_id=keyring_id) == {"status": "ok"}
        assert await _status(keyring) == 403
        assert await _status(other) == 200


async def test_vault_items_and_key_rotation(db_url: str) -> None:
    async with account_server(db_url) as (server, box):
        acct = await create_account(server, box, "v@example.com")
        other = await create_account(server, box, "v2@example.com")
        a, b = b"device keys A", b"device keys B"
        assert await acct.rpc("vault_item_upload", item_fingerprint=fp(a), item=a) == {
            "status": "ok"
        }
        assert await acct.rpc("vault_item_upload", item_fingerprint=fp(a), item=b) == {
            "status": "fingerprint_already_exists"
        }
        assert await acct.rpc("vault_item_upload", item_fingerprint=fp(b), item=b) == {
            "status": "ok"
        }
        assert await acct.rpc("vault_item_list") == {
            "status": "ok",
            "key_access": b"ka1",
            "items": {fp(a): a, fp(b): b},
        }
        # Items belong to their account only.
        assert (await other.rpc("vault_item_list"))["items"] == {}

        new_id, new_key = new_method()
        rotation = {
            "new_auth_method_id": new_id,
            "new_auth_method_mac_key": new_key,
            "new_auth_method_password_algorithm": ARGON2ID,
            "new_vault_key_access": b"ka2",
        }
        assert await acct.rpc("vault_key_rotation", **rotation, items={fp(a): b"a2"}) == {
            "status": "items_mismatch"
        }
        assert await acct.rpc(
            "vault_key_rotation",
            **{**rotation, "new_auth_method_id": other.auth_method_id},
            items={fp(a): b"a2", fp(b): b"b2"},
        ) == {"status": "new_auth_method_id_already_exists"}
        assert await acct.rpc(
            "vault_key_rotation", **rotation, items={fp(a): b"a2", fp(b): b"b2"}
        ) == {"status": "ok"}
        assert await _status(acct) == 403
        rotated = acct.with_method(new_id, new_key)
        assert await rotated.rpc("vault_item_list") == {
            "status": "ok",
            "key_access": b"ka2",
            "items": {fp(a): b"a2", fp(b): b"b2"},
        }
        rep = await rotated.rpc("vault_item_recovery_list")
        assert rep["current_vault"]["vault_items"] == {fp(a): b"a2", fp(b): b"b2"}
        [old] = rep["previous_vaults"]
        assert old["vault_items"] == {fp(a): a, fp(b): b}
        [old_method] = old["auth_methods"]
        assert old_method["auth_method_id"] == acct.auth_method_id
        assert old_method["disabled_on"] is not None


async def _recover(server: Server, box: Mailbox, address: str) -> Account:
    assert await anonymous_server(
        server, "account_recover_send_validation_email", email=address
    ) == {"status": "ok"}
    msg = box.to(address)[-1]
    assert msg["Subject"] == "Parsec Account: Confirm account recovery"
    code = box.last_code(address)
    method_id, mac_key = new_method()
    wrong = "AAAAAA" if code != "AAAAAA" else "BBBBBB"
    fields = {
        "email": address,
        "new_vault_key_access": b"ka-recovered",
        "new_auth_method_password_algorithm": ARGON2ID,
        "new_auth_method_mac_key": mac_key,
        "new_auth_method_id": method_id,
    }
    assert await anonymous_server(
        server, "account_recover_proceed", validation_code=wrong, **fields
    ) == {"status": "invalid_validation_code"}
    assert await anonymous_server(
        server, "account_recover_proceed", validation_code=code, **fields
    ) == {"status": "ok"}
    return Account(server, address, method_id, mac_key)


async def test_recovery_after_a_lost_password(db_url: str) -> None:
    async with account_server(db_url) as (server, box):
        acct = await create_account(server, box, "lost@example.com")
        item = b"my device keys"
        await acct.rpc("vault_item_upload", item_fingerprint=fp(item), item=item)
        recovered = await _recover(server, box, acct.email)
        assert await _status(acct) == 403
        assert await recovered.rpc("vault_item_list") == {
            "status": "ok",
            "key_access": b"ka-recovered",
            "items": {},
        }
        rep = await recovered.rpc("vault_item_recovery_list")
        assert [v["vault_items"] for v in rep["previous_vaults"]] == [{fp(item): item}]
        assert [m["auth_method_id"] for m in rep["current_vault"]["auth_methods"]] == [
            recovered.auth_method_id
        ]


async def test_delete(db_url: str) -> None:
    async with account_server(db_url) as (server, box):
        acct = await create_account(server, box, "del@example.com", label="Del")
        assert await acct.rpc("account_delete_proceed", validation_code="AAAAAA") == {
            "status": "send_validation_email_required"
        }
        assert await acct.rpc("account_delete_send_validation_email") == {"status": "ok"}
        assert box.to(acct.email)[-1]["Subject"] == "Parsec Account: Confirm account deletion"
        code = box.last_code(acct.email)
        wrong = "AAAAAA" if code != "AAAAAA" else "BBBBBB"
        assert await acct.rpc("account_delete_proceed", validation_code=wrong) == {
            "status": "invalid_validation_code"
        }
        assert await acct.rpc("account_delete_proceed", validation_code=code) == {"status": "ok"}
        assert await _status(acct) == 403
        # Gone: recovery sends nothing, the password algorithm is the fake one, and the address
        # can make a new account (a new, empty vault).
        before = len(box.messages)
        assert await anonymous_server(
            server, "account_recover_send_validation_email", email=acct.email
        ) == {"status": "ok"}
        assert len(box.messages) == before
        again = await create_account(server, box, acct.email, label="Again")
        assert await again.rpc("account_info") == {
            "status": "ok",
            "human_handle": [acct.email, "Again"],
        }
        assert (await again.rpc("vault_item_list"))["items"] == {}


async def test_organization_and_invite_self_list(db_url: str) -> None:
    async with account_server(db_url) as (server, box):
        acct = await create_account(server, box, "bob@example.com")
        assert await acct.rpc("organization_self_list") == {
            "status": "ok",
            "active": [],
            "revoked": [],
        }
        org = await server.bootstrap_org()
        rep = await org.alice.rpc(
            "invite_new_user", claimer_email="bob@example.com", send_email=False
        )
        token = rep["token"]
        assert await acct.rpc("invite_self_list") == {
            "status": "ok",
            "invitations": [[org.organization_id, token, "USER"]],
        }
        bob = await org.alice.create_user("bob")  # bob@example.com
        rep = await acct.rpc("organization_self_list")
        [active] = rep["active"]
        assert active["organization_id"] == org.organization_id
        assert active["user_id"] == bob.user_id
        assert active["current_profile"] == "STANDARD"
        assert active["is_frozen"] is False
        assert active["organization_config"] == {
            "is_expired": False,
            "user_profile_outsider_allowed": True,
            "active_users_limit": None,
        }
        # A device invitation for bob is his too.
        rep = await bob.rpc("invite_new_device", send_email=False)
        invitations = (await acct.rpc("invite_self_list"))["invitations"]
        assert [org.organization_id, rep["token"], "DEVICE"] in invitations
        assert await org.alice.revoke(bob.user_id) == {"status": "ok"}
        rep = await acct.rpc("organization_self_list")
        assert rep["active"] == []
        [revoked] = rep["revoked"]
        assert revoked["user_id"] == bob.user_id and revoked["revoked_on"] is not None


async def test_not_signed_in_is_refused(db_url: str) -> None:
    async with account_server(db_url) as (server, box):
        acct = await create_account(server, box, "x@example.com")
        stranger = acct.with_method(*new_method())
        for cmd in ("vault_item_list", "auth_method_list", "organization_self_list"):
            try:
                await stranger.rpc(cmd)
            except HttpError as exc:
                assert exc.status_code == 403
            else:
                raise AssertionError(cmd)
