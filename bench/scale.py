"""Data scale (issue 17): does a request cost the same on a big database as on a small one?

    .venv/bin/python bench/scale.py [--sizes small,100x,large] [--workloads a,b] [--requests 2000]
        [--explain] [--db-url postgresql://user@host:port] [--src OTHER_TREE]
    valgrind --tool=callgrind --cache-sim=no --trace-children=no \\
        .venv/bin/python bench/scale.py --callgrind --requests 500 [--sizes ...]

For each size, a fresh database is migrated by the measured tree, then built in two steps:
1. through the application, like bench/inproc.py (tests/integration/commands/core_helpers: real
   signed certificates, real device keys): one organization ("the big one"), alice (ADMIN) and a
   realm rotated `rotations` times (real realm_rotate_key calls);
2. by set-based SQL into our schema (INSERT ... SELECT generate_series), around it: `users` more
   users and devices in the big organization (user/device certificates are dummy bytes: the server
   never parses a stored certificate on the measured paths), `invitations` pending USER invitations
   made by alice, vlobs of the big realm (one of them, the "hot" one, with `hot_versions` versions),
   blocks (PostgreSQL blockstore, 1 KiB), and `orgs - 1` filler organizations (one user, device,
   realm, keys bundle each) holding the rest of the vlob versions and blocks. Then VACUUM ANALYZE.

Sizes (`SIZES` below; the largest builds in 30-75 s on this 2-core machine, 721 MB):

    size    orgs  users   vlob versions  blocks   invitations  rotations  hot vlob versions
    small      1      1             100       10           10          1                 10
    100x     100  1,000          10,000    1,000        1,000         10                100
    large  1,000 10,000       1,000,000  100,000       10,000        100              1,000

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
import uvloop  # noqa: E402
from core_helpers import ADMIN_TOKEN, Device, running_server  # noqa: E402
from test_realm import new_realm, rotate  # noqa: E402

from parsec_server.embedded_pg import EmbeddedPostgres, free_tcp_port  # noqa: E402
from parsec_server.protocol.codec import now, packb  # noqa: E402


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

# $1 realm pattern: vlobs of realms of organizations matching $1 (or the realm with internal id
# $2), $3 vlobs per realm, $4 versions per vlob, $5 offset of the vlob numbers. 256-byte blobs,
# timestamps in the past, in the order of the checkpoints.
_VLOBS = """
INSERT INTO vlob_atom (realm, vlob_id, version, key_index, author, created_on, size, blob)
SELECT r.id, uuid_in(md5(r.id || '/' || (n + $5))::cstring), v, 1, r.created_by,
    now() - interval '1 day' + ((n + $5) * $4 + v) * interval '1 microsecond', 256,
    decode(repeat(md5(n || '/' || v), 16), 'hex')
FROM realm r JOIN organization o ON o.id = r.organization
CROSS JOIN generate_series(1, $3) n
CROSS JOIN generate_series(1, $4) v
WHERE o.organization_id LIKE $1 OR r.id = $2
ORDER BY 1, 7
"""

# the checkpoint log and the realms' counters, from scratch, for every realm
_CHECKPOINTS = """
TRUNCATE realm_vlob_update;
INSERT INTO realm_vlob_update (realm, checkpoint, vlob_id, version)
SELECT realm, row_number() OVER (PARTITION BY realm ORDER BY created_on, id), vlob_id, version
FROM vlob_atom;
UPDATE realm SET vlob_checkpoint = s.n, last_vlob_timestamp = s.last
FROM (SELECT realm, count(*) AS n, max(created_on) AS last FROM vlob_atom GROUP BY realm) s
WHERE s.realm = realm.id;
"""

# $1 realm pattern / $2 realm id as above, $3 blocks per realm
_BLOCKS = """
WITH b AS (
    INSERT INTO block (realm, block_id, author, key_index, size, created_on, organization)
    SELECT r.id, gen_random_uuid(), r.created_by, 1, 1024, now() - interval '1 day', r.organization
    FROM realm r JOIN organization o ON o.id = r.organization
    CROSS JOIN generate_series(1, $3)
    WHERE o.organization_id LIKE $1 OR r.id = $2
    RETURNING block_id, organization
)
INSERT INTO block_data (organization_id, block_id, data)
SELECT o.organization_id, b.block_id, decode(repeat(md5(b.block_id::text), 64), 'hex')
FROM b JOIN organization o ON o.id = b.organization
"""


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


async def build(db_url: str, size: Size, server: Any) -> Big:
    t0 = time.monotonic()
    org = await server.bootstrap_org()
    alice = org.alice
    realm_id = await new_realm(alice)
    for key_index in range(2, size.rotations + 1):
        rep = await rotate(alice, realm_id, key_index, [alice.user_id])
        assert rep == {"status": "ok"}, rep
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("SET statement_timeout = 0")
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
            # the big realm holds a tenth of the versions (at least 100 vlobs), 3 per vlob beyond
            # the small size; the filler realms hold the rest; the hot vlob is apart
            per_vlob = 1 if size.versions <= 100 else 3
            big_vlobs = max(100, size.versions // 10 // per_vlob)
            await conn.execute(_VLOBS, "", ids["realm"], big_vlobs, per_vlob, 0)
            await conn.execute(_VLOBS, "", ids["realm"], 1, size.hot_versions, big_vlobs + 1)
            rest = size.versions - big_vlobs * per_vlob - size.hot_versions
            if size.orgs > 1 and rest > 0:
                per_realm = max(1, rest // (size.orgs - 1) // per_vlob)
                await conn.execute(_VLOBS, "ScaleFiller%", 0, per_realm, per_vlob, 0)
            await conn.execute(_CHECKPOINTS)
            big_blocks = max(10, size.blocks // 10)
            await conn.execute(_BLOCKS, "", ids["realm"], big_blocks)
            if size.orgs > 1 and size.blocks > big_blocks:
                per_realm = max(1, (size.blocks - big_blocks) // (size.orgs - 1))
                await conn.execute(_BLOCKS, "ScaleFiller%", 0, per_realm)
            # topics: after everything written above
            await conn.execute(
                "UPDATE topic_common SET last_timestamp = GREATEST(last_timestamp,"
                " (SELECT max(certified_on) FROM certificate WHERE organization = $1))"
                " WHERE organization = $1",
                ids["org"],
            )
        await conn.execute("VACUUM ANALYZE")
        vlob_rows = await conn.fetch(
            "SELECT vlob_id, max(version) AS version FROM vlob_atom WHERE realm = $1"
            " GROUP BY vlob_id ORDER BY min(id)",
            ids["realm"],
        )
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM organization) AS orgs, (SELECT count(*) FROM user_) AS"
            " users, (SELECT count(*) FROM vlob_atom) AS versions, (SELECT count(*) FROM block)"
            " AS blocks, (SELECT count(*) FROM invitation) AS invitations,"
            " (SELECT count(*) FROM certificate) AS certificates,"
            " pg_size_pretty(pg_database_size(current_database())) AS db_size"
        )
        key_index = await conn.fetchval("SELECT key_index FROM realm WHERE id = $1", ids["realm"])
        block_ids = await conn.fetch(
            "SELECT block_id FROM block WHERE realm = $1 ORDER BY id LIMIT 10", ids["realm"]
        )
    finally:
        await conn.close()
    assert counts is not None
    print(
        f"  built in {time.monotonic() - t0:.1f} s: "
        + ", ".join(f"{k} {v}" for k, v in counts.items()),
        flush=True,
    )
    versions = {r["vlob_id"]: r["version"] for r in vlob_rows}
    hot = max(versions, key=lambda v: versions[v])
    plain = [v for v in versions if v != hot]
    return Big(
        org.organization_id,
        alice,
        realm_id,
        key_index,
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
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--explain", action="store_true", help="print each statement's plan (BUFFERS)")
    ap.add_argument("--callgrind", action="store_true", help="instructions/request (valgrind)")
    ap.add_argument("--db-url", help="postgresql://user@host:port (default: a throwaway cluster)")
    ap.add_argument("--src", help="take the server code from this source tree's src/")
    args = ap.parse_args()
    workloads = args.workloads.split(",")
    for w in workloads:
        if w not in WORKLOADS:
            raise SystemExit(f"unknown workload {w!r} (known: {', '.join(WORKLOADS)})")
    work = Path(tempfile.mkdtemp(prefix="parsec-scale-", dir="/tmp"))
    os.chmod(work, 0o755)
    pg = None
    try:
        if args.db_url:
            server_url = args.db_url.rstrip("/")
            if args.explain:
                raise SystemExit("--explain reads the throwaway cluster's log: no --db-url")
        else:
            pg = EmbeddedPostgres(work / "pg", tcp_port=free_tcp_port(), fast_unsafe=True)
            pg.start()
            server_url = pg.url.rsplit("/", 1)[0]
        for size_name in args.sizes.split(","):
            size = SIZES[size_name]
            name = f"scale_{size_name}_{uuid.uuid4().hex[:8]}".lower()
            subprocess.run(
                ["psql", "-q", "-d", f"{server_url}/postgres", "-c", f"CREATE DATABASE {name}"],
                check=True,
            )
            db_url = f"{server_url}/{name}"
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
            print(f"size {size_name}: {size}", flush=True)
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
                )
            )
            subprocess.run(
                ["psql", "-q", "-d", f"{server_url}/postgres", "-c", f"DROP DATABASE {name}"],
                check=True,
            )
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


async def _one_size(
    db_url: str,
    size_name: str,
    size: Size,
    workloads: list[str],
    requests: int,
    postmaster: int | None,
    callgrind: bool,
    explain_log: Path | None,
) -> None:
    async with running_server(db_url) as server:
        object.__setattr__(server.app.config, "validate_replies", False)
        big = await build(db_url, size, server)
        call, resign = caller(server.app, big)
        db = db_url.rsplit("/", 1)[1]
        await measure(size_name, call, resign, big, workloads, requests, postmaster, callgrind, db)
    if explain_log is not None:
        await explain(db_url, explain_log, big, workloads)


if __name__ == "__main__":
    raise SystemExit(main())
