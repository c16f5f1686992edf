"""An index is skipped only when it is the index the migration specifies (issue 11, point 4).

`CREATE INDEX ... IF NOT EXISTS name` (and the resume of a non-transactional file) used to take any
relation called `name` for the finished index: a squatter made `migrate` record the step as applied
while the index it specifies did not exist.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from migration_helpers import BASIC, cli, execute, history, query, value, write_migrations

from parsec_server.exit_codes import Exit
from parsec_server.storage.migrations import lint, sqltext, verify

_UNTIL_0002 = "0002"


def _indexdef(url: str, name: str) -> str | None:
    return value(url, "SELECT pg_get_indexdef(to_regclass($1))", name)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("squatter", "what"),
    [
        ("CREATE INDEX block_realm_size ON block (realm)", "another definition"),
        ("CREATE UNIQUE INDEX block_realm_size ON block (id) INCLUDE (size)", "uniqueness"),
        (
            "CREATE INDEX block_realm_size ON block (realm) INCLUDE (size) WHERE size > 0",
            "another definition",
        ),
        ("CREATE INDEX block_realm_size ON block USING hash (realm)", "another definition"),
        ("CREATE TABLE block_realm_size (x INT)", "is a table, not an index"),
        ("CREATE INDEX block_realm_size ON vlob_atom (realm) INCLUDE (size)", "on vlob_atom"),
    ],
)
def test_shipped_0002_refuses_a_squatter(empty_db_url: str, squatter: str, what: str) -> None:
    assert cli("--db", empty_db_url, "--to", "1", "--no-backup").exit_code == 0
    execute(empty_db_url, squatter)
    before = _indexdef(empty_db_url, "block_realm_size")

    dry = cli("--db", empty_db_url, "--dry-run")  # answers what the real run will
    assert dry.exit_code == Exit.SCHEMA_CONFLICT, dry.output
    assert (
        "migrate would refuse: 0002_usage_size_indexes.sql: " in dry.stderr and what in dry.stderr
    )

    started = time.monotonic()
    res = cli("--db", empty_db_url, "--no-backup")
    took = time.monotonic() - started

    assert res.exit_code == Exit.SCHEMA_CONFLICT, res.output
    (line,) = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert line.startswith("error: 0002_usage_size_indexes.sql")
    assert "block_realm_size" in line and what in line
    assert history(empty_db_url) == ["0001_initial"]  # not recorded as applied
    assert _indexdef(empty_db_url, "block_realm_size") == before  # the squatter is left alone
    assert (
        value(empty_db_url, "SELECT count(*) FROM schema_migration_event WHERE kind = 'fail'") >= 1
    )
    print(f"squatter refused in {took * 1000:.0f} ms: {line}")

    # The operator removes it: the rerun resumes and builds the specified index.
    drop = "DROP TABLE" if "TABLE" in squatter else "DROP INDEX"
    execute(empty_db_url, f"{drop} block_realm_size")
    again = cli("--db", empty_db_url, "--no-backup")
    assert again.exit_code == 0, again.output
    assert history(empty_db_url)[:2] == ["0001_initial", "0002_usage_size_indexes"]
    assert _indexdef(empty_db_url, "block_realm_size") == (
        "CREATE INDEX block_realm_size ON public.block USING btree (realm) INCLUDE (size)"
    )


def test_shipped_0002_keeps_an_identical_index(empty_db_url: str) -> None:
    """An index built by hand exactly as specified (another name spelling of the same columns) is
    the finished step: skipped, not rebuilt."""
    assert cli("--db", empty_db_url, "--to", "1", "--no-backup").exit_code == 0
    execute(
        empty_db_url, "CREATE INDEX vlob_atom_realm_size ON public.vlob_atom (realm) INCLUDE (size)"
    )
    oid = value(empty_db_url, "SELECT 'vlob_atom_realm_size'::regclass::oid")
    res = cli("--db", empty_db_url, "--no-backup")
    assert res.exit_code == 0, res.output
    assert value(empty_db_url, "SELECT 'vlob_atom_realm_size'::regclass::oid") == oid


def test_an_invalid_index_of_another_definition_is_refused(
    empty_db_url: str, tmp_path: Path
) -> None:
    """An INVALID index is dropped and rebuilt only when it is the specified one."""
    files = {
        **{k: v for k, v in BASIC.items() if k.startswith("0001")},
        "0002_label.sql": (
            "-- compat: expand\n-- transaction: off\n"
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS item_label_u ON item (label);\n"
        ),
        "0002_label.down.sql": (
            "-- data-loss: no\n-- transaction: off\nDROP INDEX CONCURRENTLY IF EXISTS item_label_u;\n"
        ),
    }
    mdir = write_migrations(tmp_path / "m", files)
    assert cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--to", "1").exit_code == 0
    execute(empty_db_url, "INSERT INTO item VALUES (1, 'a'), (2, 'a')")
    # a half-done manual fix: an INVALID unique index with a predicate the migration does not have
    with pytest.raises(Exception, match="could not create unique index"):
        execute(
            empty_db_url,
            "CREATE UNIQUE INDEX CONCURRENTLY item_label_u ON item (label) WHERE id > 0",
        )
    execute(empty_db_url, "DELETE FROM item WHERE id = 2")
    res = cli("--db", empty_db_url, "--migrations-dir", str(mdir))
    assert res.exit_code == Exit.SCHEMA_CONFLICT, res.output
    assert "INVALID index" in res.stderr and "item_label_u" in res.stderr
    execute(empty_db_url, "DROP INDEX item_label_u")
    assert cli("--db", empty_db_url, "--migrations-dir", str(mdir)).exit_code == 0
    assert value(
        empty_db_url, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'item_label_u'::regclass"
    )


def test_transactional_if_not_exists_is_verified_too(empty_db_url: str, tmp_path: Path) -> None:
    files = {
        **{k: v for k, v in BASIC.items() if k.startswith("0001")},
        "0002_note.sql": (
            "-- compat: expand\n"
            "ALTER TABLE item ADD COLUMN note TEXT;\n"
            "CREATE INDEX IF NOT EXISTS item_note ON item (note) WHERE note IS NOT NULL;\n"
        ),
        "0002_note.down.sql": "-- data-loss: yes\nALTER TABLE item DROP COLUMN note;\n",
    }
    mdir = write_migrations(tmp_path / "m", files)
    assert cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--to", "1").exit_code == 0
    execute(empty_db_url, "CREATE INDEX item_note ON item (label)")
    res = cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--json")
    assert res.exit_code == Exit.SCHEMA_CONFLICT
    evs = [json.loads(line) for line in res.stdout.splitlines()]
    assert evs[-1]["event"] == "error" and evs[-1]["exit_code"] == Exit.SCHEMA_CONFLICT
    assert "WHERE (note IS NOT NULL)" in evs[-1]["message"]
    # rolled back as a whole: the column of the same step is not there
    assert value(empty_db_url, "SELECT to_regclass('item') IS NOT NULL")
    cols = value(
        empty_db_url, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'note'"
    )
    assert cols == 0
    fails = query(empty_db_url, "SELECT detail FROM schema_migration_event WHERE kind = 'fail'")
    assert len(fails) == 1 and "item_note" in json.loads(fails[0]["detail"])["error"]
    execute(empty_db_url, "DROP INDEX item_note")
    assert cli("--db", empty_db_url, "--migrations-dir", str(mdir)).exit_code == 0
    assert history(empty_db_url) == ["0001_items", "0002_note"]


def test_lint_refuses_if_not_exists_it_cannot_verify(tmp_path: Path) -> None:
    files = {
        "0001_a.sql": (
            "-- compat: breaking\n"
            "CREATE TABLE IF NOT EXISTS a (id INT);\n"
            "CREATE INDEX IF NOT EXISTS a_id ON a (id);\n"
        ),
        "0001_a.down.sql": "-- data-loss: yes\nDROP TABLE IF EXISTS a;\n",
        "0002_b.sql": (
            "-- compat: expand\n"
            "ALTER TABLE a ADD COLUMN IF NOT EXISTS b TEXT;\n"
            "CREATE SEQUENCE IF NOT EXISTS a_seq;\n"
            "CREATE SCHEMA IF NOT EXISTS extra;\n"
        ),
        "0002_b.down.sql": "-- data-loss: yes\nALTER TABLE a DROP COLUMN IF EXISTS b;\n",
    }
    mdir = write_migrations(tmp_path / "m", files)
    found = [(f.file, f.line, f.rule) for f in lint.lint(mdir) if f.severity == "error"]
    assert ("0001_a.sql", 2, "unverified-if-not-exists") in found
    assert ("0002_b.sql", 2, "unverified-if-not-exists") in found
    assert ("0002_b.sql", 3, "unverified-if-not-exists") in found
    assert ("0002_b.sql", 4, "unverified-if-not-exists") in found
    assert not [f for f in found if f[1] == 3 and f[0] == "0001_a.sql"]  # verified by the engine
    res = cli("lint", str(mdir))
    assert res.exit_code == Exit.MIGRATION_FAILED
    assert "[unverified-if-not-exists]" in res.stdout


def test_shipped_migrations_pass_lint() -> None:
    assert [f for f in lint.lint() if f.severity == "error"] == []


def test_verify_finds_a_squatter_an_older_run_recorded(db_url: str) -> None:
    """What an older parsec-server left: 0002 recorded as applied over a squatter index."""
    ok = cli("verify", "--db", db_url)
    assert ok.exit_code == 0, ok.output
    assert "is the reference schema of this release" in ok.stdout

    execute(db_url, "DROP INDEX block_realm_size; CREATE INDEX block_realm_size ON block (realm)")
    res = cli("verify", "--db", db_url)
    assert res.exit_code == Exit.SCHEMA_CONFLICT
    assert "-CREATE INDEX block_realm_size ON public.block USING btree (realm) INCLUDE (size);" in (
        res.stdout
    )
    assert "+CREATE INDEX block_realm_size ON public.block USING btree (realm);" in res.stdout
    (line,) = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert "differs from the reference schema" in line
    doc = json.loads(cli("verify", "--db", db_url, "--json").stdout.splitlines()[0])
    assert doc["identical"] is False and len(doc["diff"]) > 2


def test_verify_refuses_a_database_with_pending_migrations(empty_db_url: str) -> None:
    assert cli("--db", empty_db_url, "--to", "1", "--no-backup").exit_code == 0
    res = cli("verify", "--db", empty_db_url)
    assert res.exit_code == Exit.SCHEMA_NOT_READY and "migrate first" in res.stderr


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("CREATE INDEX CONCURRENTLY ON t (a)", None),  # no name: nothing to verify
        ("CREATE INDEX ON t (a)", None),
        (
            'create unique index concurrently if not exists "My Ix" on public."T" using gin (a)',
            ('"My Ix"', "My Ix", 'public."T"', True, True, True, " using gin (a)"),
        ),
        (
            "CREATE INDEX x ON ONLY p (a) WHERE a > 0",
            ("x", "x", "p", False, False, False, " (a) WHERE a > 0"),
        ),
    ],
)
def test_index_statements_are_parsed(sql: str, expected: tuple[object, ...] | None) -> None:
    (st,) = sqltext.split(sql)
    ix = verify.parse_index(st)
    got = ix and (
        ix.name,
        ix.relname,
        ix.table,
        ix.unique,
        ix.if_not_exists,
        ix.concurrently,
        ix.rest,
    )
    assert got == expected
