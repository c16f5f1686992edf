"""`migrate` killed with SIGKILL (issue 11, points 5 and 7): during the backup it takes first, its
pg_dump dies with it and the next run removes the partial backup and says so; during a downgrade
(`--to`), each step is all-or-nothing, the migration lock is freed, and the rerun finishes the job.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from killed_support import (
    Session,
    descendants,
    kill9,
    query,
    run,
    sessions,
    spawn,
    survivors,
    terminate,
    value,
    wait_until,
)

from parsec_server.storage.migrations import engine


def _history(url: str) -> list[str]:
    return [r["name"] for r in query(url, "SELECT name FROM schema_migration ORDER BY number")]


@pytest.fixture
def blocker(empty_db_url: str) -> Iterator[Session]:
    s = Session(empty_db_url)
    yield s
    s.close()


def test_migrate_killed_during_its_backup(
    empty_db_url: str, blocker: Session, tmp_path: Path
) -> None:
    url = empty_db_url
    first = run("migrate", "--db", url, "--to", "1", "--no-backup")
    assert first.returncode == 0, first.stderr
    backups = tmp_path / "backups"
    blocker.execute("BEGIN; LOCK TABLE organization IN ACCESS EXCLUSIVE MODE")
    proc = spawn("migrate", "--db", url, "--backup-dir", str(backups), log_dir=tmp_path)
    children: dict[int, str] = {}
    try:
        children = wait_until(
            "the pre-migrate pg_dump waiting for the lock",
            lambda: (
                {p: n for p, n in descendants(proc.pid).items() if n == "pg_dump"}
                if any(s["wait_event_type"] == "Lock" for s in sessions(url, "pg_dump"))
                else None
            ),
        )
        kill9(proc)
        left = survivors(children)
    finally:
        terminate(children)
        blocker.execute("ROLLBACK")
    print(f"migrate killed in its backup: {len(children)} child(ren), {len(left)} alive after")
    assert left == {}, f"children outlived the killed migrate: {left}"
    partial = [p.name for p in backups.iterdir()]
    assert len(partial) == 1 and partial[0].startswith(".pre-migrate-"), partial
    assert _history(url) == ["0001_initial"]  # nothing applied

    again = run("migrate", "--db", url, "--backup-dir", str(backups), "--json")
    assert again.returncode == 0, again.stderr
    evs = [json.loads(line) for line in again.stdout.splitlines()]
    cleanup = [e for e in evs if e["event"] == "cleanup" and e["name"] == "backup"]
    assert len(cleanup) == 1 and partial[0] in cleanup[0]["message"]
    assert [p.name for p in backups.iterdir() if ".partial-" in p.name] == []
    assert _history(url)[-1] == engine.discover()[-1].name
    human = run(  # 0004+ drop tables when reverted (empty here, declared data-loss: yes)
        "migrate", "--db", url, "--backup-dir", str(backups), "--to", "1", "--allow-data-loss"
    )
    assert human.returncode == 0 and "removed" not in human.stderr  # nothing left to clean


FILES = {
    "0001_items.sql": (
        "-- compat: breaking\nCREATE TABLE item (id INT PRIMARY KEY, label TEXT NOT NULL);\n"
        "INSERT INTO item VALUES (1, 'one'), (2, 'two');\n"
    ),
    "0001_items.down.sql": "-- data-loss: yes\nDROP TABLE item;\n",
    "0002_tags.sql": "-- compat: expand\nCREATE TABLE tag (name TEXT);\n",
    "0002_tags.down.sql": (
        "-- data-loss: yes\nUPDATE item SET label = 'reverted';\nDROP TABLE tag;\n"
    ),
    "0003_item_label.sql": (
        "-- compat: expand\n-- transaction: off\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS item_label ON item (label);\n"
    ),
    "0003_item_label.down.sql": (
        "-- data-loss: no\n-- transaction: off\nDROP INDEX CONCURRENTLY IF EXISTS item_label;\n"
    ),
}


def test_downgrade_killed_midway_is_all_or_nothing(
    empty_db_url: str, blocker: Session, tmp_path: Path
) -> None:
    url = empty_db_url
    mdir = tmp_path / "migrations"
    mdir.mkdir()
    for name, text in FILES.items():
        (mdir / name).write_text(text)
    common = ["--db", url, "--migrations-dir", str(mdir), "--no-backup"]
    assert run("migrate", *common).returncode == 0
    assert _history(url) == ["0001_items", "0002_tags", "0003_item_label"]

    # 0003's down step runs; 0002's waits for the lock on `tag`, after its UPDATE of `item`
    blocker.execute("BEGIN; SELECT * FROM tag")
    proc = spawn(
        "migrate", *common, "--to", "1", "--allow-data-loss", "--lock-timeout", "60s",
        log_dir=tmp_path,
    )  # fmt: skip
    try:
        wait_until(
            "the down step of 0002 waiting for its lock",
            lambda: any(
                s["wait_event_type"] == "Lock" and "DROP TABLE tag" in (s["query"] or "")
                for s in sessions(url, "parsec-server migrate %")
            ),
        )
        kill9(proc)
        # the backend notices its client is gone (client_connection_check_interval) and rolls back
        wait_until(
            "the killed run's sessions to end",
            lambda: not sessions(url, "parsec-server migrate %"),
            timeout=15,
        )
    finally:
        blocker.execute("ROLLBACK")
    assert _history(url) == ["0001_items", "0002_tags"]  # 0003 reverted, 0002 whole
    assert value(url, "SELECT to_regclass('item_label')") is None
    assert value(url, "SELECT to_regclass('tag')") is not None
    assert [r["label"] for r in query(url, "SELECT label FROM item ORDER BY id")] == ["one", "two"]
    assert value(url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0

    again = run("migrate", *common, "--to", "1", "--allow-data-loss")
    assert again.returncode == 0, again.stderr
    assert _history(url) == ["0001_items"]
    assert value(url, "SELECT to_regclass('tag')") is None
    assert [r["label"] for r in query(url, "SELECT label FROM item")] == ["reverted", "reverted"]
