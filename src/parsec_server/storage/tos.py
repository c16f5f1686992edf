"""Terms of service: the organization's current TOS and each user's acceptance (protocol.md §3.4,
§4.4).

`organization.tos_updated_on` changes whenever the administration API sets the TOS;
`user_.tos_accepted_on` holds the `tos_updated_on` the user accepted. The handshake answers 463 on
every route but `/tos` while a user's accepted value is missing or older than the organization's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True, slots=True)
class Tos:
    updated_on: datetime
    per_locale_urls: dict[str, str]


_Q_GET = "SELECT tos_updated_on, tos_per_locale_urls::TEXT AS urls FROM organization WHERE id = $1"


async def get(
    conn: asyncpg.Connection, org_internal_id: int, *, for_share: bool = False
) -> Tos | None:
    """The organization's current TOS, None if it has none (`for_share`: lock the organization row
    against a concurrent TOS change until the transaction ends)."""
    row = await conn.fetchrow(_Q_GET + (" FOR SHARE" if for_share else ""), org_internal_id)
    if row is None or row["tos_updated_on"] is None:
        return None
    urls = json.loads(row["urls"]) if row["urls"] else {}
    return Tos(row["tos_updated_on"], {str(k): str(v) for k, v in urls.items()})


_Q_ACCEPT = """
WITH old AS (SELECT tos_accepted_on FROM user_ WHERE id = $1 FOR UPDATE)
UPDATE user_ SET tos_accepted_on = $2 WHERE id = $1
RETURNING (SELECT tos_accepted_on FROM old) AS previous, current_profile
"""


async def accept(
    conn: asyncpg.Connection, user_internal_id: int, tos_updated_on: datetime
) -> tuple[datetime | None, str]:
    """Record that the user accepted the TOS of `tos_updated_on`; returns (previously accepted,
    profile)."""
    row = await conn.fetchrow(_Q_ACCEPT, user_internal_id, tos_updated_on)
    assert row is not None
    return row["previous"], row["current_profile"]
