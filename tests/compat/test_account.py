"""Parsec accounts with the official client library, against both servers: an account created and
validated with the code received on the loopback SMTP server, used to list its organizations and
invitations, vault items uploaded and recovered after a password reset (account_recover_*), auth
methods listed/created/disabled, vault key rotation, account deleted.

Requests and replies are the library's (anonymous_server_cmds, authenticated_account_cmds); the
account token is built as protocol.md §1.6 says (the library keeps its own builder in Rust).
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import parsec._parsec as p
import pytest
from client import API_VERSION, MSGPACK, AuthenticatedClient, load_rep
from mail_support import Mailbox

ASC = p.anonymous_server_cmds.latest
AAC = p.authenticated_account_cmds.latest
CREATE = ASC.account_create_proceed

CREATE_SUBJECT = "Confirm your email address"
RECOVER_SUBJECT = "Confirm account recovery"
DELETE_SUBJECT = "Confirm account deletion"


def argon2id() -> Any:
    """The parameters official clients (3.9.3) create password methods with."""
    return p.UntrustedPasswordAlgorithmArgon2id(opslimit=3, memlimit_kb=131072, parallelism=1)


def anonymous_server(http: httpx.Client, req: Any) -> Any:
    r = http.post(
        "/anonymous_server",
        content=req.dump(),
        headers={"Api-Version": API_VERSION, "Content-Type": MSGPACK},
    )
    assert r.status_code == 200, r.content
    return load_rep(req, r.content)


@dataclass
class Account:
    http: httpx.Client
    email: str
    auth_method_id: Any  # p.AccountAuthMethodID
    mac_key: Any  # p.SecretKey

    def token(self, seconds: int | None = None) -> str:
        ts = int(time.time()) if seconds is None else seconds
        signed = f"PARSEC-MAC-BLAKE2B.{self.auth_method_id.hex}.{ts}".encode()
        mac = hashlib.blake2b(signed, key=self.mac_key.secret, digest_size=64).digest()
        return f"{signed.decode()}.{base64.urlsafe_b64encode(mac).decode()}"

    def post(self, req: Any, seconds: int | None = None) -> httpx.Response:
        headers = {
            "Api-Version": API_VERSION,
            "Content-Type": MSGPACK,
            "Authorization": f"Bearer {self.token(seconds)}",
        }
        return self.http.post("/authenticated_account", content=req.dump(), headers=headers)

    def send(self, req: Any) -> Any:
        r = self.post(req)
        assert r.status_code == 200, (r.status_code, r.content)
        return load_rep(req, r.content)

    def status(self) -> int:
        return self.post(AAC.ping.Req(ping="p")).status_code

    def with_method(self, auth_method_id: Any, mac_key: Any) -> Account:
        return Account(self.http, self.email, auth_method_id, mac_key)


def new_email() -> str:
    return f"acct-{uuid.uuid4().hex[:12]}@example.com"


def wrong_code(code: str) -> Any:
    return p.ValidationCode("AAAAAA" if code != "AAAAAA" else "BBBBBB")


def create_account(http: httpx.Client, mailbox: Mailbox, label: str = "Zoe") -> Account:
    address = new_email()
    rep = anonymous_server(
        http, ASC.account_create_send_validation_email.Req(email=p.EmailAddress(address))
    )
    assert isinstance(rep, ASC.account_create_send_validation_email.RepOk), rep
    code = Mailbox.validation_code(mailbox.wait_for(address, CREATE_SUBJECT))
    method_id, mac_key = p.AccountAuthMethodID.new(), p.SecretKey.generate()
    step = CREATE.AccountCreateStepNumber1Create(
        validation_code=p.ValidationCode(code),
        human_handle=p.HumanHandle(p.EmailAddress(address), label),
        auth_method_password_algorithm=argon2id(),
        auth_method_mac_key=mac_key,
        auth_method_id=method_id,
        vault_key_access=b"vault key, encrypted for the password",
    )
    rep = anonymous_server(http, CREATE.Req(account_create_step=step))
    assert isinstance(rep, CREATE.RepOk), rep
    return Account(http, address, method_id, mac_key)


def test_create_validate_sign_in(http: httpx.Client, mailbox: Mailbox) -> None:
    address = new_email()
    rep = anonymous_server(
        http, ASC.account_create_send_validation_email.Req(email=p.EmailAddress(address))
    )
    assert isinstance(rep, ASC.account_create_send_validation_email.RepOk), rep
    msg = mailbox.wait_for(address, CREATE_SUBJECT)
    assert msg["Subject"] == "Parsec Account: Confirm your email address"
    assert msg.get_body(("html",)) is not None and msg.get_body(("plain",)) is not None
    code = Mailbox.validation_code(msg)

    def check(value: Any) -> Any:
        step = CREATE.AccountCreateStepNumber0CheckCode(
            validation_code=value, email=p.EmailAddress(address)
        )
        return anonymous_server(http, CREATE.Req(account_create_step=step))

    assert isinstance(check(wrong_code(code)), CREATE.RepInvalidValidationCode)
    assert isinstance(check(p.ValidationCode(code)), CREATE.RepOk)
    method_id, mac_key = p.AccountAuthMethodID.new(), p.SecretKey.generate()
    step = CREATE.AccountCreateStepNumber1Create(
        validation_code=p.ValidationCode(code),
        human_handle=p.HumanHandle(p.EmailAddress(address), "Zoe"),
        auth_method_password_algorithm=argon2id(),
        auth_method_mac_key=mac_key,
        auth_method_id=method_id,
        vault_key_access=b"access",
    )
    assert isinstance(anonymous_server(http, CREATE.Req(account_create_step=step)), CREATE.RepOk)
    acct = Account(http, address, method_id, mac_key)

    rep = acct.send(AAC.ping.Req(ping="hello"))
    assert isinstance(rep, AAC.ping.RepOk) and rep.pong == "hello"
    rep = acct.send(AAC.account_info.Req())
    assert isinstance(rep, AAC.account_info.RepOk), rep
    assert rep.human_handle == p.HumanHandle(p.EmailAddress(address), "Zoe")

    # The password algorithm: the account's, and for an unknown e-mail one that looks the same.
    known = anonymous_server(
        http, ASC.auth_method_password_get_algorithm.Req(email=p.EmailAddress(address))
    )
    unknown = anonymous_server(
        http, ASC.auth_method_password_get_algorithm.Req(email=p.EmailAddress(new_email()))
    )
    assert known.password_algorithm == argon2id()
    assert unknown.password_algorithm == known.password_algorithm

    # The handshake: bad MAC and unknown method 403, stale token 498.
    assert acct.with_method(method_id, p.SecretKey.generate()).status() == 403
    assert acct.with_method(p.AccountAuthMethodID.new(), mac_key).status() == 403
    assert acct.post(AAC.ping.Req(ping="p"), seconds=int(time.time()) - 3600).status_code == 498


def test_organizations_and_invitations(
    http: httpx.Client, mailbox: Mailbox, alice: AuthenticatedClient
) -> None:
    acct = create_account(http, mailbox)
    rep = acct.send(AAC.organization_self_list.Req())
    assert isinstance(rep, AAC.organization_self_list.RepOk) and rep.active == []
    assert rep.revoked == []
    rep = acct.send(AAC.invite_self_list.Req())
    assert isinstance(rep, AAC.invite_self_list.RepOk) and rep.invitations == []

    # An invitation to the account's e-mail...
    inv = alice.send(
        p.authenticated_cmds.latest.invite_new_user.Req(
            claimer_email=p.EmailAddress(acct.email), send_email=False
        )
    )
    rep = acct.send(AAC.invite_self_list.Req())
    assert [(o.str, t, ty) for o, t, ty in rep.invitations] == [
        (alice.device.organization_id, inv.token, p.InvitationType.USER)
    ]
    # ... and a user with it (enrolled by other means here): the organization is listed.
    alice.send(p.authenticated_cmds.latest.invite_cancel.Req(token=inv.token))
    user = alice.create_user("zoe", human_handle=p.HumanHandle(p.EmailAddress(acct.email), "Zoe"))
    rep = acct.send(AAC.organization_self_list.Req())
    [active] = rep.active
    assert active.organization_id.str == alice.device.organization_id
    assert active.user_id == user.device.user_id
    assert active.current_profile == p.UserProfile.STANDARD
    assert active.is_frozen is False
    assert active.organization_config.is_expired is False
    assert active.organization_config.user_profile_outsider_allowed is True
    assert active.organization_config.active_users_limit == p.ActiveUsersLimit.NO_LIMIT
    assert acct.send(AAC.invite_self_list.Req()).invitations == []


def test_vault_recovered_after_password_reset(http: httpx.Client, mailbox: Mailbox) -> None:
    acct = create_account(http, mailbox)
    item = b"device keys, encrypted with the vault key"
    fingerprint = p.HashDigest.from_data(item)
    rep = acct.send(AAC.vault_item_upload.Req(item_fingerprint=fingerprint, item=item))
    assert isinstance(rep, AAC.vault_item_upload.RepOk), rep
    rep = acct.send(AAC.vault_item_upload.Req(item_fingerprint=fingerprint, item=b"other"))
    assert isinstance(rep, AAC.vault_item_upload.RepFingerprintAlreadyExists), rep
    rep = acct.send(AAC.vault_item_list.Req())
    assert rep.items == {fingerprint: item}
    assert rep.key_access == b"vault key, encrypted for the password"

    # Password forgotten: recovery by e-mail, a new password method and a new vault.
    rep = anonymous_server(
        http, ASC.account_recover_send_validation_email.Req(email=p.EmailAddress(acct.email))
    )
    assert isinstance(rep, ASC.account_recover_send_validation_email.RepOk), rep
    code = Mailbox.validation_code(mailbox.wait_for(acct.email, RECOVER_SUBJECT))
    new_id, new_key = p.AccountAuthMethodID.new(), p.SecretKey.generate()

    def recover(value: Any, method_id: Any) -> Any:
        return anonymous_server(
            http,
            ASC.account_recover_proceed.Req(
                email=p.EmailAddress(acct.email),
                validation_code=value,
                new_vault_key_access=b"new vault key, encrypted for the new password",
                new_auth_method_password_algorithm=argon2id(),
                new_auth_method_mac_key=new_key,
                new_auth_method_id=method_id,
            ),
        )

    assert isinstance(
        recover(wrong_code(code), new_id), ASC.account_recover_proceed.RepInvalidValidationCode
    )
    rep = recover(p.ValidationCode(code), acct.auth_method_id)
    assert isinstance(rep, ASC.account_recover_proceed.RepAuthMethodIdAlreadyExists), rep
    assert isinstance(recover(p.ValidationCode(code), new_id), ASC.account_recover_proceed.RepOk)
    assert acct.status() == 403
    recovered = acct.with_method(new_id, new_key)
    rep = recovered.send(AAC.vault_item_list.Req())
    assert rep.items == {}
    assert rep.key_access == b"new vault key, encrypted for the new password"
    rep = recovered.send(AAC.vault_item_recovery_list.Req())
    assert isinstance(rep, AAC.vault_item_recovery_list.RepOk), rep
    assert [m.auth_method_id for m in rep.current_vault.auth_methods] == [new_id]
    [previous] = rep.previous_vaults
    assert previous.vault_items == {fingerprint: item}
    [old_method] = previous.auth_methods
    assert old_method.auth_method_id == acct.auth_method_id
    assert old_method.disabled_on is not None
    assert old_method.vault_key_access == b"vault key, encrypted for the password"
    assert old_method.password_algorithm == argon2id()


def test_auth_methods(http: httpx.Client, mailbox: Mailbox) -> None:
    acct = create_account(http, mailbox)
    rep = acct.send(AAC.auth_method_list.Req())
    [first] = rep.items
    assert first.auth_method_id == acct.auth_method_id
    assert first.password_algorithm == argon2id()
    assert first.created_by_ip == "127.0.0.1"

    keyring_id, keyring_key = p.AccountAuthMethodID.new(), p.SecretKey.generate()
    rep = acct.send(
        AAC.auth_method_create.Req(
            auth_method_password_algorithm=None,
            auth_method_mac_key=keyring_key,
            auth_method_id=keyring_id,
            vault_key_access=b"vault key, for the keyring",
        )
    )
    assert isinstance(rep, AAC.auth_method_create.RepOk), rep
    rep = acct.send(
        AAC.auth_method_create.Req(
            auth_method_password_algorithm=None,
            auth_method_mac_key=keyring_key,
            auth_method_id=keyring_id,
            vault_key_access=b"x",
        )
    )
    assert isinstance(rep, AAC.auth_method_create.RepAuthMethodIdAlreadyExists), rep
    keyring = acct.with_method(keyring_id, keyring_key)
    items = keyring.send(AAC.auth_method_list.Req()).items
    assert [i.auth_method_id for i in items] == [acct.auth_method_id, keyring_id]
    assert [i.password_algorithm for i in items] == [argon2id(), None]

    disable = AAC.auth_method_disable
    rep = keyring.send(disable.Req(auth_method_id=keyring_id))
    assert isinstance(rep, disable.RepSelfDisableNotAllowed), rep
    rep = keyring.send(disable.Req(auth_method_id=p.AccountAuthMethodID.new()))
    assert isinstance(rep, disable.RepAuthMethodNotFound), rep
    other = create_account(http, mailbox)
    rep = keyring.send(disable.Req(auth_method_id=other.auth_method_id))
    assert isinstance(rep, disable.RepAuthMethodNotFound), rep
    rep = keyring.send(disable.Req(auth_method_id=acct.auth_method_id))
    assert isinstance(rep, disable.RepOk), rep
    rep = keyring.send(disable.Req(auth_method_id=acct.auth_method_id))
    assert isinstance(rep, disable.RepAuthMethodAlreadyDisabled), rep
    assert acct.status() == 403
    assert [i.auth_method_id for i in keyring.send(AAC.auth_method_list.Req()).items] == [
        keyring_id
    ]
    assert other.status() == 200


def test_vault_key_rotation(http: httpx.Client, mailbox: Mailbox) -> None:
    acct = create_account(http, mailbox)
    a, b = b"item a", b"item b"
    fa, fb = p.HashDigest.from_data(a), p.HashDigest.from_data(b)
    for fp, item in ((fa, a), (fb, b)):
        acct.send(AAC.vault_item_upload.Req(item_fingerprint=fp, item=item))
    new_id, new_key = p.AccountAuthMethodID.new(), p.SecretKey.generate()

    def rotate(items: dict[Any, bytes], method_id: Any = new_id) -> Any:
        return acct.send(
            AAC.vault_key_rotation.Req(
                new_auth_method_id=method_id,
                new_auth_method_mac_key=new_key,
                new_auth_method_password_algorithm=argon2id(),
                new_vault_key_access=b"rotated key access",
                items=items,
            )
        )

    assert isinstance(rotate({fa: b"a2"}), AAC.vault_key_rotation.RepItemsMismatch)
    rep = rotate({fa: b"a2", fb: b"b2"}, acct.auth_method_id)
    assert isinstance(rep, AAC.vault_key_rotation.RepNewAuthMethodIdAlreadyExists), rep
    assert isinstance(rotate({fa: b"a2", fb: b"b2"}), AAC.vault_key_rotation.RepOk)
    assert acct.status() == 403
    rotated = acct.with_method(new_id, new_key)
    rep = rotated.send(AAC.vault_item_list.Req())
    assert rep.items == {fa: b"a2", fb: b"b2"}
    assert rep.key_access == b"rotated key access"
    rep = rotated.send(AAC.vault_item_recovery_list.Req())
    assert [v.vault_items for v in rep.previous_vaults] == [{fa: a, fb: b}]


def test_delete(http: httpx.Client, mailbox: Mailbox) -> None:
    acct = create_account(http, mailbox)
    proceed = AAC.account_delete_proceed
    rep = acct.send(proceed.Req(validation_code=p.ValidationCode("AAAAAA")))
    assert isinstance(rep, proceed.RepSendValidationEmailRequired), rep
    rep = acct.send(AAC.account_delete_send_validation_email.Req())
    assert isinstance(rep, AAC.account_delete_send_validation_email.RepOk), rep
    code = Mailbox.validation_code(mailbox.wait_for(acct.email, DELETE_SUBJECT))
    rep = acct.send(proceed.Req(validation_code=wrong_code(code)))
    assert isinstance(rep, proceed.RepInvalidValidationCode), rep
    rep = acct.send(proceed.Req(validation_code=p.ValidationCode(code)))
    assert isinstance(rep, proceed.RepOk), rep
    assert acct.status() == 403


def test_validation_code_guessing(http: httpx.Client, mailbox: Mailbox) -> None:
    """3 wrong codes, then even the right one needs a new e-mail."""
    address = new_email()
    anonymous_server(
        http, ASC.account_create_send_validation_email.Req(email=p.EmailAddress(address))
    )
    code = Mailbox.validation_code(mailbox.wait_for(address, CREATE_SUBJECT))

    def check(value: Any) -> Any:
        step = CREATE.AccountCreateStepNumber0CheckCode(
            validation_code=value, email=p.EmailAddress(address)
        )
        return anonymous_server(http, CREATE.Req(account_create_step=step))

    for _ in range(3):
        assert isinstance(check(wrong_code(code)), CREATE.RepInvalidValidationCode)
    assert isinstance(check(p.ValidationCode(code)), CREATE.RepSendValidationEmailRequired)


@pytest.mark.parametrize("cmd", ["account_info", "vault_item_list", "auth_method_list"])
def test_unknown_method_is_403(http: httpx.Client, cmd: str) -> None:
    stranger = Account(http, new_email(), p.AccountAuthMethodID.new(), p.SecretKey.generate())
    req = getattr(AAC, cmd).Req()
    assert stranger.post(req).status_code == 403
