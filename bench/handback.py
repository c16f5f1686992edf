"""Hand-back at scale (issue 13 point 7, the ours -> official half): a parsec-server database with N
vlob versions and M blocks (PostgreSQL blockstore), built by direct SQL into our schema, then
handed back by `parsec-server migrate --to official-3.9 --no-backup`; prints the progress lines
as they come, the time, the peak memory (max RSS) of the migrate process and of the PostgreSQL
backend that runs the conversion.

    .venv/bin/python bench/handback.py [--vlobs 1000000] [--blocks 100000] [--db URL]

Without --db, a throwaway PostgreSQL cluster is started on a free loopback port (and removed);
with --db, the database must be empty. The data: 10 organizations, one user, device and realm
(role certificate, keys bundle, topic) each, vlobs of 3 versions with 256-byte blobs, 1 KiB
blocks; certificates are dummy bytes (the hand-back copies them, never parses them).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import asyncpg
from migration_bench import MIGRATE, cli_env, database, fill, parse_args, run_migrate

_FILL = """
INSERT INTO organization (organization_id, created_on, bootstrap_token, bootstrapped_on,
    root_verify_key, user_profile_outsider_allowed, realm_minimum_archiving_period_before_deletion)
SELECT 'BenchOrg' || g, now() - interval '2 days', decode(md5(g::text), 'hex'),
    now() - interval '2 days', decode(md5(g::text) || md5(g::text), 'hex'), true, 2592000
FROM generate_series(1, {orgs}) g;
INSERT INTO topic_common (organization, last_timestamp)
SELECT id, now() - interval '1 day' FROM organization;
INSERT INTO human (organization, email, label)
SELECT id, 'alice@example.com', 'Alice' FROM organization;
INSERT INTO user_ (organization, user_id, human, initial_profile, current_profile, created_on)
SELECT h.organization, gen_random_uuid(), h.id, 'ADMIN', 'ADMIN', now() - interval '1 day'
FROM human h;
INSERT INTO device (organization, user_, device_id, device_label, verify_key, created_on)
SELECT organization, id, gen_random_uuid(), 'laptop', '\\x03'::bytea, created_on FROM user_;
INSERT INTO certificate (organization, topic, certified_on, priority, kind, certificate,
    redacted_certificate)
SELECT organization, 'common', created_on, 0, 'user_certificate', '\\x01'::bytea, '\\x02'::bytea FROM user_
UNION ALL
SELECT organization, 'common', created_on, 1, 'device_certificate', '\\x04'::bytea, '\\x05'::bytea FROM device;
INSERT INTO realm (organization, realm_id, created_on, created_by, key_index)
SELECT d.organization, gen_random_uuid(), now() - interval '1 day' + interval '1 second', d.id, 1
FROM device d;
INSERT INTO topic_realm (realm, last_timestamp) SELECT id, created_on FROM realm;
INSERT INTO realm_user_role (realm, user_, role, certified_on, certified_by)
SELECT r.id, d.user_, 'OWNER', r.created_on, d.id FROM realm r JOIN device d ON d.id = r.created_by;
INSERT INTO realm_member (realm, user_, role, role_certified_on)
SELECT realm, user_, role, certified_on FROM realm_user_role;
INSERT INTO realm_keys_bundle (realm, key_index, certified_on, certified_by, key_canary, keys_bundle)
SELECT realm, 1, certified_on + interval '1 second', certified_by, '\\x08'::bytea, '\\x09'::bytea
FROM realm_user_role;
INSERT INTO realm_keys_bundle_access (realm_keys_bundle, user_, access)
SELECT k.id, rr.user_, '\\x0a'::bytea FROM realm_keys_bundle k JOIN realm_user_role rr ON rr.realm = k.realm;
INSERT INTO certificate (organization, topic, realm, certified_on, kind, certificate)
SELECT r.organization, 'realm', r.id, rr.certified_on, 'realm_role_certificate', '\\x06'::bytea
FROM realm r JOIN realm_user_role rr ON rr.realm = r.id
UNION ALL
SELECT r.organization, 'realm', r.id, k.certified_on, 'realm_key_rotation_certificate', '\\x07'::bytea
FROM realm r JOIN realm_keys_bundle k ON k.realm = r.id;
"""

# vlob i of realm r has versions 1..3; checkpoints numbered per realm in write order
_VLOBS = """
INSERT INTO vlob_atom (realm, vlob_id, version, key_index, author, created_on, size, blob)
SELECT r.id, ids.vlob_id, v.version, 1, r.created_by,
    now() - interval '1 hour' + (ids.n * 3 + v.version) * interval '1 microsecond', 256,
    decode(repeat(md5(ids.n::text || v.version), 16), 'hex')
FROM realm r
CROSS JOIN LATERAL (
    SELECT n, gen_random_uuid() AS vlob_id FROM generate_series(1, {per_realm}) n
) ids
CROSS JOIN generate_series(1, 3) AS v(version);
INSERT INTO realm_vlob_update (realm, checkpoint, vlob_id, version)
SELECT realm, row_number() OVER (PARTITION BY realm ORDER BY created_on, id), vlob_id, version
FROM vlob_atom;
UPDATE realm SET vlob_checkpoint = (SELECT count(*) FROM vlob_atom WHERE vlob_atom.realm = realm.id),
    last_vlob_timestamp = now() - interval '1 minute';
"""

_BLOCKS = """
INSERT INTO block (realm, block_id, author, key_index, size, created_on, organization)
SELECT r.id, gen_random_uuid(), r.created_by, 1, 1024, now(), r.organization
FROM realm r CROSS JOIN generate_series(1, {per_realm});
INSERT INTO block_data (organization_id, block_id, data)
SELECT o.organization_id, b.block_id, decode(repeat(md5(b.id::text), 64), 'hex')
FROM block b JOIN organization o ON o.id = b.organization;
"""


async def _backend_pid(url: str) -> int | None:
    conn = await asyncpg.connect(url)
    try:
        pid: int | None = await conn.fetchval(
            "SELECT pid FROM pg_stat_activity"
            " WHERE application_name LIKE 'parsec-server migrate-handback%'"
            " ORDER BY backend_start DESC LIMIT 1"
        )
        return pid
    finally:
        await conn.close()


def _rss_kb(pid: int, field: str = "VmRSS") -> int:
    """VmRSS counts the shared buffers the backend touched (bounded by shared_buffers); RssAnon
    is its private memory."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _watch_backend(url: str, stop: threading.Event, peak: list[int]) -> None:
    """Peak RSS of the PostgreSQL backend converting (same machine only), sampled every 0.5 s."""
    while not stop.wait(0.5):
        pid = asyncio.run(_backend_pid(url))  # the newest: the plan's connection comes first
        if pid is not None:
            peak[0] = max(peak[0], _rss_kb(pid))
            peak[1] = max(peak[1], _rss_kb(pid, "RssAnon"))


def main() -> int:
    args = parse_args(__doc__)
    with database(args.db, "handback") as url:
        subprocess.run(
            [*MIGRATE, url, "--no-backup"], check=True, capture_output=True, env=cli_env()
        )
        fill(
            url,
            organizations=_FILL,
            vlobs=_VLOBS,
            blocks=_BLOCKS,
            n_vlobs=args.vlobs,
            n_blocks=args.blocks,
        )
        stop, peak = threading.Event(), [0, 0]
        watcher = threading.Thread(target=_watch_backend, args=(url, stop, peak), daemon=True)
        watcher.start()
        try:
            run = run_migrate(
                url,
                "--to",
                "official-3.9",
                "--no-backup",
                skip_line=lambda line: line[:4].isdigit(),  # the 24 lineage lines
            )
        finally:
            stop.set()
            watcher.join()
        print(
            f"hand-back: exit {run.exit_code}, {run.seconds:.1f} s, peak RSS of the migrate "
            f"process {run.max_rss_kb / 1024:.0f} MB, of the PostgreSQL backend "
            f"{peak[0] / 1024:.0f} MB (of which private {peak[1] / 1024:.0f} MB)"
        )
        return run.exit_code


if __name__ == "__main__":
    sys.exit(main())
