"""Who is asking: organization, device and invitation lookups for the handshake, cached per process.

An authenticated request costs no database round trip once its device is cached: the entry holds the
organization's state, the device's verify key and its user's status. Entries are dropped when an event says
they changed (revocation, freeze, profile or TOS change, organization expiry or settings), wherever the change
was made, since every process LISTENs to every event (events/bus.py).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import asyncpg

from parsec_server.commands.context import (
    AnonymousClient,
    AuthenticatedClient,
    AuthenticatedDevice,
    InvitedClient,
    Organization,
)
from parsec_server.commands.registry import TOS, HandshakeError
from parsec_server.events.bus import Event
from parsec_server.protocol.codec import now

if TYPE_CHECKING:
    from parsec_server.commands.context import Backend

_ORG_COLUMNS = """
    o.id AS org_internal_id, o.organization_id, o.root_verify_key IS NOT NULL AS is_bootstrapped,
    o.is_expired, o.bootstrap_token, o.user_profile_outsider_allowed, o.active_users_limit,
    o.realm_minimum_archiving_period_before_deletion AS minimum_archiving_period, o.tos_updated_on,
    o.sequester_authority_verify_key_der IS NOT NULL AS is_sequestered
"""

_Q_DEVICE = f"""
SELECT {_ORG_COLUMNS},
    d.id AS device_internal_id, d.verify_key, u.id AS user_internal_id, u.user_id, u.current_profile,
    u.revoked_on, u.frozen, u.tos_accepted_on
FROM organization o
LEFT JOIN device d ON d.organization = o.id AND d.device_id = $2
LEFT JOIN user_ u ON u.id = d.user_
WHERE o.organization_id = $1
"""

_Q_ORG = f"SELECT {_ORG_COLUMNS} FROM organization o WHERE o.organization_id = $1"

_Q_USER_REALMS = """
SELECT r.realm_id FROM realm_member m JOIN realm r ON r.id = m.realm
WHERE m.user_ = $2 AND m.role IS NOT NULL AND r.organization = $1
"""


def organization_from_row(row: asyncpg.Record) -> Organization:
    return Organization(
        internal_id=row["org_internal_id"],
        organization_id=row["organization_id"],
        is_bootstrapped=row["is_bootstrapped"],
        is_expired=row["is_expired"],
        bootstrap_token=None if row["bootstrap_token"] is None else bytes(row["bootstrap_token"]),
        user_profile_outsider_allowed=row["user_profile_outsider_allowed"],
        active_users_limit=row["active_users_limit"],
        minimum_archiving_period=row["minimum_archiving_period"],
        tos_updated_on=row["tos_updated_on"],
        is_sequestered=row["is_sequestered"],
    )


async def fetch_organization(conn: asyncpg.Connection, organization_id: str) -> Organization | None:
    row = await conn.fetchrow(_Q_ORG, organization_id)
    return None if row is None else organization_from_row(row)


async def user_realms(conn: asyncpg.Connection, org_internal_id: int, user_internal_id: int) -> set[uuid.UUID]:
    """Realms where the user's last role is not None (what an event stream listens to)."""
    return {r["realm_id"] for r in await conn.fetch(_Q_USER_REALMS, org_internal_id, user_internal_id)}


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
        for key in [k for k, v in self._devices.items() if k[0] == org_id and v.user_id.hex == user_hex]:
            del self._devices[key]
            self._clients.pop(key, None)

    def on_event(self, event: Event) -> None:
        t = event["type"]
        if t.startswith("ORGANIZATION_"):
            self.forget_organization(event["org"])
        elif t.startswith("USER_") and event.get("user_id"):
            self.forget_user(event["org"], event["user_id"])

    # --- handshakes --------------------------------------------------------------------------------
    async def _load_device(self, backend: Backend, org_id: str, device_id: uuid.UUID) -> AuthenticatedDevice:
        async with backend.db.connection() as conn:
            row = await conn.fetchrow(_Q_DEVICE, org_id, device_id)
        if row is None or not row["is_bootstrapped"]:
            raise HandshakeError(404)
        org = organization_from_row(row)
        if org.is_expired:
            raise HandshakeError(460)
        if row["device_internal_id"] is None:
            raise HandshakeError(403)
        revoked_on = row["revoked_on"]
        device = AuthenticatedDevice(
            org=org,
            device_internal_id=row["device_internal_id"],
            device_id=device_id,
            user_internal_id=row["user_internal_id"],
            user_id=row["user_id"],
            profile=row["current_profile"],
            verify_key=bytes(row["verify_key"]),
            revoked=revoked_on is not None,
            frozen=row["frozen"],
            tos_accepted_on=row["tos_accepted_on"],
        )
        if len(self._devices) >= self._max:
            self._devices.clear()
            self._clients.clear()
        self._devices[(org_id, device_id)] = device
        return device

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
        if family != TOS and org.tos_updated_on is not None and (
            device.tos_accepted_on is None or device.tos_accepted_on < org.tos_updated_on
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
            org = await fetch_organization(conn, org_id)
            if org is None and create_spontaneous and backend.config.spontaneous_organization_bootstrap:
                from parsec_server.storage import organization as org_storage

                org = await org_storage.create_spontaneous(conn, backend.config, org_id)
        if org is None:
            raise HandshakeError(404)
        if org.is_expired:
            raise HandshakeError(460)
        return AnonymousClient(backend, org_id, org, revision)

    async def invited_client(self, backend: Backend, org_id: str, token: bytes, revision: int) -> InvitedClient:
        from parsec_server.storage import invite as invite_storage

        async with backend.db.connection() as conn:
            org = await fetch_organization(conn, org_id)
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
