"""`parsec-server migrate` on a database of the official Parsec server (issue 13, stage 1:
detection). The official database is made by the official server's own `parsec migrate` (3.9.3, from
.venv-compat; skipped without it). Every test checks that nothing in the database changed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from adoption_support import (
    COMPAT_BIN,
    RELATIONS,
    REPO,
    cli_env,
    execute,
    migrate,
    need_compat,
    query,
)

from parsec_server.storage.adoption import OFFICIAL_MIGRATIONS_3_9

OURS = sorted(
    p.name
    for p in (REPO / "src" / "parsec_server" / "storage" / "migrations").glob(
        "[0-9][0-9][0-9][0-9]_*.sql"
    )
    if not p.name.endswith(".down.sql")
)


def _official(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    need_compat()
    return subprocess.run(
        [str(COMPAT_BIN / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
        env=cli_env(),
    )


def _snapshot(url: str) -> tuple[object, ...]:
    """The relations and the official migration history: what a dry run must leave as it was."""
    history = query(url, "SELECT _id, name, applied FROM migration ORDER BY _id")
    return query(url, RELATIONS), history


def test_dry_run_prints_both_lineages_in_the_guide_format(official_url: str) -> None:
    before = _snapshot(official_url)
    res = migrate(official_url, "--dry-run")
    lines = res.stdout.splitlines()
    assert lines[0].startswith("Dry run on ")
    assert lines[1].startswith("Lineage of the official Parsec server 3.9.x (table `migration`)")
    official = lines[2 : 2 + len(OFFICIAL_MIGRATIONS_3_9)]
    assert official == [f"{n} (already applied)" for n in OFFICIAL_MIGRATIONS_3_9]
    rest = lines[2 + len(OFFICIAL_MIGRATIONS_3_9) :]
    assert rest[0].startswith("Lineage of parsec-server (table `schema_migration`)")
    assert rest[1 : 1 + len(OURS)] == [f"{n} ✔" for n in OURS]
    moved = rest[1 + len(OURS)]
    assert moved.startswith(
        "Official tables (rows) whose names parsec-server's schema uses, to be moved to schema "
        "`parsec_official` by the adoption, never dropped: "
    ), res.stdout
    for table in ("organization (0)", "user_ (0)", "vlob_atom (0)", "block (0)"):
        assert table in moved
    assert "migration (" not in moved
    assert rest[2 + len(OURS)] == f"{len(OURS)} to apply, 24 already applied"
    # the dry run exits with the code the real run would: 0, the adoption applies
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    assert _snapshot(official_url) == before


def test_dry_run_json_names_the_lineage_of_each_line(official_url: str) -> None:
    res = migrate(official_url, "--dry-run", "--json")
    events = [json.loads(line) for line in res.stdout.splitlines()]
    migrations = [e for e in events if e["event"] == "migration"]
    assert [(e["name"], e["lineage"]) for e in migrations] == [
        (n, "official") for n in OFFICIAL_MIGRATIONS_3_9
    ] + [(n, "parsec-server") for n in OURS]
    (tables,) = [e["tables"] for e in events if e["event"] == "official_tables"]
    by_name = {t["name"]: t for t in tables}
    assert by_name["vlob_atom"] == {
        "name": "vlob_atom",
        "rows": 0,
        "collides": True,
        "unserved": False,
    }
    # this release converts every official table (accounts, TOTP, async enrollment included)
    assert not [t["name"] for t in tables if t["unserved"]]
    assert by_name["account"]["collides"] and by_name["async_enrollment"]["collides"]
    assert not by_name["migration"]["collides"]
    assert events[-1]["event"] == "summary" and events[-1]["dry_run"]
    assert events[-1]["adoption"] == {"official_schema": "parsec_official"}
    assert res.returncode == 0


def test_official_server_still_sees_its_database_after_a_dry_run(official_url: str) -> None:
    before = _snapshot(official_url)
    assert migrate(official_url, "--dry-run").returncode == 0
    assert _snapshot(official_url) == before
    out = _official("parsec", "migrate", "--db", official_url, "--dry-run").stdout
    assert "0024_rename_minimum_archiving_period.sql (already applied)" in out


def test_older_official_level_says_to_upgrade_to_3_9_first(pg_cluster: Any) -> None:
    name = pg_cluster.create_database()
    url = pg_cluster.url_for(name)
    try:
        code = (
            "import asyncio, sys\n"
            "from parsec.components.postgresql import apply_migrations, retrieve_migrations\n"
            "r = asyncio.run(apply_migrations(sys.argv[1], retrieve_migrations()[:12], False))\n"
            "assert r.error is None, r.error\n"
        )
        _official("python", "-c", code, url)
        before = _snapshot(url)
        for args in (["--dry-run"], ["--no-backup"]):
            res = migrate(url, *args)
            assert res.returncode == 17, res.stderr
            assert res.stderr.strip() == res.stderr.strip().splitlines()[0]
            assert "0012_allowed_client_agent_and_account_vault_strategy.sql" in res.stderr
            assert "upgrade it to the official Parsec server 3.9.x first" in res.stderr
            assert "(already applied)" not in res.stdout
        assert _snapshot(url) == before
    finally:
        pg_cluster.drop_database(name)


def test_newer_official_level_is_refused(official_url: str) -> None:
    # what 3.10's migrate leaves in the history table after its two migrations
    execute(
        official_url,
        "INSERT INTO migration (_id, name, applied) VALUES"
        " (25, 'a_3_10_change', now()), (26, 'another_3_10_change', now())",
    )
    before = _snapshot(official_url)
    res = migrate(official_url, "--dry-run")
    assert res.returncode == 17
    assert "newer than 3.9.x" in res.stderr and "0025_a_3_10_change.sql" in res.stderr
    assert _snapshot(official_url) == before


def test_2x_official_level_is_refused(empty_db_url: str) -> None:
    # the history table of a Parsec 2.x database (its numbering restarted with 3.0)
    execute(
        empty_db_url,
        "CREATE TABLE migration (_id INTEGER PRIMARY KEY, name VARCHAR(256) NOT NULL UNIQUE,"
        " applied TIMESTAMPTZ NOT NULL);"
        " INSERT INTO migration VALUES (1, 'initial', now()), (2, 'add_migration_table', now()),"
        " (3, 'human_handle', now())",
    )
    res = migrate(empty_db_url)
    assert res.returncode == 17
    assert "official Parsec server 2.x database" in res.stderr
    assert "then to 3.9.x" in res.stderr
    assert "Traceback" not in res.stderr


def test_our_own_database_is_not_taken_for_an_official_one(db_url: str) -> None:
    res = migrate(db_url, "--dry-run")
    assert res.returncode == 0, res.stderr
    assert "Lineage of" not in res.stdout


def test_the_docs_sample_is_what_the_dry_run_prints(official_url: str) -> None:
    page = REPO / "docs" / "switching-from-official.md"
    text = page.read_text()
    start = text.index("```\nLineage of the official")
    sample = text[start + 4 : text.index("```", start + 4)].splitlines()
    res = migrate(official_url, "--dry-run")
    printed = res.stdout.splitlines() + res.stderr.splitlines()
    shown = [line for line in sample if line != "..." and not line.startswith("Official tables")]
    (moved,) = [line for line in sample if line.startswith("Official tables")]
    assert any(line.startswith(moved.split(": ")[0] + ": ") for line in printed)
    assert shown == [line for line in printed if line in shown]
    assert set(shown) <= set(printed)


def test_dry_run_names_official_data_we_do_not_serve(official_url: str, tmp_path: Path) -> None:
    """A release without the account tables (here: our migrations 0001-0003 only) names the
    official accounts it would leave in parsec_official."""
    source = REPO / "src" / "parsec_server" / "storage" / "migrations"
    older = tmp_path / "migrations"
    older.mkdir()
    for f in source.glob("000[1-3]_*.sql"):
        (older / f.name).write_text(f.read_text())
    execute(
        official_url,
        "INSERT INTO account (email, human_handle_label) VALUES ('a@example.com', 'A'),"
        " ('b@example.com', 'B')",
    )
    before = _snapshot(official_url)
    res = migrate(official_url, "--dry-run", "--migrations-dir", str(older))
    assert res.returncode == 0, res.stderr
    warnings = [line for line in res.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1, res.stderr
    assert "features parsec-server does not serve" in warnings[0]
    assert "account (2 rows)" in warnings[0] and "vault (" not in warnings[0]
    assert _snapshot(official_url) == before
    # the whole release converts them: no warning
    res = migrate(official_url, "--dry-run")
    assert res.returncode == 0 and "warning: " not in res.stderr, res.stderr


def test_status_shows_the_official_history(official_url: str) -> None:
    before = _snapshot(official_url)
    res = migrate(official_url, "status")
    assert res.returncode == 0, res.stderr
    line = res.stdout.splitlines()[1]
    assert line.startswith(
        "Official Parsec server history (table `migration`): 24 official migration(s), last "
        "0024_rename_minimum_archiving_period.sql: an official Parsec server 3.9.x database, "
        "not adopted"
    )
    report = json.loads(migrate(official_url, "status", "--json").stdout)
    assert report["official"]["level"] == "3.9"
    assert report["official"]["applied"] == list(OFFICIAL_MIGRATIONS_3_9)
    # subcommands that would write refuse without touching anything
    res = migrate(official_url, "repair", "0001")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert _snapshot(official_url) == before


def test_status_of_our_database_has_no_official_part(db_url: str) -> None:
    res = migrate(db_url, "status", "--json")
    assert res.returncode == 0, res.stderr
    assert "official" not in json.loads(res.stdout)
