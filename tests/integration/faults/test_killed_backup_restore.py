"""`backup`, `restore` and `migrate` killed with SIGKILL while their pg_dump / pg_restore runs leave
nothing behind (issue 11, point 5): the child dies with its parent, the next run removes the partial
backup and says so, and a restore is all-or-nothing, so that rerunning it succeeds.

The children are made to be running when the kill comes, without big data: a test session holds a
lock pg_dump waits for, and the restored table has a CHECK constraint that is slow under pg_restore.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from killed_support import (
    Session,
    descendants,
    execute,
    kill9,
    run,
    sessions,
    spawn,
    survivors,
    terminate,
    value,
    wait_until,
)

from parsec_server.backup import clean_partial_backups

ROWS = 200

# pg_restore runs this once per row (10 ms): a restore takes ~2 s, a window to kill it in. Only under
# pg_restore (its application_name), so that filling the source database is fast.
SLOW_TABLE = f"""
CREATE FUNCTION public.slow_under_restore(i int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('application_name') = 'pg_restore' THEN
        PERFORM pg_sleep(0.01);
    END IF;
    RETURN i IS NOT NULL;
END $$;
CREATE TABLE public.filler (i int CHECK (public.slow_under_restore(i)), note text);
INSERT INTO public.filler SELECT g, repeat(md5(g::text), 10) FROM generate_series(1, {ROWS}) g;
"""


@pytest.fixture
def source(empty_db_url: str) -> str:
    execute(empty_db_url, SLOW_TABLE)
    return empty_db_url


@pytest.fixture
def blocker(source: str) -> Iterator[Session]:
    s = Session(source)
    yield s
    s.close()


def _partials(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".partial-" in p.name)


def test_backup_killed_during_pg_dump(source: str, blocker: Session, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    blocker.execute("BEGIN; LOCK TABLE public.filler IN ACCESS EXCLUSIVE MODE")
    proc = spawn("backup", "--db", source, "--output", str(backups / "b1"), log_dir=tmp_path)
    children: dict[int, str] = {}
    try:
        children = wait_until(
            "pg_dump waiting for the lock",
            lambda: (
                {p: n for p, n in descendants(proc.pid).items() if n == "pg_dump"}
                if any(s["wait_event_type"] == "Lock" for s in sessions(source, "pg_dump"))
                else None
            ),
        )
        kill9(proc)
        left = survivors(children)
    finally:
        terminate(children)
    print(f"backup killed: {len(children)} child(ren) before, {len(left)} alive after")
    assert left == {}, f"children outlived the killed backup: {left}"
    assert len(_partials(backups)) == 1  # what the kill left
    blocker.execute("ROLLBACK")
    wait_until("no pg_dump session", lambda: not sessions(source, "pg_dump"), timeout=10)

    again = run("backup", "--db", source, "--output", str(backups / "b1"), "--json")
    assert again.returncode == 0, again.stderr
    assert "removed 1 partial backup(s) left by an interrupted run" in again.stderr
    doc = json.loads(again.stdout)
    assert len(doc["cleaned"]) == 1 and ".b1.partial-" in doc["cleaned"][0]
    assert _partials(backups) == [] and (backups / "b1" / "metadata.json").is_file()


def test_a_running_backup_is_not_cleaned_by_another(
    source: str, blocker: Session, tmp_path: Path
) -> None:
    """Only partial backups whose writer is dead are removed: a live one is left alone."""
    backups = tmp_path / "backups"
    logs = [tmp_path / "log1", tmp_path / "log2"]
    for d in logs:
        d.mkdir()
    blocker.execute("BEGIN; LOCK TABLE public.filler IN ACCESS EXCLUSIVE MODE")
    procs = []
    try:
        procs.append(
            spawn("backup", "--db", source, "--output", str(backups / "a"), log_dir=logs[0])
        )
        wait_until("first pg_dump", lambda: len(sessions(source, "pg_dump")) == 1)
        procs.append(
            spawn("backup", "--db", source, "--output", str(backups / "b"), log_dir=logs[1])
        )
        # its pg_dump runs: it has looked for partial backups already
        wait_until("second pg_dump", lambda: len(sessions(source, "pg_dump")) == 2)
        assert len(_partials(backups)) == 2
    finally:
        blocker.execute("ROLLBACK")
        codes = [p.wait(60) for p in procs]
    assert codes == [0, 0], [(d / "stderr").read_text() for d in logs]
    assert "removed" not in (logs[1] / "stderr").read_text()
    assert sorted(p.name for p in backups.iterdir()) == ["a", "b"]


def test_restore_killed_during_pg_restore_leaves_the_target_untouched(
    source: str, db_factory_url: str, tmp_path: Path
) -> None:
    made = run("backup", "--db", source, "--output", str(tmp_path / "b"))
    assert made.returncode == 0, made.stderr
    target = db_factory_url

    proc = spawn("restore", "--db", target, str(tmp_path / "b"), log_dir=tmp_path)
    children: dict[int, str] = {}
    try:
        children = wait_until(
            "pg_restore copying rows",
            lambda: (
                {p: n for p, n in descendants(proc.pid).items() if n == "pg_restore"}
                if any(
                    (s["query"] or "").startswith("COPY") for s in sessions(target, "pg_restore")
                )
                else None
            ),
        )
        kill9(proc)
        left = survivors(children)
    finally:
        terminate(children)
    print(f"restore killed: {len(children)} child(ren) before, {len(left)} alive after")
    assert left == {}, f"children outlived the killed restore: {left}"
    wait_until("no pg_restore session", lambda: not sessions(target, "pg_restore"), timeout=15)
    # --single-transaction: nothing of the killed restore stays
    assert value(target, "SELECT to_regclass('public.filler')") is None

    again = run("restore", "--db", target, str(tmp_path / "b"))
    assert again.returncode == 0, again.stderr
    assert value(target, "SELECT count(*) FROM public.filler") == ROWS


@pytest.fixture
def db_factory_url(pg_cluster: Any) -> Iterator[str]:
    name = pg_cluster.create_database()
    try:
        yield str(pg_cluster.url_for(name))
    finally:
        pg_cluster.drop_database(name)


def test_partial_backups_without_a_lock_file_are_removed_once_old(tmp_path: Path) -> None:
    """A partial directory without `.lock` (left by an older parsec-server, or caught between its
    creation and its lock) is removed only once it is clearly abandoned."""
    old = tmp_path / ".nightly.partial-0123abcd"
    young = tmp_path / ".other.partial-89abcdef"
    unrelated = tmp_path / ".nightly.partial-notours"
    for d in (old, young, unrelated):
        d.mkdir()
        (d / "database.dump").write_bytes(b"x")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    os.utime(unrelated, (an_hour_ago, an_hour_ago))
    assert clean_partial_backups(tmp_path) == [old]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([young.name, unrelated.name])
