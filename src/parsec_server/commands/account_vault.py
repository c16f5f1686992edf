"""Parsec accounts, signed in (/authenticated_account): authentication methods, the vault, and the
organizations and invitations of the account's e-mail (docs/accounts.md).

Writes lock the account row first (storage/account.py); the request's method was checked enabled at
the handshake and is checked again under that lock, so a request racing a deletion, a rotation or a
recovery answers 403 like the next one would.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from parsec_server.commands.context import AccountClient
from parsec_server.commands.registry import HandshakeError, command
from parsec_server.protocol.codec import now as utc_now
from parsec_server.protocol.generated import authenticated_account as acc
from parsec_server.storage import account as storage


async def _lock(conn: asyncpg.Connection, client: AccountClient) -> storage.AuthMethodAuth:
    """The account row locked, the request's method still enabled (else 403, as at the handshake)."""
    found = await storage.auth_method_for_auth(conn, client.auth_method_id, lock=True)
    if found is None:
        raise HandshakeError(403)
    return found


def _method_item(m: storage.AuthMethod) -> dict[str, Any]:
    return {
        "auth_method_id": m.auth_method_id,
        "created_on": m.created_on,
        "created_by_ip": m.created_by_ip,
        "created_by_user_agent": m.created_by_user_agent,
        "vault_key_access": m.vault_key_access,
        "password_algorithm": m.password_algorithm,
    }


# --- authentication methods -----------------------------------------------------------------------


@command(acc.AuthMethodCreateReq)
async def auth_method_create(
    client: AccountClient, req: acc.AuthMethodCreateReq
) -> acc.AuthMethodCreateRep:
    """A new method on the current vault; a password method disables the previous password one."""
    method = storage.NewAuthMethod(
        req.auth_method_id,
        client.client_ip,
        client.user_agent,
        req.auth_method_mac_key,
        req.vault_key_access,
        req.auth_method_password_algorithm,
    )
    async with client.backend.db.transaction() as conn:
        found = await _lock(conn, client)
        if not await storage.add_method(conn, found.vault_internal_id, utc_now(), method):
            return {"status": "auth_method_id_already_exists"}
    return {"status": "ok"}


@command(acc.AuthMethodDisableReq)
async def auth_method_disable(
    client: AccountClient, req: acc.AuthMethodDisableReq
) -> acc.AuthMethodDisableRep:
    if req.auth_method_id == client.auth_method_id:
        return {"status": "self_disable_not_allowed"}
    async with client.backend.db.transaction() as conn:
        found = await _lock(conn, client)
        match await storage.disable_method(
            conn, found.account_internal_id, req.auth_method_id, utc_now()
        ):
            case "ok":
                return {"status": "ok"}
            case "auth_method_not_found":
                return {"status": "auth_method_not_found"}
            case "auth_method_already_disabled":
                return {"status": "auth_method_already_disabled"}


@command(acc.AuthMethodListReq)
async def auth_method_list(
    client: AccountClient, req: acc.AuthMethodListReq
) -> acc.AuthMethodListRep:
    """The enabled methods of the current vault, oldest first."""
    async with client.backend.db.connection() as conn:
        methods = await storage.enabled_methods(conn, client.vault_internal_id)
    return {"status": "ok", "items": [_method_item(m) for m in methods]}


# --- vault ----------------------------------------------------------------------------------------


@command(acc.VaultItemUploadReq)
async def vault_item_upload(
    client: AccountClient, req: acc.VaultItemUploadReq
) -> acc.VaultItemUploadRep:
    async with client.backend.db.transaction() as conn:
        found = await _lock(conn, client)
        if not await storage.upload_item(
            conn, found.vault_internal_id, req.item_fingerprint, req.item
        ):
            return {"status": "fingerprint_already_exists"}
    return {"status": "ok"}


@command(acc.VaultItemListReq)
async def vault_item_list(client: AccountClient, req: acc.VaultItemListReq) -> acc.VaultItemListRep:
    """The current vault's items, and the vault key encrypted for the request's method."""
    async with client.backend.db.connection() as conn:
        key_access = await storage.key_access(conn, client.auth_method_id)
        items = await storage.items(conn, client.vault_internal_id)
    return {"status": "ok", "key_access": key_access, "items": items}


@command(acc.VaultKeyRotationReq)
async def vault_key_rotation(
    client: AccountClient, req: acc.VaultKeyRotationReq
) -> acc.VaultKeyRotationRep:
    """A new vault holding the current vault's items re-encrypted (exactly the same fingerprints),
    with one new method; every older method is disabled."""
    now = utc_now()
    async with client.backend.db.transaction() as conn:
        found = await _lock(conn, client)
        current = await storage.items(conn, found.vault_internal_id)
        if current.keys() != req.items.keys():
            return {"status": "items_mismatch"}
        method = storage.NewAuthMethod(
            req.new_auth_method_id,
            client.client_ip,
            client.user_agent,
            req.new_auth_method_mac_key,
            req.new_vault_key_access,
            req.new_auth_method_password_algorithm,
        )
        if not await storage.replace_vault(conn, found.account_internal_id, now, method, req.items):
            return {"status": "new_auth_method_id_already_exists"}
    return {"status": "ok"}


@command(acc.VaultItemRecoveryListReq)
async def vault_item_recovery_list(
    client: AccountClient, req: acc.VaultItemRecoveryListReq
) -> acc.VaultItemRecoveryListRep:
    """Every vault of the account with all its methods (disabled ones too) and items: the current
    one, and the previous ones oldest first."""
    async with client.backend.db.connection() as conn:
        vaults = await storage.all_vaults(conn, client.account_internal_id)

    def cooked(v: storage.Vault) -> dict[str, Any]:
        return {
            "auth_methods": [
                {**_method_item(m), "disabled_on": m.disabled_on} for m in v.auth_methods
            ],
            "vault_items": v.items,
        }

    current = [v for v in vaults if v.internal_id == client.vault_internal_id]
    previous = [cooked(v) for v in vaults if v.internal_id != client.vault_internal_id]
    assert len(current) == 1
    return {"status": "ok", "current_vault": cooked(current[0]), "previous_vaults": previous}


# --- organizations and invitations ----------------------------------------------------------------


@command(acc.OrganizationSelfListReq)
async def organization_self_list(
    client: AccountClient, req: acc.OrganizationSelfListReq
) -> acc.OrganizationSelfListRep:
    """The users having the account's e-mail, in every organization."""
    async with client.backend.db.connection() as conn:
        active, revoked = await storage.users_of_email(conn, client.email)
    return {
        "status": "ok",
        "active": [
            {
                "organization_id": u.organization_id,
                "user_id": u.user_id,
                "created_on": u.created_on,
                "is_frozen": u.is_frozen,
                "current_profile": u.current_profile,
                "organization_config": {
                    "is_expired": u.org_is_expired,
                    "user_profile_outsider_allowed": u.org_user_profile_outsider_allowed,
                    "active_users_limit": u.org_active_users_limit,
                },
            }
            for u in active
        ],
        "revoked": [
            {
                "organization_id": u.organization_id,
                "user_id": u.user_id,
                "created_on": u.created_on,
                "revoked_on": u.revoked_on,
                "current_profile": u.current_profile,
            }
            for u in revoked
        ],
    }


@command(acc.InviteSelfListReq)
async def invite_self_list(
    client: AccountClient, req: acc.InviteSelfListReq
) -> acc.InviteSelfListRep:
    """Pending invitations for the account's e-mail, in every organization."""
    async with client.backend.db.connection() as conn:
        invitations = await storage.invitations_of_email(conn, client.email)
    return {"status": "ok", "invitations": invitations}
