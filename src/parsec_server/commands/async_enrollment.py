"""Asynchronous enrollment (protocol.md §4.3 anonymous, §4.4 authenticated; docs/async-enrollment.md).

Someone asks to join (async_enrollment_submit, anonymous, with a payload signed by an identity
system: a PKI X.509 certificate or an OpenBao entity); the organization's ADMINs list the pending
requests and accept one (creating its user and device, exactly as user_create) or reject it; the
requester polls async_enrollment_info, or cancels.

Checks, in the official 3.9.3 server's order:

* submit: payload (invalid_submit_payload), PKI chain (invalid_der_x509_certificate,
  invalid_x509_trustchain), [PKI signature with trusted roots: invalid_submit_payload_signature],
  organization bootstrapped (else 404), id_already_used, email_already_enrolled (a non-revoked user
  has the requested email), email_already_submitted (unless `force`: the pending request for that
  email is cancelled).
* accept: author ADMIN (author_not_allowed), enrollment_not_found, enrollment_no_longer_available,
  submit_and_accept_identity_systems_mismatch, invalid_accept_payload, PKI chain, [PKI signature],
  then the user_create checks: invalid_certificate / timestamp_out_of_ballpark,
  require_greater_timestamp, active_users_limit_reached, human_handle_already_taken,
  user_already_exists. The acceptance email (`send_email`) leaves after the commit.

OpenBao signatures are stored and returned as given: the server cannot check them (they need the
OpenBao server and the entity's key), neither does the official one; clients verify them. Bracketed
steps run only when the operator gave `--trusted-x509-root-dir` (crypto/pki.py).

Every change of a request (submitted, cancelled, rejected, accepted) sends ASYNC_ENROLLMENT to the
organization's ADMINs.
"""

from __future__ import annotations

import datetime
import functools
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypedDict, assert_never

from cryptography import x509

from parsec_server import email
from parsec_server.commands.context import AnonymousClient, AuthenticatedClient
from parsec_server.commands.registry import HandshakeError, command
from parsec_server.commands.user import create_new_user, lock_as_admin, validate_new_user
from parsec_server.crypto import pki
from parsec_server.email.async_enrollment import async_enrollment_accepted_message
from parsec_server.events import types as event_types
from parsec_server.protocol.addr import ServerAddr
from parsec_server.protocol.codec import now as utc_now
from parsec_server.protocol.generated.anonymous import (
    AsyncEnrollmentCancelRep,
    AsyncEnrollmentCancelReq,
    AsyncEnrollmentInfoRep,
    AsyncEnrollmentInfoReq,
    AsyncEnrollmentSubmitRep,
    AsyncEnrollmentSubmitReq,
)
from parsec_server.protocol.generated.authenticated import (
    AsyncEnrollmentAcceptRep,
    AsyncEnrollmentAcceptReq,
    AsyncEnrollmentListRep,
    AsyncEnrollmentListReq,
    AsyncEnrollmentRejectRep,
    AsyncEnrollmentRejectReq,
)
from parsec_server.storage import async_enrollment as storage


@functools.cache
def _anchors(dirs: tuple[Path, ...]) -> tuple[x509.Certificate, ...]:
    """The trusted roots, read once per process (the CLI checked them at start)."""
    return pki.load_trust_anchors(dirs)


def _trusted_roots(backend_dirs: tuple[Path, ...]) -> tuple[x509.Certificate, ...]:
    return _anchors(backend_dirs) if backend_dirs else ()


# --- signatures: wire <-> stored ------------------------------------------------------------------


def _check_signature(
    wire: dict[str, Any],
    author_field: str,
    payload: bytes,
    roots: tuple[x509.Certificate, ...],
    now: datetime.datetime,
) -> storage.Signature | pki.X509Refusal | None:
    """The signature to store, or the refusal (None: bad payload signature)."""
    if wire["type"] == "OPEN_BAO":
        return storage.OpenBaoSignature(
            wire["signature"], wire[f"{author_field}_openbao_entity_id"]
        )
    leaf = wire[f"{author_field}_der_x509_certificate"]
    chain = pki.check_chain(leaf, wire["intermediate_der_x509_certificates"], roots, now)
    if isinstance(chain, str):
        return chain
    if roots and not pki.verify_signature(leaf, wire["algorithm"], wire["signature"], payload):
        return None
    return storage.PkiSignature(wire["signature"], wire["algorithm"], chain)


class _InvalidDerX509CertificateRep(TypedDict):
    status: Literal["invalid_der_x509_certificate"]


class _InvalidX509TrustchainRep(TypedDict):
    status: Literal["invalid_x509_trustchain"]


def _x509_refused(
    refusal: pki.X509Refusal,
) -> _InvalidDerX509CertificateRep | _InvalidX509TrustchainRep:
    """The reply to a refused X.509 chain (submit and accept)."""
    match refusal:
        case "invalid_der_x509_certificate":
            return {"status": "invalid_der_x509_certificate"}
        case "invalid_x509_trustchain":
            return {"status": "invalid_x509_trustchain"}
        case _:
            assert_never(refusal)


def _wire_signature(sig: storage.Signature, author_field: str) -> dict[str, Any]:
    if isinstance(sig, storage.PkiSignature):
        return {
            "type": "PKI",
            "signature": sig.signature,
            "algorithm": sig.algorithm,
            f"{author_field}_der_x509_certificate": sig.x509_chain[0],
            "intermediate_der_x509_certificates": sig.x509_chain[1:],
        }
    return {
        "type": "OPEN_BAO",
        "signature": sig.signature,
        f"{author_field}_openbao_entity_id": sig.entity_id,
    }


class _EnrollmentNotFoundRep(TypedDict):
    status: Literal["enrollment_not_found"]


class _EnrollmentNoLongerAvailableRep(TypedDict):
    status: Literal["enrollment_no_longer_available"]


def _end_refused(
    refusal: storage.EndRefusal,
) -> _EnrollmentNotFoundRep | _EnrollmentNoLongerAvailableRep:
    """The reply when the request is not there, or no longer SUBMITTED (cancel, reject, accept)."""
    match refusal:
        case "enrollment_not_found":
            return {"status": "enrollment_not_found"}
        case "enrollment_no_longer_available":
            return {"status": "enrollment_no_longer_available"}
        case _:
            assert_never(refusal)


def _bootstrapped_org_id(client: AnonymousClient) -> int:
    """The organization must be bootstrapped (else 404, as the official server)."""
    if client.org is None or not client.org.is_bootstrapped:
        raise HandshakeError(404)
    return client.org.internal_id


# --- anonymous ------------------------------------------------------------------------------------


@command(AsyncEnrollmentSubmitReq)
async def async_enrollment_submit(
    client: AnonymousClient, req: AsyncEnrollmentSubmitReq
) -> AsyncEnrollmentSubmitRep:
    now = utc_now()
    try:
        payload = pki.load_submit_payload(req.submit_payload)
    except pki.InvalidPayload:
        return {"status": "invalid_submit_payload"}
    roots = _trusted_roots(client.backend.config.trusted_x509_root_dirs)
    signature = _check_signature(
        req.submit_payload_signature, "submitter", req.submit_payload, roots, now
    )
    if signature is None:
        return {"status": "invalid_submit_payload_signature"}
    if isinstance(signature, str):
        return _x509_refused(signature)
    org_internal_id = _bootstrapped_org_id(client)
    events = [event_types.async_enrollment(client.organization_id)]
    async with client.backend.db.transaction() as conn:
        refused = await storage.submit(
            conn,
            org_internal_id,
            req.enrollment_id,
            payload.requested_human_handle.email,
            req.force,
            now,
            req.submit_payload,
            signature,
            events,
        )
    match refused:
        case None:
            return {"status": "ok", "submitted_on": now}
        case storage.EmailAlreadySubmitted(submitted_on=submitted_on):
            return {"status": "email_already_submitted", "submitted_on": submitted_on}
        case "id_already_used":
            return {"status": "id_already_used"}
        case "email_already_enrolled":
            return {"status": "email_already_enrolled"}
        case _:
            assert_never(refused)


@command(AsyncEnrollmentInfoReq)
async def async_enrollment_info(
    client: AnonymousClient, req: AsyncEnrollmentInfoReq
) -> AsyncEnrollmentInfoRep:
    org_internal_id = _bootstrapped_org_id(client)
    async with client.backend.db.connection() as conn:
        info = await storage.get_info(conn, org_internal_id, req.enrollment_id)
    match info:
        case None:
            return {"status": "enrollment_not_found"}
        case storage.Submitted():
            return {
                "status": "ok",
                "enrollment_status": "SUBMITTED",
                "submitted_on": info.submitted_on,
            }
        case storage.Rejected():
            return {
                "status": "ok",
                "enrollment_status": "REJECTED",
                "submitted_on": info.submitted_on,
                "rejected_on": info.rejected_on,
            }
        case storage.Cancelled():
            return {
                "status": "ok",
                "enrollment_status": "CANCELLED",
                "submitted_on": info.submitted_on,
                "cancelled_on": info.cancelled_on,
            }
        case storage.Accepted():
            return {
                "status": "ok",
                "enrollment_status": "ACCEPTED",
                "submitted_on": info.submitted_on,
                "accepted_on": info.accepted_on,
                "accept_payload": info.accept_payload,
                "accept_payload_signature": _wire_signature(info.accept_signature, "accepter"),
            }
        case _:
            assert_never(info)


@command(AsyncEnrollmentCancelReq)
async def async_enrollment_cancel(
    client: AnonymousClient, req: AsyncEnrollmentCancelReq
) -> AsyncEnrollmentCancelRep:
    org_internal_id = _bootstrapped_org_id(client)
    events = [event_types.async_enrollment(client.organization_id)]
    async with client.backend.db.transaction() as conn:
        refused = await storage.cancel(conn, org_internal_id, req.enrollment_id, utc_now(), events)
    return {"status": "ok"} if refused is None else _end_refused(refused)


# --- authenticated (ADMIN) ------------------------------------------------------------------------


@command(AsyncEnrollmentListReq)
async def async_enrollment_list(
    client: AuthenticatedClient, req: AsyncEnrollmentListReq
) -> AsyncEnrollmentListRep:
    async with client.backend.db.connection() as conn:
        profile, revoked, enrollments = await storage.list_submitted(
            conn, client.org.internal_id, client.device.user_internal_id
        )
    if revoked:
        raise HandshakeError(461)
    if profile != "ADMIN":
        return {"status": "author_not_allowed"}
    return {
        "status": "ok",
        "enrollments": [
            {
                "enrollment_id": e.enrollment_id,
                "submitted_on": e.submitted_on,
                "submit_payload": e.submit_payload,
                "submit_payload_signature": _wire_signature(e.submit_signature, "submitter"),
            }
            for e in enrollments
        ],
    }


@command(AsyncEnrollmentRejectReq)
async def async_enrollment_reject(
    client: AuthenticatedClient, req: AsyncEnrollmentRejectReq
) -> AsyncEnrollmentRejectRep:
    events = [event_types.async_enrollment(client.org.organization_id)]
    async with client.backend.db.transaction() as conn:
        lock = await lock_as_admin(conn, client, write=False)
        if isinstance(lock, dict):
            return lock
        refused = await storage.reject(
            conn, client.org.internal_id, req.enrollment_id, utc_now(), events
        )
    return {"status": "ok"} if refused is None else _end_refused(refused)


class _SubmitterCertificates(NamedTuple):
    """The accept request's four certificates, under the names user_create's checks read."""

    user_certificate: bytes
    device_certificate: bytes
    redacted_user_certificate: bytes
    redacted_device_certificate: bytes


@command(AsyncEnrollmentAcceptReq)
async def async_enrollment_accept(
    client: AuthenticatedClient, req: AsyncEnrollmentAcceptReq
) -> AsyncEnrollmentAcceptRep:
    now = utc_now()
    # Pure checks first (no lock held), reported below in the official order.
    try:
        pki.load_accept_payload(req.accept_payload)
        payload_ok = True
    except pki.InvalidPayload:
        payload_ok = False
    roots = _trusted_roots(client.backend.config.trusted_x509_root_dirs)
    signature = _check_signature(
        req.accept_payload_signature, "accepter", req.accept_payload, roots, now
    )
    certificates = _SubmitterCertificates(
        req.submitter_user_certificate,
        req.submitter_device_certificate,
        req.submitter_redacted_user_certificate,
        req.submitter_redacted_device_certificate,
    )
    new_user = validate_new_user(client, certificates, now)
    async with client.backend.db.transaction() as conn:
        lock = await lock_as_admin(conn, client, write=True)
        if isinstance(lock, dict):
            return lock
        pending = await storage.lock_for_accept(conn, client.org.internal_id, req.enrollment_id)
        if not isinstance(pending, storage.Pending):
            return _end_refused(pending)
        if pending.submit_signature_type != req.accept_payload_signature["type"]:
            return {"status": "submit_and_accept_identity_systems_mismatch"}
        if not payload_ok:
            return {"status": "invalid_accept_payload"}
        if signature is None:
            return {"status": "invalid_accept_payload_signature"}
        if isinstance(signature, str):
            return _x509_refused(signature)
        more_events = [event_types.async_enrollment(client.org.organization_id)]
        created = await create_new_user(conn, client, lock, new_user, more_events)
        if isinstance(created, dict):
            # The official accept reports the active users limit before a taken email.
            if created["status"] == "human_handle_already_taken" and (
                await storage.active_users_limit_reached(conn, client.org.internal_id)
            ):
                return {"status": "active_users_limit_reached"}
            return created
        await storage.mark_accepted(conn, pending, now, req.accept_payload, signature)
    email_sent = email.SUCCESS
    if req.send_email:
        email_sent = await _send_accepted_email(client, created.email)
    return {"status": "ok", "email_sent": email_sent}


# --- acceptance email -----------------------------------------------------------------------------


async def _send_accepted_email(client: AuthenticatedClient, to: str) -> str:
    """The official `async_enrollment_accepted` e-mail: SUCCESS, RECIPIENT_REFUSED or
    SERVER_UNAVAILABLE (also without a usable --server-addr)."""
    config = client.backend.config
    try:
        server_url = ServerAddr.parse(config.server_addr).to_http_url()
    except ValueError:
        return email.SERVER_UNAVAILABLE
    message = async_enrollment_accepted_message(
        config.email, to=to, organization_id=client.org.organization_id, server_url=server_url
    )
    return await email.send(config.email, message)
