"""scws_service_mutual_challenges (anonymous_server, docs/scws.md): the server's part of the mutual
authentication between the Parsec web client and the SCWS service (Idopte's smart-card web service).

In the official server's order: not_available (SCWS not configured) -> unknown key id (beyond the
Idopte keys file, or a revoked key) -> the SCWS service's signature of the web application challenge
-> the server's signature of the SCWS service challenge with the web application private key
(invalid_web_application_challenge_payload when it does not fit the key). No database access.
"""

from __future__ import annotations

from parsec_server.commands.context import AnonymousClient
from parsec_server.commands.registry import command
from parsec_server.crypto import scws
from parsec_server.protocol.generated.anonymous_server import (
    ScwsServiceMutualChallengesRep,
    ScwsServiceMutualChallengesReq,
)


@command(ScwsServiceMutualChallengesReq)
async def scws_service_mutual_challenges(
    client: AnonymousClient, req: ScwsServiceMutualChallengesReq
) -> ScwsServiceMutualChallengesRep:
    config = client.backend.config.scws
    if config is None:
        return {"status": "not_available"}
    keys = config.idopte_public_keys
    key_id = req.scws_service_challenge_key_id
    public_key = keys[key_id] if key_id < len(keys) else None
    if public_key is None:
        return {"status": "unknown_scws_service_challenge_key_id"}
    if not scws.raw_verify(
        public_key, req.scws_service_challenge_payload, req.scws_service_challenge_signature
    ):
        return {"status": "invalid_scws_service_challenge_signature"}
    signature = scws.raw_sign(
        config.web_application_private_key, req.web_application_challenge_payload
    )
    if signature is None:
        return {"status": "invalid_web_application_challenge_payload"}
    return {"status": "ok", "web_application_challenge_signature": signature}
