"""Data scale (issue 17): does a request cost the same on a big database as on a small one?

    .venv/bin/python bench/scale.py [--sizes small,100x,large,xlarge] [--workloads a,b]
        [--requests 2000] [--explain] [--db-url postgresql://user@host:port | --keep DIR]
        [--jobs 2] [--src OTHER_TREE]
    valgrind --tool=callgrind --cache-sim=no --trace-children=no \\
        .venv/bin/python bench/scale.py --callgrind --requests 500 [--sizes ...]
    .venv/bin/python bench/scale.py --sizes xlarge --workloads '' --keep /tmp/xl   # build once
    .venv/bin/python bench/scale.py --sizes xlarge --keep /tmp/xl [--explain]      # measure it

For each size, a fresh database is migrated by the measured tree, then built in two steps:
1. through the application, like bench/inproc.py (tests/integration/commands/core_helpers: real
   signed certificates, real device keys): one organization ("the big one"), alice (ADMIN) and a
   realm rotated `rotations` times (real realm_rotate_key calls);
2. by set-based SQL into our schema (INSERT ... SELECT generate_series), around it: `users` more
   users and devices in the big organization (user/device certificates are dummy bytes: the server
   never parses a stored certificate on the measured paths), `invitations` pending USER invitations
   made by alice, vlobs of the big realm (one of them, the "hot" one, with `hot_versions` versions),
   blocks (PostgreSQL blockstore, 1 KiB), and `orgs - 1` filler organizations (one user, device,
   realm, keys bundle each) holding the rest of the vlob versions and blocks. The checkpoint log
   is computed with the rows (no window over the whole table); vlobs, checkpoints and blocks are
   written by `--jobs` connections at once (the big realm, then the filler realms 50 per
   transaction); autovacuum is off while building (on a cluster of the benchmark's own), then
   every table gets VACUUM ANALYZE. The tables, indexes and constraints are the migrated schema's
   throughout (logged tables, indexes maintained row by row, no constraint dropped). Then the
   server checks the result: the big organization's statistics equal the rows', and
   vlob_poll_changes near the last checkpoint returns the hot vlob at its last version.

Sizes (`SIZES` below; the build times are this 2-core machine's, shared with other jobs):

    size    orgs  users   vlob versions  blocks     invitations  rotations  hot vlob  database  built
    small      1      1             100         10           10          1        10     11 MB  0.3 s
    100x     100  1,000          10,000      1,000        1,000         10       100     19 MB  1.5 s
    large  1,000 10,000       1,000,000    100,000       10,000        100     1,000    721 MB  30-75 s
    xlarge 2,000 50,000       5,000,000  1,000,000       10,000        100     1,000    4.2 GB  4-6 min

`--keep DIR` keeps the cluster in DIR and each size's database (`scale_<size>`, alice's keys in
DIR/scale_<size>.alice.json): the first run builds it, the next ones measure it again (the vlob
updates of earlier runs stay in it). Without it, the cluster and databases are thrown away.

Each workload is alice's request (or an administration request) on the big organization, called
on the ASGI application directly from 16 tasks (no HTTP server, no load generator), and prints
req/s, the app's CPU per request (this process) and PostgreSQL's (the backends connected to the
benchmark's database, from /proc; not with --db-url). Workloads whose reply grows with the data
(everything from checkpoint or timestamp 0, invite_list, the statistics) run requests/20 times.
`--callgrind` prints machine instructions per request instead (stable to ~1 % on a busy machine,
see bench/inproc.py). `--explain` then loads auto_explain (ANALYZE, BUFFERS, no timing) in a
second application on the same database, warms the prepared statements up as the measured phase
does (the pool's generic plans), and prints the plan of every statement one request of each
workload runs, then the shared buffers of their root nodes. Results: docs/dev/performance.md,
"Data scale (issue 17)".
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

REPO = Path(__file__).resolve().parent.parent
# --src DIR: the server code of another source tree (before/after figures); read before any import
SRC = Path(sys.argv[sys.argv.index("--src") + 1]) if "--src" in sys.argv else REPO
sys.path.insert(0, str(REPO / "tests" / "integration" / "commands"))
sys.path.insert(0, str(SRC.absolute() / "src"))

import asyncpg  # noqa: E402
import nacl.signing  # noqa: E402
import uvloop  # noqa: E402
from core_helpers import ADMIN_TOKEN, Device, running_server  # noqa: E402
from test_realm import new_realm, rotate  # noqa: E402

from parsec_server.embedded_pg import EmbeddedPostgres, free_tcp_port  # noqa: E402
from parsec_server.protocol.codec import now, packb  # noqa: E402
from parsec_server.protocol.ids import HumanHandle  # noqa: E402


class Size(NamedTuple):
    orgs: int
    users: int
    versions: int
    blocks: int
    invitations: int
    rotations: int
    hot_versions: int


SIZES = {
    "small": Size(1, 1, 100, 10, 10, 1, 10),
    "100x": Size(100, 1_000, 10_000, 1_000, 1_000, 10, 100),
    "large": Size(1_000, 10_000, 1_000_000, 100_000, 10_000, 100, 1_000),
    "xlarge": Size(2_000, 50_000, 5_000_000, 1_000_000, 10_000, 100, 1_000),
}

WORKLOADS = (
    "vlob_poll_changes_0",
    "vlob_poll_changes_recent",
    "certificate_get_0",
    "certificate_get_recent",
    "realm_get_keys_bundle",
    "vlob_read_versions",
    "vlob_read_batch",
    "vlob_update",
    "block_read",
    "invite_list",
    "admin_org_stats",
    "admin_server_stats",
)
CONCURRENCY = 16

# --- building --------------------------------------------------------------------------------------

# $1 the big organization (internal id), $2 alice's device, $3 number of users
_USERS = """
WITH h AS (
    INSERT INTO human (organization, email, label)
    SELECT $1, 'user' || g || '@scale.example', 'User ' || g FROM generate_series(1, $3) g
    RETURNING id, organization
), u AS (
    INSERT INTO user_ (organization, user_id, human, initial_profile, current_profile, created_on,
        created_by)
    SELECT organization, gen_random_uuid(), id, 'STANDARD', 'STANDARD',
        now() - interval '2 days' + id * interval '1 millisecond', $2
    FROM h
    RETURNING id, organization, created_on
), d AS (
    INSERT INTO device (organization, user_, device_id, device_label, verify_key, created_on,
        created_by)
    SELECT organization, id, gen_random_uuid(), 'laptop', decode(md5(id::text), 'hex'), created_on, $2
    FROM u
    RETURNING organization, created_on
)
INSERT INTO certificate (organization, topic, certified_on, priority, kind, certificate,
    redacted_certificate)
SELECT organization, 'common', created_on, 0, 'user_certificate', '\\x01'::bytea, '\\x02'::bytea FROM u
UNION ALL
SELECT organization, 'common', created_on, 1, 'device_certificate', '\\x03'::bytea, '\\x04'::bytea FROM d
"""

# $1 alice's device, $2 number of pending USER invitations
_INVITATIONS = """
INSERT INTO invitation (organization, token, type, created_on, created_by_device, claimer_email)
SELECT d.organization, decode(md5('inv' || g), 'hex'), 'USER',
    now() - interval '1 day' + g * interval '1 millisecond', d.id, 'invitee' || g || '@scale.example'
FROM device d CROSS JOIN generate_series(1, $2) g
WHERE d.id = $1
"""

# filler organizations 2..$1 (names ScaleFillerN): one user, device, realm, keys bundle each
_FILLER_ORGS = """
WITH o AS (
    INSERT INTO organization (organization_id, created_on, bootstrap_token, bootstrapped_on,
        root_verify_key, user_profile_outsider_allowed,
        realm_minimum_archiving_period_before_deletion)
    SELECT 'ScaleFiller' || g, now() - interval '3 days', decode(md5('org' || g), 'hex'),
        now() - interval '3 days', decode(md5('root' || g) || md5('root' || g), 'hex'), TRUE, 2592000
    FROM generate_series(2, $1) g
    RETURNING id
), t AS (
    INSERT INTO topic_common (organization, last_timestamp)
    SELECT id, now() - interval '3 days' FROM o
)
INSERT INTO human (organization, email, label)
SELECT id, 'owner@scale.example', 'Owner' FROM o;

INSERT INTO user_ (organization, user_id, human, initial_profile, current_profile, created_on)
SELECT h.organization, gen_random_uuid(), h.id, 'ADMIN', 'ADMIN', now() - interval '3 days'
FROM human h JOIN organization o ON o.id = h.organization
WHERE o.organization_id LIKE 'ScaleFiller%';

INSERT INTO device (organization, user_, device_id, device_label, verify_key, created_on)
SELECT u.organization, u.id, gen_random_uuid(), 'laptop', decode(md5(u.id::text), 'hex'), u.created_on
FROM user_ u JOIN organization o ON o.id = u.organization
WHERE o.organization_id LIKE 'ScaleFiller%';

INSERT INTO certificate (organization, topic, certified_on, priority, kind, certificate,
    redacted_certificate)
SELECT d.organization, 'common', d.created_on, p.priority, p.kind, '\\x05'::bytea, '\\x06'::bytea
FROM device d JOIN organization o ON o.id = d.organization
CROSS JOIN (VALUES (0, 'user_certificate'), (1, 'device_certificate')) AS p(priority, kind)
WHERE o.organization_id LIKE 'ScaleFiller%';

INSERT INTO realm (organization, realm_id, created_on, created_by, key_index)
SELECT d.organization, gen_random_uuid(), d.created_on + interval '1 second', d.id, 1
FROM device d JOIN organization o ON o.id = d.organization
WHERE o.organization_id LIKE 'ScaleFiller%';

INSERT INTO topic_realm (realm, last_timestamp)
SELECT r.id, r.created_on + interval '1 second'
FROM realm r JOIN organization o ON o.id = r.organization
WHERE o.organization_id LIKE 'ScaleFiller%';

INSERT INTO realm_user_role (realm, user_, role, certified_on, certified_by)
SELECT r.id, d.user_, 'OWNER', r.created_on, d.id
FROM realm r JOIN device d ON d.id = r.created_by JOIN organization o ON o.id = r.organization
WHERE o.organization_id LIKE 'ScaleFiller%';

INSERT INTO realm_member (realm, user_, role, role_certified_on)
SELECT rr.realm, rr.user_, rr.role, rr.certified_on
FROM realm_user_role rr JOIN realm r ON r.id = rr.realm JOIN organization o ON o.id = r.organization
WHERE o.organization_id LIKE 'ScaleFiller%';

WITH k AS (
    INSERT INTO realm_keys_bundle (realm, key_index, certified_on, certified_by, key_canary,
        keys_bundle)
    SELECT r.id, 1, r.created_on + interval '1 second', r.created_by, '\\x07'::bytea, '\\x08'::bytea
    FROM realm r JOIN organization o ON o.id = r.organization
    WHERE o.organization_id LIKE 'ScaleFiller%'
    RETURNING id, realm
)
INSERT INTO realm_keys_bundle_access (realm_keys_bundle, user_, access)
SELECT k.id, m.user_, '\\x09'::bytea FROM k JOIN realm_member m ON m.realm = k.realm;

INSERT INTO certificate (organization, topic, realm, certified_on, kind, certificate)
SELECT r.organization, 'realm', r.id, r.created_on + c.delay, c.kind, '\\x0a'::bytea
FROM realm r JOIN organization o ON o.id = r.organization
CROSS JOIN (VALUES (interval '0', 'realm_role_certificate'),
    (interval '1 second', 'realm_key_rotation_certificate')) AS c(delay, kind)
WHERE o.organization_id LIKE 'ScaleFiller%';
"""

# $1 realm ids: vlobs of these realms, $2 vlobs per realm, $3 versions per vlob, $4 offset of the
# vlob numbers. 256-byte blobs, timestamps in the past, in the order of the checkpoints (vlob n, then
# version v), rows inserted in the order of the (realm, created_on) so ids follow the checkpoints.
_VLOBS = """
INSERT INTO vlob_atom (realm, vlob_id, version, key_index, author, created_on, size, blob)
SELECT r.id, uuid_in(md5(r.id || '/' || (n + $4))::cstring), v, 1, r.created_by,
    now() - interval '1 day' + ((n + $4) * $3 + v) * interval '1 microsecond', 256,
    decode(repeat(md5(n || '/' || v), 16), 'hex')
FROM realm r
CROSS JOIN generate_series(1, $2) n
CROSS JOIN generate_series(1, $3) v
WHERE r.id = ANY($1::bigint[])
ORDER BY 1, 6
"""

# the checkpoint log of the rows _VLOBS inserted with the same $1-$4: checkpoint n of a realm is its
# n-th write in created_on order, counted from $5 (computed, no window over the table)
_CHECKPOINTS = """
INSERT INTO realm_vlob_update (realm, checkpoint, vlob_id, version)
SELECT r.id, $5 + (n - 1) * $3 + v, uuid_in(md5(r.id || '/' || (n + $4))::cstring), v
FROM realm r
CROSS JOIN generate_series(1, $2) n
CROSS JOIN generate_series(1, $3) v
WHERE r.id = ANY($1::bigint[])
ORDER BY 1, 2
"""

# the realms' counters after their vlobs were written ($1 realm ids)
_COUNTERS = """
UPDATE realm SET vlob_checkpoint = s.n, last_vlob_timestamp = s.last
FROM (
    SELECT realm, count(*) AS n, max(created_on) AS last FROM vlob_atom
    WHERE realm = ANY($1::bigint[]) GROUP BY realm
) s
WHERE s.realm = realm.id
"""

# $1 realm ids, $2 blocks per realm (PostgreSQL blockstore, 1 KiB each)
_BLOCKS = """
WITH b AS (
    INSERT INTO block (realm, block_id, author, key_index, size, created_on, organization)
    SELECT r.id, gen_random_uuid(), r.created_by, 1, 1024, now() - interval '1 day', r.organization
    FROM realm r
    CROSS JOIN generate_series(1, $2)
    WHERE r.id = ANY($1::bigint[])
    RETURNING block_id, organization
)
INSERT INTO block_data (organization_id, block_id, data)
SELECT o.organization_id, b.block_id, decode(repeat(md5(b.block_id::text), 64), 'hex')
FROM b JOIN organization o ON o.id = b.organization
"""

# the usage totals (migration 0008) from the rows, as the migration fills them
_USAGE_TOTALS = """
UPDATE realm SET vlob_bytes = s.total
FROM (SELECT realm, sum(size)::bigint AS total FROM vlob_atom GROUP BY realm) AS s
WHERE s.realm = realm.id;
DELETE FROM realm_block_usage;
INSERT INTO realm_block_usage (realm, slot, bytes)
SELECT realm, 0, sum(size)::bigint FROM block GROUP BY realm;
"""

# a build session: big sorts in memory, no statement timeout
_BUILD_SESSION = (
    "SET statement_timeout = 0; SET work_mem = '256MB'; SET maintenance_work_mem = '512MB'"
)

# filler realms per transaction of a build worker (each a few seconds at the largest size)
_CHUNK = 50


@dataclass
class Big:
    """The big organization as the workloads use it."""

    organization_id: str
    alice: Device
    realm_id: uuid.UUID
    key_index: int
    vlobs: list[uuid.UUID]
    versions: dict[uuid.UUID, int]
    hot_vlob: uuid.UUID
    hot_versions: int
    blocks: list[uuid.UUID]
    recent: datetime.datetime  # a timestamp after every certificate


async def build(db_url: str, size: Size, server: Any, jobs: int = 2) -> Big:
    """Build `size` around a new organization of `server` (whose database is `db_url`), in `jobs`
    connections at once for the bulk of the rows; print the time of each step and the counts."""
    t0 = step = time.monotonic()

    def done(what: str) -> None:
        nonlocal step
        print(f"  {what}: {time.monotonic() - step:.1f} s", flush=True)
        step = time.monotonic()

    org = await server.bootstrap_org()
    alice = org.alice
    realm_id = await new_realm(alice)
    for key_index in range(2, size.rotations + 1):
        rep = await rotate(alice, realm_id, key_index, [alice.user_id])
        assert rep == {"status": "ok"}, rep
    done(f"organization, alice, realm rotated {size.rotations} times (API)")
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(_BUILD_SESSION)
        ids = await conn.fetchrow(
            "SELECT o.id AS org, d.id AS device, r.id AS realm FROM organization o"
            " JOIN device d ON d.organization = o.id JOIN realm r ON r.organization = o.id"
            " WHERE o.organization_id = $1",
            org.organization_id,
        )
        assert ids is not None
        async with conn.transaction():
            await conn.execute(_USERS, ids["org"], ids["device"], size.users - 1)
            await conn.execute(_INVITATIONS, ids["device"], size.invitations)
            if size.orgs > 1:
                await conn.execute(_FILLER_ORGS.replace("$1", str(size.orgs)))
        done(f"{size.users - 1} users, {size.invitations} invitations, {size.orgs - 1} filler orgs")
        fillers = [
            r["id"]
            for r in await conn.fetch(
                "SELECT r.id FROM realm r JOIN organization o ON o.id = r.organization"
                " WHERE o.organization_id LIKE 'ScaleFiller%' ORDER BY r.id"
            )
        ]
    finally:
        await conn.close()
    # the big realm holds a tenth of the versions (at least 100 vlobs), 3 per vlob beyond the small
    # size; the filler realms hold the rest; the hot vlob is apart, written after the others
    per_vlob = 1 if size.versions <= 100 else 3
    big_vlobs = max(100, size.versions // 10 // per_vlob)
    rest = size.versions - big_vlobs * per_vlob - size.hot_versions
    filler_vlobs = max(1, rest // max(1, len(fillers)) // per_vlob) if rest > 0 else 0
    big_blocks = max(10, size.blocks // 10)
    filler_blocks = max(1, (size.blocks - big_blocks) // max(1, len(fillers)))
    if size.blocks <= big_blocks:
        filler_blocks = 0

    async def big_realm(c: asyncpg.Connection) -> None:
        realm = [ids["realm"]]
        await c.execute(_VLOBS, realm, big_vlobs, per_vlob, 0)
        await c.execute(_CHECKPOINTS, realm, big_vlobs, per_vlob, 0, 0)
        hot = (realm, 1, size.hot_versions, big_vlobs + 1)
        await c.execute(_VLOBS, *hot)
        await c.execute(_CHECKPOINTS, *hot, big_vlobs * per_vlob)
        await c.execute(_COUNTERS, realm)
        await c.execute(_BLOCKS, realm, big_blocks)

    async def filler_realms(c: asyncpg.Connection, realms: list[int]) -> None:
        if filler_vlobs:
            await c.execute(_VLOBS, realms, filler_vlobs, per_vlob, 0)
            await c.execute(_CHECKPOINTS, realms, filler_vlobs, per_vlob, 0, 0)
            await c.execute(_COUNTERS, realms)
        if filler_blocks:
            await c.execute(_BLOCKS, realms, filler_blocks)

    # the big realm first (the longest part), then chunks of filler realms, over `jobs` connections
    parts: list[Callable[[asyncpg.Connection], Awaitable[None]]] = [big_realm]
    for k in range(0, len(fillers), _CHUNK):
        chunk = fillers[k : k + _CHUNK]
        parts.append(lambda c, chunk=chunk: filler_realms(c, chunk))
    await _in_parallel(db_url, jobs, parts)
    done(f"{size.versions} vlob versions with checkpoints, {size.blocks} blocks ({jobs} jobs)")
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(_BUILD_SESSION)
        # topics: after everything written above
        await conn.execute(
            "UPDATE topic_common SET last_timestamp = GREATEST(last_timestamp,"
            " (SELECT max(certified_on) FROM certificate WHERE organization = $1))"
            " WHERE organization = $1",
            ids["org"],
        )
        # usage totals kept by the write statements, where the schema has them (0008): the rows
        # above were not written through those statements
        if await conn.fetchval("SELECT to_regclass('realm_block_usage') IS NOT NULL"):
            await conn.execute(_USAGE_TOTALS)
        tables = [
            r["relname"]
            for r in await conn.fetch(
                "SELECT relname FROM pg_stat_user_tables ORDER BY pg_total_relation_size(relid) DESC"
            )
        ]
    finally:
        await conn.close()
    # VACUUM (visibility map: index-only scans as on a settled database) and ANALYZE, table by
    # table, biggest first
    await _in_parallel(
        db_url,
        jobs,
        [lambda c, t=t: c.execute(f'VACUUM ANALYZE "{t}"') for t in tables],
        transaction=False,
    )
    done("VACUUM ANALYZE")
    big = await describe(db_url, alice)
    conn = await asyncpg.connect(db_url)
    try:
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM organization) AS orgs, (SELECT count(*) FROM user_) AS"
            " users, (SELECT count(*) FROM vlob_atom) AS versions, (SELECT count(*) FROM block)"
            " AS blocks, (SELECT count(*) FROM invitation) AS invitations,"
            " (SELECT count(*) FROM certificate) AS certificates,"
            " pg_size_pretty(pg_database_size(current_database())) AS db_size"
        )
        expected = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM user_ WHERE organization = $1) AS users,"
            " (SELECT sum(v.size) FROM vlob_atom v JOIN realm r ON r.id = v.realm"
            "  WHERE r.organization = $1) AS metadata_size,"
            " (SELECT sum(b.size) FROM block b WHERE b.organization = $1) AS data_size",
            ids["org"],
        )
    finally:
        await conn.close()
    assert counts is not None
    await _check(server, big, expected)
    print(
        f"  built in {time.monotonic() - t0:.1f} s: "
        + ", ".join(f"{k} {v}" for k, v in counts.items()),
        flush=True,
    )
    return big


async def _check(server: Any, big: Big, expected: Any) -> None:
    """The server itself reads the built database back: the big organization's statistics (users,
    vlob and block bytes) are the rows', and a vlob_poll_changes from the last checkpoint but ten
    returns the hot vlob at its last version (its versions are the realm's last writes)."""
    r = await server.admin("GET", f"/organizations/{big.organization_id}/stats")
    stats = r.json()
    for k, v in expected.items():
        assert stats[k] == v, (k, stats[k], v)
    last = sum(big.versions.values())
    rep = await big.alice.rpc("vlob_poll_changes", realm_id=big.realm_id, last_checkpoint=last - 10)
    assert rep["status"] == "ok" and rep["current_checkpoint"] == last, rep
    assert [tuple(c) for c in rep["changes"]] == [(big.hot_vlob, big.hot_versions)], rep


async def _in_parallel(
    db_url: str,
    jobs: int,
    parts: list[Callable[[asyncpg.Connection], Awaitable[Any]]],
    transaction: bool = True,
) -> None:
    """Run `parts` in order over `jobs` connections, each part in a transaction of its own."""
    queue = list(reversed(parts))

    async def worker() -> None:
        c = await asyncpg.connect(db_url)
        try:
            await c.execute(_BUILD_SESSION)
            while queue:
                part = queue.pop()
                if transaction:
                    async with c.transaction():
                        await part(c)
                else:
                    await part(c)
        finally:
            await c.close()

    await asyncio.gather(*(worker() for _ in range(max(1, jobs))))


async def describe(db_url: str, alice: Device) -> Big:
    """The big organization of a built database, read back from it (alice: its first device)."""
    conn = await asyncpg.connect(db_url)
    try:
        realm = await conn.fetchrow(
            "SELECT r.id, r.realm_id, r.key_index FROM realm r"
            " JOIN organization o ON o.id = r.organization WHERE o.organization_id = $1",
            alice.organization_id,
        )
        assert realm is not None
        vlob_rows = await conn.fetch(
            "SELECT vlob_id, max(version) AS version FROM vlob_atom WHERE realm = $1"
            " GROUP BY vlob_id ORDER BY min(id)",
            realm["id"],
        )
        block_ids = await conn.fetch(
            "SELECT block_id FROM block WHERE realm = $1 ORDER BY id LIMIT 10", realm["id"]
        )
    finally:
        await conn.close()
    versions = {r["vlob_id"]: r["version"] for r in vlob_rows}
    hot = max(versions, key=lambda v: versions[v])
    plain = [v for v in versions if v != hot]
    return Big(
        alice.organization_id,
        alice,
        realm["realm_id"],
        realm["key_index"],
        plain,
        versions,
        hot,
        versions[hot],
        [r["block_id"] for r in block_ids],
        now(),
    )


# --- requests --------------------------------------------------------------------------------------


class Request(NamedTuple):
    method: str
    path: str
    body: bytes


def request(big: Big, workload: str, i: int) -> Request:
    rpc = f"/authenticated/{big.organization_id}"
    realm = big.realm_id
    if workload.startswith("vlob_poll_changes"):
        total = sum(big.versions.values())
        since = 0 if workload.endswith("_0") else max(0, total - 10)
        return Request(
            "POST",
            rpc,
            packb({"cmd": "vlob_poll_changes", "realm_id": realm, "last_checkpoint": since}),
        )
    if workload.startswith("certificate_get"):
        after = None if workload.endswith("_0") else big.recent
        return Request(
            "POST",
            rpc,
            packb(
                {
                    "cmd": "certificate_get",
                    "common_after": after,
                    "sequester_after": after,
                    "shamir_recovery_after": after,
                    "realm_after": {} if after is None else {realm: after},
                }
            ),
        )
    if workload == "realm_get_keys_bundle":
        body = {"cmd": "realm_get_keys_bundle", "realm_id": realm, "key_index": big.key_index}
        return Request("POST", rpc, packb(body))
    if workload == "vlob_read_versions":
        n = big.hot_versions
        items = [(big.hot_vlob, 1 + (i * 10 + k) % n) for k in range(10)]
        body = {"cmd": "vlob_read_versions", "realm_id": realm, "items": items}
        return Request("POST", rpc, packb(body))
    if workload == "vlob_read_batch":
        vlobs = [big.vlobs[(i * 10 + k) % len(big.vlobs)] for k in range(10)]
        body = {"cmd": "vlob_read_batch", "realm_id": realm, "vlobs": vlobs, "at": None}
        return Request("POST", rpc, packb(body))
    if workload == "vlob_update":
        vlob_id = big.vlobs[i % CONCURRENCY]  # one vlob per task: versions in order
        big.versions[vlob_id] += 1
        body = {
            "cmd": "vlob_update",
            "realm_id": realm,
            "vlob_id": vlob_id,
            "key_index": big.key_index,
            "timestamp": now(),
            "version": big.versions[vlob_id],
            "blob": os.urandom(512),
        }
        return Request("POST", rpc, packb(body))
    if workload == "block_read":
        body = {"cmd": "block_read", "realm_id": realm, "block_id": big.blocks[i % len(big.blocks)]}
        return Request("POST", rpc, packb(body))
    if workload == "invite_list":
        return Request("POST", rpc, packb({"cmd": "invite_list"}))
    if workload == "admin_org_stats":
        return Request("GET", f"/administration/organizations/{big.organization_id}/stats", b"")
    if workload == "admin_server_stats":
        return Request("GET", "/administration/stats", b"")
    raise SystemExit(f"unknown workload {workload}")


Caller = Callable[[Request], Awaitable[bool]]


def caller(app: Any, big: Big) -> tuple[Caller, Callable[[], None]]:
    """A function calling the ASGI app with one request (True: 2xx and, for RPC, status ok), and
    one that signs alice's token again (it must stay recent: under callgrind a run takes minutes)."""
    rpc_headers: list[tuple[bytes, bytes]] = []
    admin_headers = [(b"authorization", f"Bearer {ADMIN_TOKEN}".encode())]

    def resign() -> None:
        rpc_headers[:] = [(k.lower().encode(), v.encode()) for k, v in big.alice.headers().items()]

    async def call(req: Request) -> bool:
        headers = rpc_headers if req.method == "POST" else admin_headers
        scope = {
            "type": "http",
            "method": req.method,
            "path": req.path,
            "query_string": b"",
            "headers": [*headers, (b"content-length", str(len(req.body)).encode())],
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": req.body, "more_body": False}

        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        body = b"".join(m.get("body", b"") for m in sent[1:])
        return sent[0]["status"] == 200 and (
            req.method != "POST" or b"\xa6status\xa2ok" in body[:16]
        )

    resign()
    return call, resign


# --- measuring -------------------------------------------------------------------------------------


def _pg_cpu(postmaster: int | None, database: str) -> float:
    """CPU seconds (user + system) so far of the postmaster's children connected to `database`
    (the server's backends: not autovacuum nor the checkpointer; 0 without a cluster)."""
    if postmaster is None:
        return 0.0
    total = 0
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            title = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").split()
        except OSError:
            continue
        # a backend's title: "postgres: USER DATABASE HOST(PORT) STATE"
        if int(fields[1]) == postmaster and title[2:3] == [database.encode()]:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def _callgrind(flag: str) -> None:
    subprocess.run(["callgrind_control", flag, str(os.getpid())], check=True, capture_output=True)


def _callgrind_last_dump() -> int:
    dumps = sorted(
        Path.cwd().glob(f"callgrind.out.{os.getpid()}.*"), key=lambda f: int(f.suffix[1:])
    )
    for line in dumps[-1].read_text().splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no summary in {dumps[-1]}")


def chunks_of(
    big: Big, workload: str, warm: int, requests: int
) -> tuple[list[list[Request]], list[list[Request]]]:
    """`warm` requests per task, then `requests` in all, built in order (vlob versions)."""
    reqs = [request(big, workload, i) for i in range(requests + warm * CONCURRENCY)]
    chunks = [reqs[k::CONCURRENCY] for k in range(CONCURRENCY)]
    return [c[:warm] for c in chunks], [c[warm:] for c in chunks]


async def measure(
    size_name: str,
    call: Caller,
    resign: Callable[[], None],
    big: Big,
    workloads: list[str],
    requests: int,
    postmaster: int | None,
    callgrind: bool,
    db: str,
) -> None:
    for workload in workloads:
        resign()
        # heavy replies (all certificates, every change, every invitation, all stats): fewer
        n = requests if not _heavy(workload) else max(CONCURRENCY, requests // 20)
        warm, chunks = chunks_of(big, workload, 2 if _heavy(workload) else 20, n)
        failures = [0]

        async def worker(chunk: list[Request], failures: list[int] = failures) -> None:
            for req in chunk:
                if not await call(req):
                    failures[0] += 1

        await asyncio.gather(*(worker(c) for c in warm))
        count = sum(len(c) for c in chunks)
        pg0, cpu0, wall0 = _pg_cpu(postmaster, db), time.process_time(), time.perf_counter()
        if callgrind:
            _callgrind("-z")
        await asyncio.gather(*(worker(c) for c in chunks))
        if callgrind:
            _callgrind("-d")
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        pg = _pg_cpu(postmaster, db) - pg0
        failed = f"  FAILED {failures[0]}" if failures[0] else ""
        if callgrind:
            instructions = _callgrind_last_dump() / count
            print(
                f"{size_name:6} {workload:26} {instructions:12.0f} instructions/req"
                f"  ({count} requests){failed}",
                flush=True,
            )
            continue
        print(
            f"{size_name:6} {workload:26} {count / wall:8.0f} req/s  app CPU {1e6 * cpu / count:7.0f}"
            f" us/req  PostgreSQL CPU {1e6 * pg / count:7.0f} us/req  ({count} requests){failed}",
            flush=True,
        )


def _heavy(workload: str) -> bool:
    return workload in (
        "vlob_poll_changes_0",
        "certificate_get_0",
        "invite_list",
        "admin_server_stats",
        "admin_org_stats",
    )


_AUTO_EXPLAIN = {
    "session_preload_libraries": "auto_explain",
    "auto_explain.log_min_duration": "0",
    "auto_explain.log_analyze": "on",
    "auto_explain.log_buffers": "on",
    "auto_explain.log_timing": "off",
    "auto_explain.log_format": "text",
}


async def explain(db_url: str, log: Path, big: Big, workloads: list[str]) -> None:
    """The plan of each statement of one request per workload, after a warm-up like measure's."""
    conn = await asyncpg.connect(db_url)
    try:
        db = await conn.fetchval("SELECT current_database()")
        for k, v in _AUTO_EXPLAIN.items():
            await conn.execute(f"ALTER DATABASE {db} SET {k} = '{v}'")
    finally:
        await conn.close()
    async with running_server(db_url) as server:  # a new pool: its sessions load auto_explain
        object.__setattr__(server.app.config, "validate_replies", False)
        call, resign = caller(server.app, big)
        for workload in workloads:
            resign()
            warm, _ = chunks_of(big, workload, 8, 0)

            async def worker(chunk: list[Request]) -> None:
                for req in chunk:
                    await call(req)

            await asyncio.gather(*(worker(c) for c in warm))
            start = _log_size(log)
            await call(request(big, workload, 10_000))
            await asyncio.sleep(0.2)  # the log is written by the backend
            text = _log_from(log, start)
            print(f"\n### {workload}\n")
            print(_plans(text))


def _log_size(log: Path) -> int:
    return log.stat().st_size


def _log_from(log: Path, start: int) -> str:
    with open(log, "rb") as f:
        f.seek(start)
        return f.read().decode("utf-8", "replace")


def _plans(text: str) -> str:
    """The auto_explain entries of a log excerpt (query text shortened), then one line with the
    statements' shared buffers (their root nodes: hit + read, what the request touched)."""
    out: list[str] = []
    hit = read = statements = 0
    for entry in text.split("LOG:  duration:")[1:]:
        lines = entry.splitlines()
        tabbed = [ln[1:] for ln in lines[1:] if ln.startswith("\t")]
        start = next((k for k, ln in enumerate(tabbed) if "(cost=" in ln), len(tabbed))
        query = " ".join(" ".join(tabbed[:start]).replace("Query Text:", "").split())
        out.append(f"-- {query[:150]}")
        out.extend(tabbed[start:])
        out.append("")
        statements += 1
        root = next((ln for ln in tabbed[start:] if ln.startswith("  Buffers:")), "")
        hit += sum(int(n) for n in re.findall(r"shared hit=(\d+)", root))
        read += sum(int(n) for n in re.findall(r"shared (?:hit=\d+ )?read=(\d+)", root))
    out.append(f"BUFFERS {statements} statements: shared hit={hit} read={read}")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", default="small,100x,large")
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help="'' : build only")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--explain", action="store_true", help="print each statement's plan (BUFFERS)")
    ap.add_argument("--callgrind", action="store_true", help="instructions/request (valgrind)")
    ap.add_argument("--db-url", help="postgresql://user@host:port (default: a throwaway cluster)")
    ap.add_argument("--src", help="take the server code from this source tree's src/")
    ap.add_argument(
        "--keep",
        metavar="DIR",
        help="the cluster lives in DIR and stays, with one database per size: built at the first"
        " run, measured again (not rebuilt) by the next runs with the same DIR",
    )
    ap.add_argument("--jobs", type=int, default=2, help="connections building at once (2)")
    args = ap.parse_args()
    workloads = [w for w in args.workloads.split(",") if w]
    for w in workloads:
        if w not in WORKLOADS:
            raise SystemExit(f"unknown workload {w!r} (known: {', '.join(WORKLOADS)})")
    for s in args.sizes.split(","):
        if s not in SIZES:
            raise SystemExit(f"unknown size {s!r} (known: {', '.join(SIZES)})")
    if args.keep and args.db_url:
        raise SystemExit("--keep or --db-url, not both")
    keep = Path(args.keep).absolute() if args.keep else None
    work = keep or Path(tempfile.mkdtemp(prefix="parsec-scale-", dir="/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o755)
    pg = None
    try:
        if args.db_url:
            server_url = args.db_url.rstrip("/")
            if args.explain:
                raise SystemExit("--explain reads the throwaway cluster's log: no --db-url")
        else:
            port = free_tcp_port()
            pg = EmbeddedPostgres(work / "pg", tcp_port=port, fast_unsafe=True)
            pg.start()
            server_url = pg.url.rsplit("/", 1)[0]
            # bulk building: no checkpoint every GB of WAL (the tables stay logged, as in production)
            _psql(server_url, "ALTER SYSTEM SET max_wal_size = '16GB'")
            _psql(server_url, "ALTER SYSTEM SET checkpoint_timeout = '30min'")
            _psql(server_url, "SELECT pg_reload_conf()")
        for size_name in args.sizes.split(","):
            size = SIZES[size_name]
            if keep is not None:
                name = f"scale_{size_name}".lower()
            else:
                name = f"scale_{size_name}_{uuid.uuid4().hex[:8]}".lower()
            saved = work / f"{name}.alice.json"
            db_url = f"{server_url}/{name}"
            reuse = keep is not None and saved.exists()
            if not reuse:
                _psql(server_url, f"DROP DATABASE IF EXISTS {name}")
                _psql(server_url, f"CREATE DATABASE {name}")
                subprocess.run(
                    [
                        str(REPO / ".venv" / "bin" / "python"),
                        "-c",
                        "from parsec_server.cli.main import main; main()",
                        "migrate",
                        "--db",
                        db_url,
                        "--no-backup",
                    ],
                    check=True,
                    capture_output=True,
                    env={**os.environ, "PYTHONPATH": str(SRC.absolute() / "src")},
                )
            print(f"size {size_name}: {size}{' (kept database)' if reuse else ''}", flush=True)
            uvloop.run(
                _one_size(
                    db_url,
                    size_name,
                    size,
                    workloads,
                    args.requests,
                    pg.pid if pg is not None else None,
                    args.callgrind,
                    (work / "pg" / "postgresql.log") if args.explain else None,
                    args.jobs,
                    saved if keep is not None else None,
                    reuse,
                    pg is not None,
                )
            )
            if keep is None:
                _psql(server_url, f"DROP DATABASE {name}")
    finally:
        if pg is not None:
            pg.stop()
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _psql(server_url: str, sql: str) -> None:
    subprocess.run(
        ["psql", "-X", "-q", "-d", f"{server_url}/postgres", "-c", sql],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PGOPTIONS": "-c client_min_messages=warning"},
    )


async def _system_set(db_url: str, name: str, value: str | None) -> None:
    """ALTER SYSTEM SET (RESET if None) and reload: settings of the benchmark's own cluster."""
    conn = await asyncpg.connect(db_url)
    try:
        if value is None:
            await conn.execute(f"ALTER SYSTEM RESET {name}")
        else:
            await conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


def _save_alice(path: Path, alice: Device) -> None:
    fields = {
        "organization_id": alice.organization_id,
        "user_id": str(alice.user_id),
        "device_id": str(alice.device_id),
        "signing_key": bytes(alice.signing_key).hex(),
        "human": list(alice.human),
        "profile": alice.profile,
    }
    path.write_text(json.dumps(fields))


def _load_alice(path: Path, server: Any) -> Device:
    f = json.loads(path.read_text())
    return Device(
        server,
        f["organization_id"],
        uuid.UUID(f["user_id"]),
        uuid.UUID(f["device_id"]),
        nacl.signing.SigningKey(bytes.fromhex(f["signing_key"])),
        HumanHandle(*f["human"]),
        f["profile"],
    )


async def _one_size(
    db_url: str,
    size_name: str,
    size: Size,
    workloads: list[str],
    requests: int,
    postmaster: int | None,
    callgrind: bool,
    explain_log: Path | None,
    jobs: int = 2,
    saved: Path | None = None,
    reuse: bool = False,
    own_cluster: bool = False,
) -> None:
    async with running_server(db_url) as server:
        object.__setattr__(server.app.config, "validate_replies", False)
        if saved is not None and reuse:
            big = await describe(db_url, _load_alice(saved, server))
        else:
            if own_cluster:  # autovacuum would race the bulk inserts; build() vacuums at its end
                await _system_set(db_url, "autovacuum", "off")
            try:
                big = await build(db_url, size, server, jobs)
            finally:
                if own_cluster:
                    await _system_set(db_url, "autovacuum", None)
            if saved is not None:
                _save_alice(saved, big.alice)
        call, resign = caller(server.app, big)
        db = db_url.rsplit("/", 1)[1]
        await measure(size_name, call, resign, big, workloads, requests, postmaster, callgrind, db)
    if explain_log is not None and workloads:
        await explain(db_url, explain_log, big, workloads)


if __name__ == "__main__":
    raise SystemExit(main())
