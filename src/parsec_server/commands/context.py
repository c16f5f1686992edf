"""What a handler receives: the server's shared services and who is asking.

`Organization` and `AuthenticatedDevice` are storage records (storage/records.py), re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from parsec_server.storage.records import AuthenticatedDevice, Organization

if TYPE_CHECKING:
    from parsec_server.blockstore.base import Blockstore
    from parsec_server.config import ServerConfig
    from parsec_server.crypto.tokens import AccountToken
    from parsec_server.events.bus import EventBus
    from parsec_server.storage.db import Database
    from parsec_server.storage.invite import Invitation


class AuthCache(Protocol):
    """The handshake cache (asgi/auth.py), as handlers see it: they may drop stale entries."""

    def forget_user(self, org_id: str, user_hex: str) -> None: ...

    def forget_organization(self, org_id: str) -> None: ...

    async def authenticated_client(
        self, backend: Backend, org_id: str, auth: Any, revision: int, family: str
    ) -> AuthenticatedClient: ...

    async def invited_client(
        self, backend: Backend, org_id: str, token: bytes, revision: int
    ) -> InvitedClient: ...

    async def anonymous_client(
        self, backend: Backend, org_id: str, revision: int, create_spontaneous: bool
    ) -> AnonymousClient: ...

    async def account_client(
        self,
        backend: Backend,
        auth: AccountToken,
        revision: int,
        client_ip: str,
        user_agent: str,
    ) -> AccountClient: ...


@dataclass(slots=True)
class Backend:
    """Shared by every request of one server process."""

    config: ServerConfig
    db: Database
    blockstore: Blockstore
    events: EventBus
    auth: AuthCache


@dataclass(slots=True)
class AnonymousClient:
    backend: Backend
    organization_id: str
    org: Organization | None  # None only for anonymous_server or spontaneous bootstrap
    api_revision: int
    client_ip: str = ""  # the peer address ('' unknown): account commands record and rate-limit it
    user_agent: str = ""


@dataclass(slots=True)
class InvitedClient:
    backend: Backend
    org: Organization
    invitation: Invitation
    api_revision: int


@dataclass(slots=True)
class AuthenticatedClient:
    backend: Backend
    org: Organization
    device: AuthenticatedDevice
    api_revision: int

    @property
    def device_id(self) -> UUID:
        return self.device.device_id

    @property
    def user_id(self) -> UUID:
        return self.device.user_id


@dataclass(slots=True)
class AccountClient:
    """A request on /authenticated_account: the enabled auth method that signed it, its account
    and the account's current vault (asgi/auth.py)."""

    backend: Backend
    auth_method_id: UUID
    account_internal_id: int
    email: str
    vault_internal_id: int
    api_revision: int
    client_ip: str
    user_agent: str


__all__ = [
    "AccountClient",
    "AnonymousClient",
    "AuthenticatedClient",
    "AuthenticatedDevice",
    "Backend",
    "InvitedClient",
    "Organization",
]
