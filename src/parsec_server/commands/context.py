"""What a handler receives: the server's shared services and who is asking."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from parsec_server.blockstore.base import Blockstore
    from parsec_server.config import ServerConfig
    from parsec_server.events.bus import EventBus
    from parsec_server.storage.auth import AuthCache
    from parsec_server.storage.db import Database


@dataclass(slots=True)
class Backend:
    """Shared by every request of one server process."""

    config: ServerConfig
    db: Database
    blockstore: Blockstore
    events: EventBus
    auth: AuthCache


@dataclass(slots=True, frozen=True)
class Organization:
    internal_id: int
    organization_id: str
    is_bootstrapped: bool
    is_expired: bool
    bootstrap_token: bytes | None
    user_profile_outsider_allowed: bool
    active_users_limit: int | None
    minimum_archiving_period: int
    tos_updated_on: Any  # datetime | None
    is_sequestered: bool


@dataclass(slots=True, frozen=True)
class AuthenticatedDevice:
    org: Organization
    device_internal_id: int
    device_id: UUID
    user_internal_id: int
    user_id: UUID
    profile: str  # ADMIN | STANDARD | OUTSIDER (current)
    verify_key: bytes
    revoked: bool
    frozen: bool
    tos_accepted_on: Any  # datetime | None


@dataclass(slots=True)
class AnonymousClient:
    backend: Backend
    organization_id: str
    org: Organization | None  # None only for anonymous_server or spontaneous bootstrap
    api_revision: int


@dataclass(slots=True)
class InvitedClient:
    backend: Backend
    org: Organization
    invitation: Any  # storage.invite.Invitation
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
