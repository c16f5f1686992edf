"""certificate_get (protocol.md §4.9): the certificates of every topic the requester may read,
strictly after the given timestamps. Redaction (OUTSIDER requesters) follows the requester's
current profile, read in the same statement (the handshake cache may lag behind a user_update)."""

from __future__ import annotations

from parsec_server.commands.context import AuthenticatedClient
from parsec_server.commands.registry import command
from parsec_server.protocol.generated.authenticated import CertificateGetRep, CertificateGetReq
from parsec_server.storage import certificate as certificate_storage


@command(CertificateGetReq)
async def certificate_get(client: AuthenticatedClient, req: CertificateGetReq) -> CertificateGetRep:
    async with client.backend.db.connection() as conn:
        found = await certificate_storage.get(
            conn,
            client.org.internal_id,
            client.device.user_internal_id,
            req.common_after,
            req.sequester_after,
            req.shamir_recovery_after,
            req.realm_after,
        )
    return {
        "status": "ok",
        "common_certificates": found.common,
        "sequester_certificates": found.sequester,
        "shamir_recovery_certificates": found.shamir_recovery,
        "realm_certificates": found.realm,
    }
