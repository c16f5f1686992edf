"""CLI surface: status, JSON output, --to, registration, help."""

from __future__ import annotations

import json
import re
from pathlib import Path

from migration_helpers import cli, events, history

from parsec_server.exit_codes import Exit


def test_migrate_prints_lines_with_durations_and_a_summary(empty_db_url: str, mdir: Path) -> None:
    first = cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--to", "0002")
    assert first.exit_code == 0
    assert [re.sub(r"\(\d+ ms\)", "(N ms)", line) for line in first.stdout.splitlines()] == [
        "0001_items.sql ✔ (N ms)",
        "0002_item_note.sql ✔ (N ms)",
        "Applied 2 migration(s); 0 were already applied.",
    ]
    second = cli("--db", empty_db_url, "--migrations-dir", str(mdir))
    assert second.stdout.splitlines()[:2] == [
        "0001_items.sql (already applied)",
        "0002_item_note.sql (already applied)",
    ]
    assert second.stdout.splitlines()[-1] == "Applied 1 migration(s); 2 were already applied."
    third = cli("--db", empty_db_url, "--migrations-dir", str(mdir))
    assert third.stdout.splitlines()[-1] == "Nothing to do: 3 migration(s) already applied."


def test_json_lines_output(empty_db_url: str, mdir: Path) -> None:
    result = cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--json")
    evs = [json.loads(line) for line in result.stdout.splitlines()]
    migrations = [e for e in evs if e["event"] == "migration"]
    assert [(e["name"], e["state"]) for e in migrations] == [
        ("0001_items.sql", "applied"),
        ("0002_item_note.sql", "applied"),
        ("0003_item_label_index.sql", "applied"),
    ]
    assert all(isinstance(e["duration_ms"], int) and len(e["checksum"]) == 64 for e in migrations)
    assert evs[-1]["event"] == "summary" and evs[-1]["applied"] == [e["name"] for e in migrations]
    assert result.stderr == ""


def test_status_shows_history(empty_db_url: str, mdir: Path) -> None:
    assert cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--to", "2").exit_code == 0
    text = cli("status", "--db", empty_db_url, "--migrations-dir", str(mdir)).stdout
    lines = text.splitlines()
    assert lines[1].split() == [
        "MIGRATION",
        "STATE",
        "APPLIED",
        "ON",
        "(UTC)",
        "TOOK",
        "BY",
        "VERSION",
        "COMPAT",
        "NOTES",
    ]
    assert re.match(
        r"^0001_items\.sql +applied +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +\d+ms +\S+ +breaking$",
        lines[2],
    )
    assert re.match(r"^0003_item_label_index\.sql +pending +expand$", lines[4])
    assert lines[5] == "2 applied, 1 pending"
    report = json.loads(
        cli("status", "--db", empty_db_url, "--migrations-dir", str(mdir), "--json").stdout
    )
    assert [m["state"] for m in report["migrations"]] == ["applied", "applied", "pending"]
    assert [e["kind"] for e in report["recent_events"]] == ["apply", "apply"]
    # group-level options are inherited by subcommands
    assert cli("--db", empty_db_url, "--migrations-dir", str(mdir), "status").exit_code == 0


def test_to_moves_down_and_up(empty_db_url: str, mdir: Path) -> None:
    assert cli("--db", empty_db_url, "--migrations-dir", str(mdir)).exit_code == 0
    down = cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--to", "0001")
    assert down.exit_code == Exit.DATA_LOSS_REFUSED and history(empty_db_url) == [
        "0001_items",
        "0002_item_note",
        "0003_item_label_index",
    ]  # refused before doing anything (0003 is lossless, 0002 is not)
    assert len(down.stderr.splitlines()) == 1
    down = cli(
        "--db", empty_db_url, "--migrations-dir", str(mdir), "--to", "1", "--allow-data-loss"
    )
    assert down.exit_code == 0
    assert down.stdout.splitlines()[-1] == "Reverted 2 migration(s); 1 stay applied."
    assert history(empty_db_url) == ["0001_items"]
    assert (
        cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--to", "9").exit_code
        == Exit.USAGE  # no such migration: bad usage (docs/cli.md)
    )
    assert (
        cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--to", "x").exit_code
        == Exit.USAGE
    )


def test_lint_command(tmp_path: Path) -> None:
    ok = cli("lint")
    assert ok.exit_code == 0 and ok.stdout.strip() == "0 error(s), 0 warning(s)"
    (tmp_path / "0001_a.sql").write_text("-- compat: breaking\nCREATE TABLE a (id INT);\n")
    (tmp_path / "0001_a.down.sql").write_text("-- data-loss: yes\nDROP TABLE a;\n")
    (tmp_path / "0002_b.sql").write_text("-- compat: expand\nCREATE INDEX a_id ON a (id);\n")
    (tmp_path / "0002_b.down.sql").write_text("-- data-loss: no\nDROP INDEX a_id;\n")
    bad = cli("lint", str(tmp_path))
    assert bad.exit_code == 1
    assert "0002_b.sql:2: error [index-not-concurrent]" in bad.stdout
    assert "0002_b.down.sql:2: warning [drop-index-not-concurrent]" in bad.stdout
    findings = json.loads(cli("lint", str(tmp_path), "--json").stdout)["findings"]
    assert {f["rule"] for f in findings} == {"index-not-concurrent", "drop-index-not-concurrent"}


def test_invalid_migration_files_are_reported(empty_db_url: str, tmp_path: Path) -> None:
    (tmp_path / "0002_gap.sql").write_text("SELECT 1;")
    result = cli("--db", empty_db_url, "--migrations-dir", str(tmp_path), "--dry-run")
    assert result.exit_code == Exit.MIGRATION_FAILED and "missing 0001" in result.stderr


def test_help_documents_json_and_exit_codes() -> None:
    text = cli("--help").stdout
    assert (
        "JSON Lines" in text
        and "Exit codes" in text
        and "--lock-wait" in text
        and "--allow-data-loss" in text
    )


def test_registered_in_the_main_cli() -> None:
    from parsec_server.cli import main

    assert main.cli.commands["migrate"].name == "migrate"
    assert set(main.cli.commands["migrate"].commands) == {  # type: ignore[attr-defined]
        "status",
        "repair",
        "lint",
        "dump-schema",
        "verify",
        "drop-official",
    }


def test_every_engine_failure_has_its_exit_code() -> None:
    """The engine says what went wrong (a kind); the CLI alone decides the exit code."""
    from parsec_server.cli.migrate.common import EXIT_FOR
    from parsec_server.storage.migrations.errors import Failure

    assert set(EXIT_FOR) == set(Failure)
    assert EXIT_FOR[Failure.SCHEMA_CONFLICT] == Exit.SCHEMA_CONFLICT == 13


def test_backup_before_changing_an_existing_database(
    empty_db_url: str, mdir: Path, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    first = cli(
        "--db",
        empty_db_url,
        "--migrations-dir",
        str(mdir),
        "--to",
        "1",
        "--backup-dir",
        str(backups),
    )
    assert first.exit_code == 0 and not backups.exists()  # brand-new database: nothing to back up

    result = cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--backup-dir", str(backups))
    assert result.exit_code == 0, result.output
    (made,) = backups.iterdir()
    assert made.name.startswith("pre-migrate-") and made.name.endswith("-0001_items")
    assert json.loads((made / "metadata.json").read_text())["schema_version"] == "0001_items"
    assert f"backup of the database before migrating: {made}" in result.stderr
    (event,) = [e for e in events(empty_db_url) if e["kind"] == "backup"]
    assert json.loads(event["detail"])["path"] == str(made)

    nothing = cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--backup-dir", str(backups))
    assert (
        nothing.exit_code == 0 and len(list(backups.iterdir())) == 1
    )  # nothing to apply: no backup


def test_failed_backup_applies_nothing(empty_db_url: str, mdir: Path, tmp_path: Path) -> None:
    assert cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--to", "1").exit_code == 0
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    result = cli(
        "--db", empty_db_url, "--migrations-dir", str(mdir), "--backup-dir", str(not_a_dir / "b")
    )
    assert result.exit_code == Exit.BACKUP_FAILED
    assert result.stderr.startswith(
        "error: the backup before migrating failed, nothing was applied"
    )
    assert history(empty_db_url) == ["0001_items"]
    # Without --backup-dir: a backup all the same, in the default directory (the test run's
    # PARSEC_BACKUP_DIR, tests/conftest.py; for operators DATA_DIR/backups).
    defaulted = cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--to", "2")
    assert defaulted.exit_code == 0, defaulted.output
    assert "backup of the database before migrating" in defaulted.stderr
    loud = cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--no-backup")
    assert (
        loud.exit_code == 0
        and "warning: --no-backup: NO BACKUP taken before migrating" in loud.stderr
    )
