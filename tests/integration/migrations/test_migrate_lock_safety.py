"""Lock-safe DDL: lock_timeout + retries keep other sessions' queries flowing; progress names the
blocker."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from migration_helpers import (
    BASIC,
    Blocker,
    BlockerFactory,
    cli,
    history,
    spawn_migrate,
    value,
    write_migrations,
)

ALTER = {
    **{k: v for k, v in BASIC.items() if k.startswith("0001")},
    "0002_item_extra.sql": (
        "-- compat: expand\n-- lock_timeout: 300ms\nALTER TABLE item ADD COLUMN extra INT;\n"
    ),
    "0002_item_extra.down.sql": "-- data-loss: yes\nALTER TABLE item DROP COLUMN extra;\n",
}


def _prepare(url: str, tmp_path: Path, files: dict[str, str]) -> Path:
    mdir = write_migrations(tmp_path / "m", files)
    assert cli("--db", url, "--migrations-dir", str(mdir), "--to", "1").exit_code == 0
    return mdir


def test_blocked_migration_never_blocks_reads_longer_than_lock_timeout(
    empty_db_url: str, tmp_path: Path, blocker_factory: BlockerFactory
) -> None:
    mdir = _prepare(empty_db_url, tmp_path, ALTER)
    holder: Blocker = blocker_factory()
    holder.execute("BEGIN; SELECT count(*) FROM item;")  # a long transaction holding ACCESS SHARE
    reader: Blocker = blocker_factory()
    proc = spawn_migrate(
        "--db", empty_db_url, "--migrations-dir", str(mdir), "--lock-retries", "100", "--json"
    )
    try:
        # wait until the migration is queued behind the holder at least once
        deadline = time.monotonic() + 15
        while not value(
            empty_db_url,
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND query LIKE '%ADD COLUMN extra%'",
        ):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.01)
        worst = 0.0
        reads = 0
        end = time.monotonic() + 3.0
        while time.monotonic() < end:  # the application keeps reading while the migration retries
            t0 = time.monotonic()
            reader.execute("SELECT count(*) FROM item")
            worst = max(worst, time.monotonic() - t0)
            reads += 1
            time.sleep(0.02)
        assert proc.poll() is None  # still retrying: never got its lock
        # lock_timeout is 300ms; without it a read waits as long as the holder's transaction (>3s)
        assert worst < 2.0, f"a read waited {worst:.2f}s behind the migration"
        assert reads > 20
        holder.execute("COMMIT")
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    evs = [json.loads(line) for line in out.splitlines()]
    retries = [e for e in evs if e["event"] == "retry"]
    assert retries and retries[0]["sqlstate"] == "55P03"
    assert any(
        b["pid"] == holder.pid for r in retries for b in r["blocked_by"]
    )  # names the blocker
    applied = next(e for e in evs if e.get("state") == "applied")
    assert applied["name"] == "0002_item_extra.sql" and applied["attempts"] == len(retries) + 1
    assert history(empty_db_url) == ["0001_items", "0002_item_extra"]
    assert (
        value(empty_db_url, "SELECT attempts FROM schema_migration WHERE number = 2")
        == len(retries) + 1
    )


def test_permanent_blocker_fails_after_retries_naming_it(
    empty_db_url: str, tmp_path: Path, blocker_factory: BlockerFactory
) -> None:
    mdir = _prepare(empty_db_url, tmp_path, ALTER)
    holder: Blocker = blocker_factory()
    holder.execute("BEGIN; SELECT count(*) FROM item;")
    result = cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--lock-retries", "2")
    assert result.exit_code == 1
    failed = next(line for line in result.stdout.splitlines() if "✘" in line)
    assert failed.startswith("0002_item_extra.sql ✘: canceling statement due to lock timeout")
    assert "gave up after 3 attempt(s)" in failed and f"blocked by pid {holder.pid}" in failed
    assert result.stderr.count("could not take its locks in time") == 2  # two retries reported
    assert history(empty_db_url) == ["0001_items"]


def test_heartbeat_names_what_blocks_a_long_wait(
    empty_db_url: str, tmp_path: Path, blocker_factory: BlockerFactory
) -> None:
    files = {**ALTER, "0002_item_extra.sql": ALTER["0002_item_extra.sql"].replace("300ms", "20s")}
    mdir = _prepare(empty_db_url, tmp_path, files)
    holder: Blocker = blocker_factory()
    holder.execute("BEGIN; SELECT count(*) FROM item;")
    proc = spawn_migrate("--db", empty_db_url, "--migrations-dir", str(mdir), "--heartbeat", "0.3")
    try:
        # Under load the subprocess may take a while to start: wait until it really waits on
        # the lock, then long enough for two heartbeats, before releasing it.
        deadline = time.monotonic() + 60
        while _waiting_lock_requests(empty_db_url) == 0:
            assert time.monotonic() < deadline, "migrate never blocked on the held lock"
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        time.sleep(1.0)
        holder.execute("COMMIT")
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    beats = [line for line in err.splitlines() if "still running" in line]
    assert len(beats) >= 2, err
    assert "waiting for a lock (Lock/relation)" in beats[-1]
    assert f"blocked by pid {holder.pid} (idle in transaction for" in beats[-1]
    assert "0002_item_extra.sql ✔" in out


def test_heartbeat_of_a_long_running_migration(empty_db_url: str, tmp_path: Path) -> None:
    mdir = write_migrations(
        tmp_path / "m", {"0001_slow.sql": "-- compat: breaking\nSELECT pg_sleep(2);\n"}
    )
    result = cli(
        "--db", empty_db_url, "--migrations-dir", str(mdir), "--heartbeat", "0.3", "--json"
    )
    assert result.exit_code == 0
    beats = [json.loads(line) for line in result.stdout.splitlines() if '"heartbeat"' in line]
    assert len(beats) >= 2
    assert {b["name"] for b in beats} == {"0001_slow.sql"}
    assert beats[-1]["elapsed_s"] > beats[0]["elapsed_s"]
    sleeping = [b for b in beats if b["wait_event"] == "Timeout/PgSleep"]
    assert sleeping and all(b["blocked_by"] == [] for b in sleeping)


def _waiting_lock_requests(db_url: str) -> int:
    res = subprocess.run(
        [
            "psql",
            "-X",
            "-tA",
            "-d",
            db_url,
            "-c",
            "SELECT count(*) FROM pg_locks WHERE NOT granted",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(res.stdout.strip() or 0)
