"""Who is asking: the handshake's organization, device and invitation checks, cached per process.

An authenticated request costs no database round trip once its device is cached: the entry holds the
organization's state, the device's verify key and its user's status. Entries are dropped when an event
says they changed (revocation, freeze, profile or TOS change, organization expiry or settings),
wherever the change was made, since every process LISTENs to every event (events/bus.py). The queries
are in storage/auth.py.
"""

from __future__ import annotations

import uuid
from typing import Any

from parsec_server.commands.context import (
    AccountClient,
    AnonymousClient,
    AuthenticatedClient,
    AuthenticatedDevice,
    Backend,
    InvitedClient,
)
from parsec_server.commands.registry import TOS, HandshakeError
from parsec_server.crypto.tokens import AccountToken
from parsec_server.events.bus import Event
from parsec_server.protocol.codec import now
from parsec_server.storage import account as account_storage
from parsec_server.storage import auth as auth_storage
from parsec_server.storage import invite as invite_storage
from parsec_server.storage import organization as org_storage


class AuthCache:
    def __init__(self, max_entries: int = 100_000) -> None:
        self._devices: dict[tuple[str, uuid.UUID], AuthenticatedDevice] = {}
        # The client object of the last request of each cached device (constant references only).
        self._clients: dict[tuple[str, uuid.UUID], AuthenticatedClient] = {}
        self._max = max_entries

    def clear(self) -> None:
        self._devices.clear()
        self._clients.clear()

    def forget_organization(self, org_id: str) -> None:
        for key in [k for k in self._devices if k[0] == org_id]:
            del self._devices[key]
            self._clients.pop(key, None)

    def forget_user(self, org_id: str, user_hex: str) -> None:
        for key in [
            k for k, v in self._devices.items() if k[0] == org_id and v.user_id.hex == user_hex
        ]:
            del self._devices[key]
            self._clients.pop(key, None)

    def on_event(self, event: Event) -> None:
        t = event["type"]
        if t.startswith("ORGANIZATION_"):
            self.forget_organization(event["org"])
        elif t.startswith("USER_") and event.get("user_id"):
            self.forget_user(event["org"], event["user_id"])

    # --- handshakes --------------------------------------------------------------------------------
    async def _load_device(
        self, backend: Backend, org_id: str, device_id: uuid.UUID
    ) -> AuthenticatedDevice:
        async with backend.db.connection() as conn:
            found = await auth_storage.fetch_device(conn, org_id, device_id)
        org = found.org if isinstance(found, AuthenticatedDevice) else found
        if org is None or not org.is_bootstrapped:
            raise HandshakeError(404)
        if org.is_expired:
            raise HandshakeError(460)
        if not isinstance(found, AuthenticatedDevice):
            raise HandshakeError(403)
        if len(self._devices) >= self._max:
            self._devices.clear()
            self._clients.clear()
        self._devices[(org_id, device_id)] = found
        return found

    async def authenticated_client(
        self, backend: Backend, org_id: str, auth: Any, revision: int, family: str
    ) -> AuthenticatedClient:
        key = (org_id, auth.device_id)
        device = self._devices.get(key)
        if device is None:
            device = await self._load_device(backend, org_id, auth.device_id)
        org = device.org
        if org.is_expired:
            raise HandshakeError(460)
        if device.revoked:
            raise HandshakeError(461)
        if device.frozen:
            raise HandshakeError(462)
        if (
            family != TOS
            and org.tos_updated_on is not None
            and (device.tos_accepted_on is None or device.tos_accepted_on < org.tos_updated_on)
        ):
            raise HandshakeError(463)
        if not auth.verify(device.verify_key):
            raise HandshakeError(403)
        if not auth.in_ballpark(now()):
            raise HandshakeError(498)
        client = self._clients.get(key)
        if (
            client is None
            or client.device is not device
            or client.backend is not backend
            or client.api_revision != revision
        ):
            client = self._clients[key] = AuthenticatedClient(backend, org, device, revision)
        return client

    async def anonymous_client(
        self, backend: Backend, org_id: str, revision: int, create_spontaneous: bool
    ) -> AnonymousClient:
        async with backend.db.connection() as conn:
            org = await auth_storage.fetch_organization(conn, org_id)
            if (
                org is None
                and create_spontaneous
                and backend.config.spontaneous_organization_bootstrap
            ):
                org = await org_storage.create_spontaneous(conn, backend.config, org_id)
        if org is None:
            raise HandshakeError(404)
        if org.is_expired:
            raise HandshakeError(460)
        return AnonymousClient(backend, org_id, org, revision)

    async def invited_client(
        self, backend: Backend, org_id: str, token: bytes, revision: int
    ) -> InvitedClient:
        async with backend.db.connection() as conn:
            org = await auth_storage.fetch_organization(conn, org_id)
            if org is None or not org.is_bootstrapped:
                raise HandshakeError(404)
            if org.is_expired:
                raise HandshakeError(460)
            invitation = await invite_storage.get_for_claimer(conn, org.internal_id, token)
        if invitation is None:
            raise HandshakeError(403)
        if invitation.is_deleted:
            raise HandshakeError(410)
        return InvitedClient(backend, org, invitation, revision)

    async def account_client(
        self,
        backend: Backend,
        auth: AccountToken,
        revision: int,
        client_ip: str,
        user_agent: str,
    ) -> AccountClient:
        """protocol.md §1.6: an unknown or disabled method, a deleted account or a bad MAC is 403,
        a token outside the ballpark 498. One query per request (not cached: methods are disabled
        and accounts deleted by account commands, which send no event)."""
        async with backend.db.connection() as conn:
            found = await account_storage.auth_method_for_auth(conn, auth.auth_method_id)
        if found is None or not auth.verify(found.mac_key):
            raise HandshakeError(403)
        if not auth.in_ballpark(now()):
            raise HandshakeError(498)
        return AccountClient(
            backend,
            auth.auth_method_id,
            found.account_internal_id,
            found.email,
            found.vault_internal_id,
            revision,
            client_ip,
            user_agent,
        )
