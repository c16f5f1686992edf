"""Checks several command modules share, and the replies they give.

* The author re-read inside the command's transaction (protocol.md §4.1 step 1): through the common
  topic lock (certificate commands) or through the user row (invitations, greeting, TOS). Revoked
  meanwhile -> 461, organization expired -> 460.
* A certificate signed by the requesting device (`expected_author`), then in the ballpark; the
  four certificates of a new user (organization_bootstrap, user_create).
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Literal, Protocol, TypedDict

import asyncpg

from parsec_server.commands.context import AuthenticatedClient
from parsec_server.commands.registry import HandshakeError
from parsec_server.crypto import certificates as certs
from parsec_server.crypto.ballpark import OutOfBallpark, check_ballpark
from parsec_server.storage import invite as invite_storage
from parsec_server.storage import topics

# Replies several commands have, typed once (TypedDicts are structural: each fits the generated
# variant of every command with that status).


class OkRep(TypedDict):
    status: Literal["ok"]


class InvalidCertificateRep(TypedDict):
    status: Literal["invalid_certificate"]


class AuthorNotAllowedRep(TypedDict):
    status: Literal["author_not_allowed"]


class RequireGreaterTimestampRep(TypedDict):
    status: Literal["require_greater_timestamp"]
    strictly_greater_than: datetime.datetime


def greater_than(ts: datetime.datetime) -> RequireGreaterTimestampRep:
    return {"status": "require_greater_timestamp", "strictly_greater_than": ts}


async def lock_common_as_author(
    conn: asyncpg.Connection, client: AuthenticatedClient, *, write: bool
) -> topics.CommonLock:
    """Lock the common topic and re-check the author (protocol.md §4.1 step 1)."""
    lock = await topics.lock_common(
        conn, client.org.internal_id, client.device.device_internal_id, write=write
    )
    if lock is None:
        raise HandshakeError(404)
    if lock.org_expired:
        raise HandshakeError(460)
    if lock.revoked:
        raise HandshakeError(461)
    return lock


async def load_author(
    conn: asyncpg.Connection, client: AuthenticatedClient
) -> invite_storage.UserInfo:
    """The author as the database sees it inside the transaction: revoked or expired meanwhile ->
    abort."""
    found = await invite_storage.get_author(conn, client.device.user_internal_id)
    if found is None:
        raise HandshakeError(403)
    author, org_expired = found
    if org_expired:
        raise HandshakeError(460)
    if author.is_revoked:
        raise HandshakeError(461)
    return author


def verified(
    cls: type[certs.C], raw: bytes, client: AuthenticatedClient, now: datetime.datetime
) -> certs.C | InvalidCertificateRep | OutOfBallpark:
    """Signature by the requesting device, then ballpark: the certificate, or the reply."""
    try:
        cert = certs.verify_and_load(
            cls, raw, client.device.verify_key, expected_author=client.device.device_id
        )
    except certs.InvalidCertificate:
        return {"status": "invalid_certificate"}
    late = check_ballpark(cert.timestamp, now)  # type: ignore[attr-defined]
    if late is not None:
        return late
    return cert


@dataclass(frozen=True, slots=True)
class NewUserCertificates:
    """The four certificates of organization_bootstrap and user_create."""

    user: certs.UserCertificate
    device: certs.DeviceCertificate
    redacted_user: certs.UserCertificate
    redacted_device: certs.DeviceCertificate

    def redacted_match(self) -> bool:
        """The redacted certificates are redacted, and otherwise equal to the full ones."""
        return (
            certs.is_redacted(self.redacted_user)
            and certs.redacted_compare(self.user, self.redacted_user)
            and certs.is_redacted(self.redacted_device)
            and certs.redacted_compare(self.device, self.redacted_device)
        )


class NewUserCertificatesReq(Protocol):
    """The four certificate fields organization_bootstrap and user_create requests share."""

    @property
    def user_certificate(self) -> bytes: ...
    @property
    def device_certificate(self) -> bytes: ...
    @property
    def redacted_user_certificate(self) -> bytes: ...
    @property
    def redacted_device_certificate(self) -> bytes: ...


def load_new_user_certificates(
    req: NewUserCertificatesReq, verify_key: bytes, expected_author: uuid.UUID | None
) -> NewUserCertificates:
    """Verify and decode the request's four certificates (raises certs.InvalidCertificate)."""

    def load(cls: type[certs.C], raw: bytes) -> certs.C:
        return certs.verify_and_load(cls, raw, verify_key, expected_author=expected_author)

    return NewUserCertificates(
        user=load(certs.UserCertificate, req.user_certificate),
        device=load(certs.DeviceCertificate, req.device_certificate),
        redacted_user=load(certs.UserCertificate, req.redacted_user_certificate),
        redacted_device=load(certs.DeviceCertificate, req.redacted_device_certificate),
    )
