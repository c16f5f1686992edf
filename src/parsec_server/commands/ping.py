"""`ping` in every family (protocol.md §3): echo the string back.

The official server only registers ping with `--debug` (HTTP 500 otherwise, protocol.md §1.3): we
always answer it. The authenticated ping also sends PINGED to the organization's event streams.
"""

from __future__ import annotations

import json

from parsec_server.commands.context import AnonymousClient, AuthenticatedClient, InvitedClient
from parsec_server.commands.registry import command
from parsec_server.events import types as event_types
from parsec_server.events.bus import publish
from parsec_server.protocol.generated import anonymous, anonymous_server, authenticated, invited

_MAX_NOTIFY = 7900


@command(anonymous.PingReq)
@command(anonymous_server.PingReq)
@command(invited.PingReq)
async def ping(
    client: AnonymousClient | InvitedClient,
    req: anonymous.PingReq | anonymous_server.PingReq | invited.PingReq,
) -> anonymous.PingRep:
    return {"status": "ok", "pong": req.ping}


@command(authenticated.PingReq)
async def authenticated_ping(
    client: AuthenticatedClient, req: authenticated.PingReq
) -> authenticated.PingRep:
    event = event_types.pinged(client.org.organization_id, req.ping)
    # A NOTIFY payload must stay under 8000 bytes: a longer ping is answered but not broadcast
    # (the official server fails with a 500 there).
    if len(json.dumps(event, separators=(",", ":"))) < _MAX_NOTIFY:
        async with client.backend.db.connection() as conn:
            await publish(conn, event)
    return {"status": "ok", "pong": req.ping}
