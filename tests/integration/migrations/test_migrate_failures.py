"""Failures: a failing migration, drift and repair, unreachable database, kill -9 mid-migration."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

from migration_helpers import (
    BASIC,
    cli,
    events,
    execute,
    history,
    run_migrate,
    snapshot,
    spawn_migrate,
    value,
    write_migrations,
)

RUNNING_HALF = (
    "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'parsec-server migrate %'"
    " AND state = 'active' AND query LIKE '%CREATE TABLE half%'"
)


def test_failing_migration_rolls_back_and_exits_1(empty_db_url: str, tmp_path: Path) -> None:
    mdir = write_migrations(
        tmp_path / "m",
        {
            **{k: v for k, v in BASIC.items() if k.startswith("0001")},
            "0002_broken.sql": (
                "-- compat: expand\nCREATE TABLE half (id INT);\n"
                "INSERT INTO item VALUES (1, 'a');\n"
                "SELECT 1 / 0;\n"
            ),
            "0002_broken.down.sql": "-- data-loss: yes\nDROP TABLE half;\n",
        },
    )
    result = run_migrate("--db", empty_db_url, "--migrations-dir", str(mdir))
    assert result.returncode == 1
    out = result.stdout.splitlines()
    assert out[0] == next(line for line in out if line.startswith("0001_items.sql ✔ ("))
    assert out[1].startswith("0002_broken.sql ✘: division by zero")
    assert "SQLSTATE 22012" in out[1]
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: 0002_broken.sql failed and was rolled back")
    assert "The database is at 0001_items.sql" in err[0]
    assert "Traceback" not in result.stderr
    # the database stays at the previous migration, nothing of 0002 remains
    assert history(empty_db_url) == ["0001_items"]
    assert value(empty_db_url, "SELECT to_regclass('half')") is None
    assert value(empty_db_url, "SELECT count(*) FROM item") == 0
    (fail,) = events(empty_db_url, "fail")
    assert fail["name"] == "0002_broken" and json.loads(fail["detail"])["sqlstate"] == "22012"


def test_syntax_error_names_the_line(empty_db_url: str, tmp_path: Path) -> None:
    mdir = write_migrations(
        tmp_path / "m",
        {
            "0001_bad.sql": (
                "-- compat: breaking\nCREATE TABLE a (id INT);\n\nCREAT TABLE b (id INT);\n"
            )
        },
    )
    result = cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--json")
    assert result.exit_code == 1
    failed = [json.loads(line) for line in result.stdout.splitlines() if '"failed"' in line]
    assert failed and "(line 4)" in failed[0]["error"] and failed[0]["sqlstate"] == "42601"
    assert json.loads(result.stdout.splitlines()[-1])["event"] == "error"


def test_edited_applied_file_is_drift_until_repaired(empty_db_url: str, mdir: Path) -> None:
    assert cli("--db", empty_db_url, "--migrations-dir", str(mdir)).exit_code == 0
    first = mdir / "0001_items.sql"
    original = first.read_text()

    # line endings and trailing blanks only: not drift
    first.write_bytes(original.replace("\n", "  \r\n").encode())
    assert cli("--db", empty_db_url, "--migrations-dir", str(mdir)).exit_code == 0

    first.write_text(original.replace("label TEXT NOT NULL", "label TEXT NOT NULL, extra INT"))
    drift = cli("--db", empty_db_url, "--migrations-dir", str(mdir))
    assert drift.exit_code == 4
    assert "0001_items.sql" in drift.stderr and "repair 0001_items" in drift.stderr
    assert len(drift.stderr.strip().splitlines()) == 1
    assert cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--dry-run").exit_code == 4
    # start-up check only warns
    status = cli("status", "--db", empty_db_url, "--migrations-dir", str(mdir))
    assert re.search(r"^0001_items\.sql +drift ", status.stdout, re.M)

    old_checksum = value(empty_db_url, "SELECT checksum FROM schema_migration WHERE number = 1")
    repaired = cli("repair", "0001_items", "--db", empty_db_url, "--migrations-dir", str(mdir))
    assert repaired.exit_code == 0, repaired.output
    assert "0001_items.sql: accepted checksum" in repaired.stdout
    assert cli("--db", empty_db_url, "--migrations-dir", str(mdir)).exit_code == 0
    repairs = json.loads(
        value(empty_db_url, "SELECT repairs FROM schema_migration WHERE number = 1")
    )
    (entry,) = repairs
    assert entry["old_checksum"] == old_checksum and entry["new_checksum"] != old_checksum
    assert entry["by"] and entry["repaired_on"] and entry["server_version"]
    assert [e["name"] for e in events(empty_db_url, "repair")] == ["0001_items"]
    # other rows untouched; a second repair is a no-op
    assert value(empty_db_url, "SELECT count(*) FROM schema_migration WHERE repairs <> '[]'") == 1
    again = cli("repair", "1", "--db", empty_db_url, "--migrations-dir", str(mdir))
    assert again.exit_code == 0 and "nothing to repair" in again.stdout
    status = cli("status", "--db", empty_db_url, "--migrations-dir", str(mdir))
    assert "repaired " in status.stdout and re.search(
        r"^0001_items\.sql +applied ", status.stdout, re.M
    )


def test_unreachable_database_is_one_line_and_exit_6(tmp_path: Path) -> None:
    for url in (
        "postgresql://postgres@127.0.0.1:1/parsec",
        "postgresql://postgres:pw@no-such-host.invalid/x",
    ):
        result = run_migrate("--db", url)
        assert result.returncode == 6, result.stderr
        assert result.stderr.count("\n") == 1 and result.stderr.startswith(
            "error: cannot connect to the database"
        )
        assert "Traceback" not in result.stderr and ":pw@" not in result.stderr
    # not a PostgreSQL URL: refused as bad usage before connecting (the option all commands share)
    bad = run_migrate("--db", "mysql://x")
    assert bad.returncode == 2 and "is not a PostgreSQL URL" in bad.stderr
    for sub in ("status", "repair", "dump-schema"):
        args = [sub, "1"] if sub == "repair" else [sub]
        assert run_migrate(*args, "--db", "mysql://x").returncode == 2
    usage = run_migrate()  # no --db
    assert usage.returncode == 2 and "--db" in usage.stderr


def test_missing_database_is_cannot_connect(empty_db_url: str) -> None:
    url = empty_db_url.rsplit("/", 1)[0] + "/no_such_database"
    result = cli("--db", url, "--dry-run")
    assert result.exit_code == 6 and "does not exist" in result.stderr


def test_kill_9_mid_migration_leaves_nothing_half_applied(
    empty_db_url: str, tmp_path: Path
) -> None:
    mdir = write_migrations(
        tmp_path / "m",
        {
            **{k: v for k, v in BASIC.items() if k.startswith("0001")},
            "0002_slow.sql": "-- compat: expand\nCREATE TABLE half (id INT);\n"
            "SELECT pg_sleep(coalesce((SELECT max(seconds) FROM test_control), 0));\n",
            "0002_slow.down.sql": "-- data-loss: yes\nDROP TABLE half;\n",
        },
    )
    assert cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--to", "1").exit_code == 0
    execute(
        empty_db_url,
        "CREATE TABLE test_control (seconds INT); INSERT INTO test_control VALUES (60)",
    )
    proc = spawn_migrate("--db", empty_db_url, "--migrations-dir", str(mdir))
    try:
        deadline = time.monotonic() + 20
        while not value(empty_db_url, RUNNING_HALF):
            assert time.monotonic() < deadline, "migration never started"
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    execute(empty_db_url, "DELETE FROM test_control")
    before = time.monotonic()
    result = run_migrate("--db", empty_db_url, "--migrations-dir", str(mdir), "--lock-wait", "20")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - before < 15  # the orphan backend noticed its client died and let go
    assert result.stdout.splitlines()[:2] == [
        "0001_items.sql (already applied)",
        result.stdout.splitlines()[1],
    ]
    assert result.stdout.splitlines()[1].startswith("0002_slow.sql ✔")
    assert history(empty_db_url) == ["0001_items", "0002_slow"]
    assert [e["name"] for e in events(empty_db_url, "apply")] == ["0001_items", "0002_slow"]
    assert value(empty_db_url, "SELECT to_regclass('half') IS NOT NULL")


def test_killed_run_has_rolled_back_before_the_next_one(empty_db_url: str, tmp_path: Path) -> None:
    """Right after the kill (and before any new run), the half-done migration is gone."""
    mdir = write_migrations(
        tmp_path / "m",
        {
            "0001_slow.sql": (
                "-- compat: breaking\nCREATE TABLE half (id INT);\nSELECT pg_sleep(60);\n"
            ),
        },
    )
    proc = spawn_migrate("--db", empty_db_url, "--migrations-dir", str(mdir))
    try:
        deadline = time.monotonic() + 20
        while not value(empty_db_url, RUNNING_HALF):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        before = snapshot(empty_db_url)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    deadline = time.monotonic() + 10
    while value(
        empty_db_url,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'parsec-server migrate "
        "%'",
    ):
        assert time.monotonic() < deadline, "orphan backend kept running"
        time.sleep(0.1)
    assert snapshot(empty_db_url) == before  # the uncommitted table was never visible
    assert value(empty_db_url, "SELECT to_regclass('half')") is None
    assert history(empty_db_url) == []
