"""`migrate --dry-run` is read-only, takes no lock, and prints the guide's lines between a header
and a summary."""

from __future__ import annotations

from pathlib import Path

import pytest
from migration_helpers import BlockerFactory, cli, history, snapshot, value

from parsec_server.storage.migrations import monitor


def dry_run_lines(url: str, mdir: Path, *extra: str) -> list[str]:
    result = cli("--db", url, "--dry-run", "--migrations-dir", str(mdir), *extra)
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


@pytest.mark.parametrize("applied", [0, 1, 3], ids=["empty", "partial", "full"])
def test_dry_run_changes_nothing_and_lists_the_plan(
    empty_db_url: str, mdir: Path, applied: int
) -> None:
    if applied:
        assert (
            cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--to", str(applied)).exit_code
            == 0
        )
    before = snapshot(empty_db_url)

    lines = dry_run_lines(empty_db_url, mdir)

    assert snapshot(empty_db_url) == before  # same schema dump, same relations, same file nodes
    if not applied:
        assert (
            value(empty_db_url, "SELECT to_regclass('schema_migration')") is None
        )  # not even the history table
    names = ["0001_items.sql", "0002_item_note.sql", "0003_item_label_index.sql"]
    expected = [f"{n} (already applied)" for n in names[:applied]]
    expected += [f"{n} ✔" for n in names[applied:]]
    assert lines[0].startswith("Dry run on ") and "nothing is changed" in lines[0]
    assert lines[1:-1] == expected
    assert lines[-1] == f"{3 - applied} to apply, {applied} already applied"


def test_dry_run_takes_no_lock(
    empty_db_url: str, mdir: Path, blocker_factory: BlockerFactory
) -> None:
    holder = blocker_factory()
    holder.execute(f"SELECT pg_advisory_lock({monitor.LOCK_KEY[0]}, {monitor.LOCK_KEY[1]})")
    # a real run cannot proceed while another run holds the lock...
    result = cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--lock-wait", "0.3")
    assert result.exit_code == 3
    assert f"pid {holder.pid}" in result.stderr
    # ...the dry run does not care
    assert dry_run_lines(empty_db_url, mdir)[-1] == "3 to apply, 0 already applied"
    assert history(empty_db_url) == []


def test_dry_run_sql_prints_the_statements(empty_db_url: str, mdir: Path) -> None:
    lines = dry_run_lines(empty_db_url, mdir, "--sql")
    text = "\n".join(lines)
    assert "0001_items.sql ✔\n    CREATE TABLE" in text
    assert "0003_item_label_index.sql ✔\n    -- transaction: off" in text
    assert "    CREATE TABLE item (id INT PRIMARY KEY, label TEXT NOT NULL);" in text
    assert "    CREATE INDEX CONCURRENTLY IF NOT EXISTS item_label ON item (label);" in text
    # --sql alone implies --dry-run
    result = cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--sql")
    assert result.exit_code == 0 and history(empty_db_url) == []


def test_dry_run_json(empty_db_url: str, mdir: Path) -> None:
    import json

    result = cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--dry-run", "--json")
    assert result.exit_code == 0
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["event"], e.get("state")) for e in events] == [
        ("migration", "pending"),
        ("migration", "pending"),
        ("migration", "pending"),
        ("summary", None),
    ]
    assert events[-1]["to_apply"] == [
        "0001_items.sql",
        "0002_item_note.sql",
        "0003_item_label_index.sql",
    ]


def test_dry_run_of_a_down_move_says_what_would_lose_data(empty_db_url: str, mdir: Path) -> None:
    assert cli("--db", empty_db_url, "--migrations-dir", str(mdir)).exit_code == 0
    before = snapshot(empty_db_url)
    ok = cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--dry-run", "--to", "2")
    assert ok.exit_code == 0
    assert "0003_item_label_index.down.sql ↩ (would revert: no data loss)" in ok.stdout
    refused = cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--dry-run", "--to", "1")
    assert refused.exit_code == 10  # what the real run would answer
    assert "0002_item_note.down.sql ↩ (would revert: discards data)" in refused.stdout
    assert refused.stdout.splitlines()[-1] == "2 to revert (1 discarding data), 1 already applied"
    assert refused.stderr.strip().count("\n") == 0 and "--allow-data-loss" in refused.stderr
    assert snapshot(empty_db_url) == before


def test_dry_run_warns_about_long_open_transactions(
    empty_db_url: str, mdir: Path, blocker_factory: BlockerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from parsec_server.storage.migrations import engine

    monkeypatch.setattr(engine, "_LONG_TRANSACTION_S", 0.1)
    holder = blocker_factory()
    holder.execute("BEGIN; SELECT txid_current();")
    import time

    time.sleep(0.3)
    result = cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--dry-run")
    assert result.exit_code == 0
    assert f"warning: pid {holder.pid} (idle in transaction for" in result.stderr
    assert "steps that lock its tables will wait" in result.stderr


def test_a_migration_cannot_change_the_session_of_the_next_one(
    empty_db_url: str, tmp_path: Path
) -> None:
    from migration_helpers import write_migrations

    mdir = write_migrations(
        tmp_path / "m",
        {
            "0001_a.sql": (
                "-- compat: breaking\nCREATE SCHEMA other;\nSET search_path = other;\n"
                "CREATE TABLE a (id INT);\n"
            ),
            "0002_b.sql": "-- compat: breaking\nCREATE TABLE b (id INT);\n",
        },
    )
    assert cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--no-backup").exit_code == 0
    assert value(empty_db_url, "SELECT to_regclass('other.a') IS NOT NULL")
    assert value(empty_db_url, "SELECT to_regclass('public.b') IS NOT NULL")
