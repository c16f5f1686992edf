"""organization_info's totals (migration 0008): kept by the writes instead of summed at each call.

The totals must always equal the sums over the rows they stand for (the definition the statement
used before 0008): after creates, updates, refused writes, concurrent block writes from several
pooled connections (several usage slots), in several realms, and after an operator deletes a
realm. And the statement must not read the vlob or block rows (its cost must not grow with them).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from core_helpers import Org, Server, org, server  # noqa: F401
from test_realm import new_realm, sql
from test_vlob import create, update

from parsec_server.protocol.codec import now
from parsec_server.storage import operator as ops
from parsec_server.storage.organization import _Q_USAGE

OK = {"status": "ok"}

# What organization_info reported before 0008: sums over every row.
_SUMS = """
SELECT
    (SELECT COALESCE(SUM(v.size), 0) FROM vlob_atom v JOIN realm r ON r.id = v.realm
     WHERE r.organization = o.id AND r.status <> 'DELETED')::bigint AS metadata,
    (SELECT COALESCE(SUM(b.size), 0) FROM block b JOIN realm r ON r.id = b.realm
     WHERE r.organization = o.id AND r.status <> 'DELETED')::bigint AS data
FROM organization o WHERE o.organization_id = $1
"""


async def totals(server: Server, org: Org) -> tuple[int, int]:  # noqa: F811
    rep = await org.alice.rpc("organization_info")
    assert rep["status"] == "ok", rep
    [row] = await sql(server, _SUMS, org.organization_id)
    assert (rep["total_metadata_bytes"], rep["total_block_bytes"]) == tuple(row), (rep, row)
    return rep["total_metadata_bytes"], rep["total_block_bytes"]


async def block(client: Any, realm_id: uuid.UUID, data: bytes, **fields: Any) -> dict[str, Any]:
    return await client.rpc(  # type: ignore[no-any-return]
        "block_create",
        block_id=fields.pop("block_id", None) or uuid.uuid4(),
        realm_id=realm_id,
        key_index=fields.pop("key_index", 1),
        block=data,
    )


async def test_totals_follow_the_writes(server: Server, org: Org) -> None:  # noqa: F811
    alice = org.alice
    assert await totals(server, org) == (0, 0)
    r1, r2 = await new_realm(alice), await new_realm(alice)

    v1 = uuid.uuid4()
    assert await create(alice, r1, v1, blob=b"a" * 100) == OK
    assert await update(alice, r1, v1, 2, blob=b"b" * 30) == OK
    assert await create(alice, r2, blob=b"c" * 7) == OK
    # refused writes add nothing
    assert (await update(alice, r1, v1, 2, blob=b"x" * 1000))["status"] == "bad_vlob_version"
    assert (await create(alice, r1, blob=b"x" * 1000, key_index=9))["status"] == "bad_key_index"
    assert await totals(server, org) == (137, 0)

    b1 = uuid.uuid4()
    assert await block(alice, r1, b"d" * 4096, block_id=b1) == OK
    assert (await block(alice, r2, b"e" * 999, block_id=b1))["status"] == "block_already_exists"
    # many at once: the pool's several connections write to several slots of the same realm
    reps = await asyncio.gather(*(block(alice, r2, b"f" * (i + 1)) for i in range(24)))
    assert reps == [OK] * 24
    assert await totals(server, org) == (137, 4096 + sum(range(1, 25)))
    [[slots]] = await sql(
        server,
        "SELECT count(*) FROM realm_block_usage u JOIN realm r ON r.id = u.realm "
        "WHERE r.realm_id = $1",
        r2,
    )
    assert 1 <= slots <= 16

    # an operator deletes r1: its vlobs and blocks no longer count
    [[r1_internal]] = await sql(server, "SELECT id FROM realm WHERE realm_id = $1", r1)
    async with server.backend.db.connection() as conn:
        await ops.delete_realm_metadata(conn, r1_internal, now())
    assert await totals(server, org) == (7, sum(range(1, 25)))


async def test_totals_read_no_vlob_or_block_row(server: Server, org: Org) -> None:  # noqa: F811
    async with server.backend.db.connection() as conn:
        plan = "\n".join(
            r[0] for r in await conn.fetch("EXPLAIN (COSTS OFF) " + _Q_USAGE.replace("$1", "1"))
        )
    assert "vlob_atom" not in plan and " block" not in plan.replace("realm_block_usage", ""), plan
