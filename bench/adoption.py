"""Adoption at scale (issue 13 point 7): an official 3.9 database with N vlob versions and M blocks
(PostgreSQL blockstore), built by direct SQL into the schema the official server's own `migrate`
created, then adopted by `parsec-server migrate`; prints the time, the progress lines and the peak
memory (max RSS) of the migrate process.

    .venv/bin/python bench/adoption.py [--vlobs 1000000] [--blocks 100000] [--db URL]

Without --db, a throwaway PostgreSQL cluster is started on a free loopback port (and removed).
Needs .venv-compat (the official server's `parsec migrate`). The data: 10 organizations, one user,
device and realm (with its role certificate and topic) each, vlobs of 3 versions, 256-byte blobs,
1 KiB blocks; certificates are dummy bytes (the adoption never reads them, except sequester
services, absent here).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from migration_bench import database, fill, parse_args, run_migrate

REPO = Path(__file__).resolve().parent.parent
COMPAT = REPO / ".venv-compat" / "bin" / "parsec"

_FILL = """
INSERT INTO organization (organization_id, bootstrap_token, root_verify_key, is_expired,
    user_profile_outsider_allowed, active_users_limit, _bootstrapped_on, _created_on,
    realm_minimum_archiving_period_before_deletion)
SELECT 'BenchOrg' || g, md5(g::text), decode(md5(g::text) || md5(g::text), 'hex'), false, true,
    NULL, now(), now(), 2592000
FROM generate_series(1, {orgs}) g;
INSERT INTO common_topic (organization, last_timestamp) SELECT _id, now() FROM organization;
INSERT INTO human (organization, email, label)
SELECT _id, 'alice@example.com', 'Alice' FROM organization;
INSERT INTO user_ (organization, user_id, user_certificate, user_certifier, created_on, human,
    redacted_user_certificate, initial_profile, current_profile)
SELECT o._id, gen_random_uuid(), '\\x01', NULL, now() - interval '1 day', h._id, '\\x02', 'ADMIN',
    'ADMIN'
FROM organization o JOIN human h ON h.organization = o._id;
INSERT INTO device (organization, user_, device_id, device_label, verify_key, device_certificate,
    device_certifier, created_on, redacted_device_certificate)
SELECT organization, _id, gen_random_uuid(), 'laptop', '\\x03', '\\x04', NULL, created_on, '\\x05'
FROM user_;
INSERT INTO realm (organization, realm_id, key_index, created_on)
SELECT _id, gen_random_uuid(), 1, now() - interval '1 day' FROM organization;
INSERT INTO realm_topic (organization, realm, last_timestamp)
SELECT organization, _id, created_on FROM realm;
INSERT INTO realm_user_role (realm, user_, role, certificate, certified_by, certified_on)
SELECT r._id, u._id, 'OWNER', '\\x06', d._id, r.created_on
FROM realm r JOIN user_ u ON u.organization = r.organization JOIN device d ON d.user_ = u._id;
INSERT INTO realm_keys_bundle (realm, key_index, realm_key_rotation_certificate, certified_by,
    certified_on, key_canary, keys_bundle)
SELECT realm, 1, '\\x07', certified_by, certified_on, '\\x08', '\\x09' FROM realm_user_role;
INSERT INTO realm_keys_bundle_access (realm, user_, realm_keys_bundle, access)
SELECT k.realm, rr.user_, k._id, '\\x0a'
FROM realm_keys_bundle k JOIN realm_user_role rr ON rr.realm = k.realm;
"""

# vlob versions: vlob i of realm r has versions 1..3; realm_vlob_update numbered per realm
_VLOBS = """
INSERT INTO vlob_atom (realm, key_index, vlob_id, version, blob, size, author, created_on)
SELECT r._id, 1, ids.vlob_id, v.version, decode(repeat(md5(ids.n::text || v.version), 16), 'hex'),
    256, d._id, now() - interval '1 hour' + (ids.n * 3 + v.version) * interval '1 microsecond'
FROM realm r
JOIN realm_user_role rr ON rr.realm = r._id
JOIN device d ON d._id = rr.certified_by
CROSS JOIN LATERAL (
    SELECT n, gen_random_uuid() AS vlob_id FROM generate_series(1, {per_realm}) n
) ids
CROSS JOIN generate_series(1, 3) AS v(version);
INSERT INTO realm_vlob_update (realm, index, vlob_atom)
SELECT realm, row_number() OVER (PARTITION BY realm ORDER BY created_on, _id), _id
FROM vlob_atom;
"""

_BLOCKS = """
INSERT INTO block (block_id, realm, author, size, created_on, key_index)
SELECT gen_random_uuid(), r._id, rr.certified_by, 1024, now(), 1
FROM realm r JOIN realm_user_role rr ON rr.realm = r._id
CROSS JOIN generate_series(1, {per_realm});
INSERT INTO block_data (organization_id, block_id, data)
SELECT o.organization_id, b.block_id, decode(repeat(md5(b._id::text), 64), 'hex')
FROM block b JOIN realm r ON r._id = b.realm JOIN organization o ON o._id = r.organization;
"""


def main() -> int:
    args = parse_args(__doc__)
    if not COMPAT.exists():
        print("error: needs .venv-compat (the official server's parsec migrate)", file=sys.stderr)
        return 3
    with database(args.db, "adoption") as url:
        t0 = time.monotonic()
        subprocess.run([str(COMPAT), "migrate", "--db", url], check=True, capture_output=True)
        print(f"official migrate: {time.monotonic() - t0:.1f} s", flush=True)
        fill(
            url,
            organizations=_FILL,
            vlobs=_VLOBS,
            blocks=_BLOCKS,
            n_vlobs=args.vlobs,
            n_blocks=args.blocks,
        )
        run = run_migrate(url, "--no-backup")
        print(
            f"adoption: exit {run.exit_code}, {run.seconds:.1f} s, peak RSS of the migrate process "
            f"{run.max_rss_kb / 1024:.0f} MB"
        )
        return run.exit_code


if __name__ == "__main__":
    sys.exit(main())
