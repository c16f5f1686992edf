"""Terms of service (`POST /authenticated/<org>/tos`, protocol.md §3.4): tos_get and tos_accept.

These two commands work while the user has not accepted the current TOS (every other authenticated
route answers 463 until then). Accepting needs the exact current `tos_updated_on`: the client proves
it accepts the TOS it was shown, not a newer one set meanwhile. An accepted TOS publishes the
internal USER_UPDATED event so that every server process drops the user from its handshake cache
(this process at once).
"""

from __future__ import annotations

from parsec_server.commands.checks import load_author
from parsec_server.commands.context import AuthenticatedClient
from parsec_server.commands.registry import command
from parsec_server.events.bus import new_event, publish
from parsec_server.protocol.generated.tos import TosAcceptRep, TosAcceptReq, TosGetRep, TosGetReq
from parsec_server.storage import tos as storage


@command(TosGetReq)
async def tos_get(client: AuthenticatedClient, req: TosGetReq) -> TosGetRep:
    async with client.backend.db.connection() as conn:
        tos = await storage.get(conn, client.org.internal_id)
    if tos is None:
        return {"status": "no_tos"}
    return {"status": "ok", "per_locale_urls": tos.per_locale_urls, "updated_on": tos.updated_on}


@command(TosAcceptReq)
async def tos_accept(client: AuthenticatedClient, req: TosAcceptReq) -> TosAcceptRep:
    async with client.backend.db.transaction() as conn:
        author = await load_author(conn, client)
        tos = await storage.get(conn, client.org.internal_id, for_share=True)
        if tos is None:
            return {"status": "no_tos"}
        if tos.updated_on != req.tos_updated_on:
            return {"status": "tos_mismatch"}
        previous, profile = await storage.accept(conn, author.internal_id, tos.updated_on)
        changed = previous != tos.updated_on
        if changed:
            # `profile` keeps event streams' view of the user's profile (they read it from
            # USER_UPDATED).
            await publish(
                conn,
                new_event(
                    client.org.organization_id,
                    "USER_UPDATED",
                    user_id=author.user_id.hex,
                    profile=profile,
                ),
            )
    if changed:
        # The event reaches this process's cache a moment after the commit: the client's very next
        # request must not be refused with 463 meanwhile.
        client.backend.auth.forget_user(client.org.organization_id, author.user_id.hex)
    return {"status": "ok"}
