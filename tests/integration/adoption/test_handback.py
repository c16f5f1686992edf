"""`parsec-server migrate --to official-3.9` (issue 13, stage 3: the hand-back), end to end.

A database of ours is filled through our server by real requests of the official client library
(handback_driver.py, run with the .venv-compat python: several users and profiles, a revoked and
a frozen user, a second device, profile update, realm shares/unshare, two key rotations, renames,
an archived realm, 126 vlob versions, blocks, shamir, pending user and device invitations, an
expired organization), which records what every device saw. The database is handed back (killed
with SIGKILL midway first: nothing changes, the rerun finishes), then the OFFICIAL 3.9.3 server
is started on it and the driver checks that every device authenticates (or is refused) as before,
certificate_get returns the same certificates (and from a device's last timestamp only the new
ones), vlob reads are byte-identical, vlob_poll_changes from an old checkpoint returns the changes
since, blocks read back, pending invitations answer invite_info, and that the official server
accepts new writes. Skipped without .venv-compat.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from pathlib import Path

from adoption_support import (
    CLI,
    TABLES,
    cli_env,
    migrate,
    need_compat,
    official_server,
    our_server,
    query,
    run_driver,
)

DRIVER = Path(__file__).with_name("handback_driver.py")
TOKEN = "handback-test-token"
EXTRA_VLOBS = 10_000  # direct SQL, so that the copy lasts long enough to be killed midway


def ours(url: str, tmp: Path) -> contextlib.AbstractContextManager[str]:
    return our_server(url, tmp / "ours.log", TOKEN)


def official(url: str, tmp: Path) -> contextlib.AbstractContextManager[str]:
    return official_server(url, tmp / "official.log", TOKEN)


def driver(action: str, server: str, state: Path) -> subprocess.CompletedProcess[str]:
    return run_driver(DRIVER, action, server, TOKEN, state, timeout=300)


# Rows per official table after the hand-back == rows of the table of ours it comes from.
_PAIRS = {
    "organization": "organization",
    "human": "human",
    "user_": "user_",
    "device": "device",
    "profile": "user_profile_update",
    "realm": "realm",
    "realm_user_role": "realm_user_role",
    "realm_keys_bundle": "realm_keys_bundle",
    "realm_keys_bundle_access": "realm_keys_bundle_access",
    "realm_name": "realm_name",
    "realm_archiving": "realm_archiving",
    "vlob_atom": "vlob_atom",
    "realm_vlob_update": "realm_vlob_update",
    "block": "block",
    "block_data": "block_data",
    "invitation": "invitation",
    "shamir_recovery_setup": "shamir_recovery_setup",
    "shamir_recovery_share": "shamir_recovery_share",
}


def _add_vlob_versions(url: str, n: int) -> None:
    """n more vlob writes (new vlobs) in the realm with the fewest vlobs (the expired
    organization's: not one the driver checks), consistent with its checkpoint."""
    query(
        url,
        f"""
        WITH r AS (
            SELECT realm, max(id) AS any_vlob FROM vlob_atom GROUP BY realm
            ORDER BY count(*), realm LIMIT 1
        ), a AS (
            SELECT v.realm, v.author, v.key_index FROM vlob_atom v, r WHERE v.id = r.any_vlob
        ), cp AS (
            SELECT vlob_checkpoint AS c FROM realm, a WHERE realm.id = a.realm
        ), new AS (
            INSERT INTO vlob_atom (realm, vlob_id, version, key_index, author, created_on, size,
                                   blob)
            SELECT a.realm, gen_random_uuid(), 1, a.key_index, a.author,
                   now() + g * interval '1 microsecond', 320, decode(repeat(md5(g::text), 20), 'hex')
            FROM a, generate_series(1, {n}) AS g
            RETURNING realm, vlob_id, version, created_on
        ), upd AS (
            INSERT INTO realm_vlob_update (realm, checkpoint, vlob_id, version)
            SELECT realm, (SELECT c FROM cp) + row_number() OVER (ORDER BY created_on), vlob_id,
                   version FROM new
            RETURNING checkpoint
        )
        UPDATE realm SET vlob_checkpoint = (SELECT max(checkpoint) FROM upd)
        FROM a WHERE realm.id = a.realm
        """,
    )


def _kill_midway(url: str, tmp: Path) -> None:
    """Run the hand-back and SIGKILL it while it copies the vlobs (after tables were moved)."""
    proc = subprocess.Popen(
        [
            *CLI,
            "migrate",
            "--db",
            url,
            "--to",
            "official-3.9",
            "--json",
            "--backup-dir",
            str(tmp / "backups"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        ev = json.loads(line)
        seen.append(ev.get("event"))
        if ev.get("event") == "handback_table" and ev.get("table") == "vlob_atom":
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, (seen, proc.stderr.read() if proc.stderr else "")
    assert "backup" in seen  # the verified backup came first


def test_handback_then_the_official_server_serves_every_client(db_url: str, tmp_path: Path) -> None:
    need_compat()
    state = tmp_path / "state.json"
    with ours(db_url, tmp_path) as server:
        res = driver("fill", server, state)
        assert res.returncode == 0, res.stdout + res.stderr
    _add_vlob_versions(db_url, EXTRA_VLOBS)
    ours_counts = {t: query(db_url, f"SELECT count(*) FROM {t}")[0][0] for t in _PAIRS.values()}
    certificates = query(db_url, "SELECT count(*) FROM certificate")[0][0]

    dry = migrate(db_url, "--to", "official-3.9", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "0024_rename_minimum_archiving_period.sql ✔" in dry.stdout
    assert f"vlob_atom ({ours_counts['vlob_atom']})" in dry.stdout
    assert "warning" not in dry.stderr

    before = query(db_url, TABLES)
    _kill_midway(db_url, tmp_path)
    time.sleep(1.5)  # the backend notices its client died within client_connection_check_interval
    assert query(db_url, TABLES) == before  # nothing changed: one transaction, rolled back
    assert query(db_url, "SELECT count(*) FROM vlob_atom")[0][0] == ours_counts["vlob_atom"]

    res = migrate(db_url, "--to", "official-3.9", "--backup-dir", str(tmp_path / "backups"))
    assert res.returncode == 0, res.stderr
    assert "Handed back" in res.stdout
    assert f"vlob_atom: {ours_counts['vlob_atom']} rows" in res.stdout
    assert "… vlob_atom: copying" in res.stderr  # progress per table
    backups = sorted((tmp_path / "backups").glob("pre-handback-*"))
    assert backups and (backups[-1] / "metadata.json").exists()

    # nothing lost or doubled; the official history as the official runner writes it
    for theirs, mine in _PAIRS.items():
        got = query(db_url, f"SELECT count(*) FROM public.{theirs}")[0][0]
        assert got == ours_counts[mine], theirs
    kept = query(db_url, "SELECT count(*) FROM parsec_server_handed_back.certificate")[0][0]
    assert kept == certificates
    history = query(db_url, "SELECT _id, name FROM migration ORDER BY applied")
    assert [h[0] for h in history] == list(range(1, 25))
    assert history[-1][1] == "rename_minimum_archiving_period"
    # a rerun finds an official 3.9 database: nothing to do
    again = migrate(db_url, "--to", "official-3.9")
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stderr

    with official(db_url, tmp_path) as server:
        res = driver("check", server, state)
    assert res.returncode == 0, res.stdout + res.stderr
