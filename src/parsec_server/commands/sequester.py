"""Sequester services: the administration back end (asgi/admin.py) and the `sequester` operator
commands (cli/sequester.py) share these functions, which follow the official server's checks in
its order:

* create: organization (bootstrapped) not found -> sequester disabled -> invalid certificate
  (RSA-PSS signature by the sequester authority, content) -> require greater timestamp (after the
  sequester topic's last certificate; no ballpark check: a service certificate may be generated
  long before it is inserted) -> service already exists.
* revoke: the same, then service not found -> service already revoked.
* update config: organization not found -> sequester disabled -> service not found.

Each runs in one transaction holding the sequester topic FOR UPDATE; the new certificate reaches
clients through certificate_get and the SEQUESTER_CERTIFICATE event.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Literal, NamedTuple, TypeVar

import asyncpg

from parsec_server.commands.context import Backend
from parsec_server.crypto import certificates as certs
from parsec_server.storage import sequester as seq_storage
from parsec_server.storage.sequester import Service, ServiceType

__all__ = [
    "CreateRefusal",
    "RequireGreaterTimestamp",
    "RevokeRefusal",
    "Service",
    "ServiceConfig",
    "create_service",
    "list_services",
    "revoke_service",
    "update_config",
]


class ServiceConfig(NamedTuple):
    """`{"type": "storage"}` or `{"type": "webhook", "webhook_url": ...}` of the API."""

    service_type: ServiceType
    webhook_url: str | None


class RequireGreaterTimestamp(NamedTuple):
    strictly_greater_than: datetime.datetime


_Refusal = Literal["organization_not_found", "sequester_disabled", "invalid_certificate"]
CreateRefusal = _Refusal | Literal["already_exists"] | RequireGreaterTimestamp
RevokeRefusal = _Refusal | Literal["service_not_found", "already_revoked"] | RequireGreaterTimestamp


_Cert = TypeVar(
    "_Cert", certs.SequesterServiceCertificate, certs.SequesterRevokedServiceCertificate
)


@dataclass(frozen=True, slots=True)
class _Checked(Generic[_Cert]):
    authority: seq_storage.Authority
    cert: _Cert


async def _lock_and_check(
    conn: asyncpg.Connection,
    organization_id: str,
    cls: type[_Cert],
    certificate: bytes,
    storable: Callable[[_Cert], bool] | None = None,
) -> _Checked[_Cert] | _Refusal | RequireGreaterTimestamp:
    """The sequester topic locked, then the checks create and revoke share, in the official
    order: organization, sequester enabled, certificate (signed by the authority, content,
    `storable`), timestamp after the topic's last one. The authority and the certificate, or the
    refusal."""
    authority = await seq_storage.lock_authority(conn, organization_id)
    if authority is None:
        return "organization_not_found"
    if authority.verify_key_der is None or authority.last_timestamp is None:
        return "sequester_disabled"
    try:
        cert = certs.verify_and_load(cls, certificate, authority.verify_key_der)
    except certs.InvalidCertificate:
        return "invalid_certificate"
    if storable is not None and not storable(cert):
        return "invalid_certificate"
    if cert.timestamp <= authority.last_timestamp:
        return RequireGreaterTimestamp(authority.last_timestamp)
    return _Checked(authority, cert)


def _storable_label(cert: certs.SequesterServiceCertificate) -> bool:
    return "\x00" not in cert.service_label  # signed, but PostgreSQL TEXT cannot hold it


async def create_service(
    backend: Backend, organization_id: str, certificate: bytes, config: ServiceConfig
) -> certs.SequesterServiceCertificate | CreateRefusal:
    """Add a service from its certificate (signed by the organization's sequester authority)."""
    async with backend.db.transaction() as conn:
        checked = await _lock_and_check(
            conn, organization_id, certs.SequesterServiceCertificate, certificate, _storable_label
        )
        if not isinstance(checked, _Checked):
            return checked
        authority, cert = checked.authority, checked.cert
        outcome = await seq_storage.create_service(
            conn,
            authority,
            organization_id,
            service_id=cert.service_id,
            label=cert.service_label,
            encryption_key_der=cert.encryption_key_der,
            created_on=cert.timestamp,
            service_type=config.service_type,
            webhook_url=config.webhook_url,
            certificate=certificate,
        )
    return cert if outcome == "ok" else outcome


async def revoke_service(
    backend: Backend, organization_id: str, certificate: bytes
) -> certs.SequesterRevokedServiceCertificate | RevokeRefusal:
    """Revoke a service from its revoked service certificate (signed by the authority)."""
    async with backend.db.transaction() as conn:
        checked = await _lock_and_check(
            conn, organization_id, certs.SequesterRevokedServiceCertificate, certificate
        )
        if not isinstance(checked, _Checked):
            return checked
        authority, cert = checked.authority, checked.cert
        outcome = await seq_storage.revoke_service(
            conn,
            authority,
            organization_id,
            service_id=cert.service_id,
            revoked_on=cert.timestamp,
            certificate=certificate,
        )
    match outcome:
        case "ok":
            return cert
        case "not_found":
            return "service_not_found"
        case "already_revoked":
            return "already_revoked"


async def update_config(
    backend: Backend, organization_id: str, service_id: uuid.UUID, config: ServiceConfig
) -> seq_storage.UpdateOutcome:
    async with backend.db.connection() as conn:
        return await seq_storage.update_config(
            conn, organization_id, service_id, config.service_type, config.webhook_url
        )


async def list_services(
    backend: Backend, organization_id: str
) -> list[Service] | Literal["organization_not_found", "sequester_disabled"]:
    async with backend.db.connection() as conn:
        return await seq_storage.list_services(conn, organization_id)
