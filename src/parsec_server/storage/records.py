"""Records the storage layer hands up: who an organization and an authenticated device are."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


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
    tos_updated_on: datetime | None
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
    tos_accepted_on: datetime | None
