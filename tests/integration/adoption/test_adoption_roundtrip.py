"""`parsec-server migrate` adopts an official 3.9 database (issue 13, stage 2), end to end.

The official 3.9.3 server (`.venv-compat`) migrates a fresh database and serves it; the official
client library fills it by real requests (adoption_driver.py: every profile, revoked and frozen
users, a second device, profile update, shares/unshare, key rotations, renames, an archived realm,
1,050+ vlob versions, 16 blocks on a RAID0 of the PostgreSQL blockstore and an S3 bucket (moto on
loopback), shamir, pending invitations, an expired organization,
a sequestered organization with a sequester service, terms of service accepted by one user)
and records what every device saw. The official server stops; our `migrate` takes its backup and
adopts the database (killed with SIGKILL midway first: nothing changes, the rerun finishes); our
server starts on it and the driver checks that every device authenticates (or is refused) as
before, certificate_get returns the same certificates (and from a device's last timestamp only the
new ones), vlob reads are byte-identical, vlob_poll_changes from an old checkpoint returns exactly
the changes since, blocks read back, pending invitations answer invite_info, and that our server
accepts new writes. Skipped without .venv-compat.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from adoption_support import (
    CLI,
    TABLES,
    cli_env,
    migrate,
    need_compat,
    official_migrate,
    official_server,
    our_server,
    query,
    run_driver,
)

DRIVER = Path(__file__).with_name("adoption_driver.py")
TOKEN = "adoption-test-token"


S3 = {"region": "us-east-1", "bucket": "adoption-blocks", "key": "k", "secret": "s"}


@pytest.fixture(scope="module")
def blockstore() -> Iterator[tuple[list[str], Any]]:
    """RAID0 over the PostgreSQL blockstore (node 0) and an S3 bucket on loopback (node 1), given
    to both servers alike: block_id % 2 puts about half the blocks in each, so the adoption is
    checked with the official `block_data` table and with the official S3 object keys."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=S3["region"],
            aws_access_key_id=S3["key"],
            aws_secret_access_key=S3["secret"],
        )
        s3.create_bucket(Bucket=S3["bucket"])
        escaped = endpoint.replace(":", "\\:")
        node1 = f"s3:{escaped}:{S3['region']}:{S3['bucket']}:{S3['key']}:{S3['secret']}"
        yield ["--blockstore", "RAID0:0:POSTGRESQL", "--blockstore", f"RAID0:1:{node1}"], s3
    finally:
        server.stop()


def _official_server(
    url: str, log: Path, blockstore: list[str]
) -> contextlib.AbstractContextManager[str]:
    return official_server(url, log, TOKEN, blockstore)


def _our_server(
    url: str, log: Path, blockstore: list[str]
) -> contextlib.AbstractContextManager[str]:
    return our_server(url, log, TOKEN, blockstore)


def _driver(action: str, server: str, state: Path) -> None:
    res = run_driver(DRIVER, action, server, TOKEN, state)
    assert res.returncode == 0, f"driver {action}:\n{res.stdout}\n{res.stderr[-3000:]}"


_COUNTS = (
    "SELECT (SELECT count(*) FROM vlob_atom), (SELECT count(*) FROM realm_vlob_update),"
    " (SELECT count(*) FROM block), (SELECT count(*) FROM block_data),"
    " (SELECT count(*) FROM user_), (SELECT count(*) FROM device),"
    " (SELECT count(*) FROM invitation WHERE deleted_on IS NULL)"
)


@pytest.fixture
def filled_official(
    pg_cluster: Any, tmp_path: Path, blockstore: tuple[list[str], Any]
) -> Iterator[tuple[str, Path]]:
    """A database migrated by the official 3.9.3 server and filled through it."""
    need_compat()
    name = pg_cluster.create_database()
    url = pg_cluster.url_for(name)
    official_migrate(url)
    state = tmp_path / "state.json"
    with _official_server(url, tmp_path / "official.log", blockstore[0]) as server:
        _driver("fill", server, state)
    with _official_server(url, tmp_path / "official-restarted.log", blockstore[0]) as server:
        _driver("status", server, state)
    yield url, state
    pg_cluster.drop_database(name)


def _kill_midway(url: str) -> None:
    """Start the adoption, SIGKILL it once it is converting, check that nothing changed."""
    env = cli_env()
    with subprocess.Popen(
        [*CLI, "migrate", "--db", url, "--no-backup"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("  user_ <- user_"):  # inside the transaction, tables half done
                proc.kill()
                break
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL


def test_adoption_round_trip_official_to_ours(
    filled_official: tuple[str, Path], tmp_path: Path, blockstore: tuple[list[str], Any]
) -> None:
    url, state = filled_official
    args, s3 = blockstore
    in_s3 = s3.list_objects_v2(Bucket=S3["bucket"]).get("KeyCount", 0)
    in_pg = query(url, "SELECT count(*) FROM block_data")[0][0]
    assert in_s3 > 0 and in_pg > 0  # both nodes of the official RAID0 hold blocks
    official_tables = query(url, TABLES)
    official_counts = query(url, _COUNTS)
    assert official_counts[0][0] >= 1000  # vlob versions

    _kill_midway(url)
    deadline = time.monotonic() + 30  # the killed backend's transaction is rolled back
    while query(url, TABLES) != official_tables and time.monotonic() < deadline:
        time.sleep(0.2)
    assert query(url, TABLES) == official_tables
    assert query(url, "SELECT to_regnamespace('parsec_official') IS NULL") == [(True,)]

    backups = tmp_path / "backups"
    res = migrate(url, "--backup-dir", str(backups))
    assert res.returncode == 0, res.stdout + res.stderr
    assert len(list(backups.iterdir())) == 1  # the verified pre-migrate backup
    lines = res.stdout.splitlines()
    assert "  vlob_atom <- vlob_atom: " in "\n".join(lines)
    assert lines[-1].startswith("Adopted the official Parsec server 3.9.x database")
    # nothing lost or doubled; the official tables stay in parsec_official
    assert query(url, _COUNTS) == official_counts
    moved = {t for s, t in query(url, TABLES) if s == "parsec_official"}
    assert {"user_", "vlob_atom", "migration", "account"} <= moved
    assert "block_data" not in moved  # moved into ours, not copied
    # a second run finds our own database, up to date
    again = migrate(url, "--dry-run")
    assert again.returncode == 0 and "Lineage of" not in again.stdout

    # the sequester service's encryption key is only in its certificate: read from there
    recorded = json.loads(state.read_text())
    assert query(url, "SELECT encode(encryption_key_der, 'hex') FROM sequester_service") == [
        (recorded["sequestered"]["encryption_key_der"],)
    ]
    # terms of service: accepted by alice only (as the restarted official server answered)
    assert recorded["tos"]["status"] == {"alice": "RepOk", "bob": "http 463"}

    assert query(url, "SELECT count(*) FROM block_data")[0][0] == in_pg
    assert in_pg + in_s3 == query(url, "SELECT count(*) FROM block")[0][0]

    with _our_server(url, tmp_path / "ours.log", args) as server:
        _driver("check", server, state)
