"""Non-transactional migrations (CREATE INDEX CONCURRENTLY): run statement by statement, resume
cleanly."""

from __future__ import annotations

import json
from pathlib import Path

from migration_helpers import BASIC, cli, events, execute, history, value, write_migrations

FILES = {
    **{k: v for k, v in BASIC.items() if k.startswith("0001")},
    "0002_unique_label.sql": (
        "-- compat: expand\n-- transaction: off\n"
        "INSERT INTO item_audit VALUES ('step 1 ran');\n"
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS item_label_unique ON item (label);\n"
        "INSERT INTO item_audit VALUES ('step 3 ran');\n"
    ),
    "0002_unique_label.down.sql": (
        "-- data-loss: no\n-- transaction: off\n"
        "DROP INDEX CONCURRENTLY IF EXISTS item_label_unique;\n"
    ),
}


def test_interrupted_concurrent_index_is_rebuilt_and_the_run_resumes(
    empty_db_url: str, tmp_path: Path
) -> None:
    mdir = write_migrations(tmp_path / "m", FILES)
    assert cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--to", "1").exit_code == 0
    execute(
        empty_db_url,
        "CREATE TABLE item_audit (what TEXT); INSERT INTO item VALUES (1, 'dup'), (2, 'dup')",
    )

    failed = cli("--db", empty_db_url, "--migrations-dir", str(mdir))
    assert failed.exit_code == 1
    assert "0002_unique_label.sql ✘: could not create unique index" in failed.stdout
    assert "(statement at line 4)" in failed.stdout
    assert "non-transactional" in failed.stderr and "a rerun resumes" in failed.stderr
    # what a failed CREATE INDEX CONCURRENTLY leaves behind: an INVALID index (IF NOT EXISTS would
    # skip it)
    assert (
        value(
            empty_db_url,
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'item_label_unique'::regclass",
        )
        is False
    )
    assert (
        value(
            empty_db_url, "SELECT statements_done FROM schema_migration_progress WHERE number = 2"
        )
        == 1
    )
    assert history(empty_db_url) == ["0001_items"]
    assert (
        "interrupted non-transactional migration: 0002_unique_label.sql (1 statement(s) done)"
        in cli("status", "--db", empty_db_url, "--migrations-dir", str(mdir)).stdout
    )

    execute(
        empty_db_url, "UPDATE item SET label = 'other' WHERE id = 2"
    )  # the operator fixes the data
    rerun = cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--json")
    assert rerun.exit_code == 0, rerun.output
    evs = [json.loads(line) for line in rerun.stdout.splitlines()]
    kinds = [e["event"] for e in evs]
    assert kinds.index("resume") < kinds.index("cleanup")
    assert next(e for e in evs if e["event"] == "resume")["statements_done"] == 1
    assert next(e for e in evs if e["event"] == "cleanup")["index"] == "item_label_unique"
    assert (
        value(
            empty_db_url,
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'item_label_unique'::regclass",
        )
        is True
    )
    # statement 1 was not run twice; statement 3 ran once
    assert [r for (r,) in _audit(empty_db_url)] == ["step 1 ran", "step 3 ran"]
    assert history(empty_db_url) == ["0001_items", "0002_unique_label"]
    assert value(empty_db_url, "SELECT count(*) FROM schema_migration_progress") == 0
    assert [e["kind"] for e in events(empty_db_url) if e["name"] == "0002_unique_label"] == [
        "fail",
        "resume",
        "cleanup",
        "apply",
    ]


def _audit(url: str) -> list[tuple[str]]:
    from migration_helpers import query

    return [tuple(r) for r in query(url, "SELECT what FROM item_audit")]


def test_valid_index_built_before_a_crash_is_not_rebuilt(empty_db_url: str, tmp_path: Path) -> None:
    """The index was built but the run died before recording it: the rerun skips the statement."""
    mdir = write_migrations(tmp_path / "m", BASIC)
    assert cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--to", "2").exit_code == 0
    execute(empty_db_url, "CREATE INDEX item_label ON item (label)")
    before = value(empty_db_url, "SELECT relfilenode FROM pg_class WHERE relname = 'item_label'")
    assert cli("--db", empty_db_url, "--migrations-dir", str(mdir)).exit_code == 0
    assert (
        value(empty_db_url, "SELECT relfilenode FROM pg_class WHERE relname = 'item_label'")
        == before
    )


def test_concurrent_index_on_a_table_being_written(empty_db_url: str, tmp_path: Path) -> None:
    mdir = write_migrations(tmp_path / "m", BASIC)
    assert cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--to", "2").exit_code == 0
    execute(
        empty_db_url, "INSERT INTO item SELECT g, md5(g::text) FROM generate_series(1, 20000) g"
    )
    result = cli("--db", empty_db_url, "--migrations-dir", str(mdir))
    assert result.exit_code == 0
    assert result.stdout.splitlines()[2].startswith("0003_item_label_index.sql ✔ (")
    assert value(
        empty_db_url, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'item_label'::regclass"
    )
