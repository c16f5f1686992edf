"""check_for_serving (server start-up) and the compatibility window between releases."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
from migration_helpers import BASIC, cli, history, write_migrations

from parsec_server.cli.migrate import exit_code_for
from parsec_server.exit_codes import Exit
from parsec_server.storage.migrations import engine
from parsec_server.storage.migrations.errors import DatabaseAhead, SchemaNotReady

V2 = {
    **BASIC,
    "0004_item_tags.sql": (
        "-- compat: expand\nCREATE TABLE item_tag (item INT REFERENCES item (id), tag TEXT);\n"
    ),
    "0004_item_tags.down.sql": "-- data-loss: yes\nDROP TABLE item_tag;\n",
    "0005_drop_note.sql": "-- compat: breaking\nALTER TABLE item DROP COLUMN note;\n",
    "0005_drop_note.down.sql": "-- data-loss: no\nALTER TABLE item ADD COLUMN note TEXT;\n",
}


def check(url: str, source: Path | None = None) -> list[str]:
    async def go() -> list[str]:
        conn = await asyncpg.connect(url)
        try:
            return await engine.check_for_serving(conn, source=source)
        finally:
            await conn.close()

    return asyncio.run(go())


def test_fully_migrated_database_serves_without_warning(db_url: str) -> None:
    assert check(db_url) == []


def test_pending_migrations_refuse_to_serve(empty_db_url: str, mdir: Path) -> None:
    with pytest.raises(SchemaNotReady) as info:
        check(empty_db_url, mdir)  # brand-new database: everything pending, and nothing created
    assert exit_code_for(info.value) == Exit.SCHEMA_NOT_READY
    assert info.value.pending == [
        "0001_items.sql",
        "0002_item_note.sql",
        "0003_item_label_index.sql",
    ]
    assert "parsec-server migrate --dry-run" in str(
        info.value
    ) and "then `parsec-server migrate`" in str(info.value)
    assert "\n" not in str(info.value)
    assert history(empty_db_url) == []
    assert cli("--db", empty_db_url, "--migrations-dir", str(mdir), "--to", "2").exit_code == 0
    with pytest.raises(
        SchemaNotReady, match=r"needs 1 migration\(s\) \(0003_item_label_index.sql\)"
    ):
        check(empty_db_url, mdir)


def test_compatibility_window(empty_db_url: str, tmp_path: Path) -> None:
    new = write_migrations(tmp_path / "new", V2)
    old = write_migrations(tmp_path / "old", BASIC)  # the previous release
    assert cli("--db", empty_db_url, "--migrations-dir", str(new), "--to", "4").exit_code == 0

    # 0004 is `expand`: the previous release still runs, with a warning
    (warning,) = check(empty_db_url, old)
    assert "0004_item_tags.sql" in warning and "newer" in warning
    ok = cli("--db", empty_db_url, "--migrations-dir", str(old))
    assert ok.exit_code == 0 and "0004_item_tags.sql (unknown to this release" in ok.stdout
    assert "warning: the database schema is newer" in ok.stderr

    # 0005 is `breaking`: the previous release refuses, naming it
    assert cli("--db", empty_db_url, "--migrations-dir", str(new)).exit_code == 0
    with pytest.raises(DatabaseAhead) as info:
        check(empty_db_url, old)
    assert exit_code_for(info.value) == Exit.DB_AHEAD and info.value.names == ["0005_drop_note.sql"]
    assert "0005_drop_note.sql (breaking)" in str(info.value)
    refused = cli("--db", empty_db_url, "--migrations-dir", str(old))
    assert refused.exit_code == Exit.DB_AHEAD and "0005_drop_note" in refused.stderr

    # rolling back from the old release uses the down scripts stored when the new one applied them
    back = cli("--db", empty_db_url, "--migrations-dir", str(old), "--to", "3")
    assert back.exit_code == Exit.DATA_LOSS_REFUSED  # 0004's down drops a table
    assert history(empty_db_url)[-1] == "0005_drop_note"
    back = cli("--db", empty_db_url, "--migrations-dir", str(old), "--to", "3", "--allow-data-loss")
    assert back.exit_code == 0, back.output
    assert (
        "0005_drop_note.down.sql ↩ reverted" in back.stdout
        and "0004_item_tags.down.sql ↩ reverted" in back.stdout
    )
    assert history(empty_db_url) == ["0001_items", "0002_item_note", "0003_item_label_index"]
    assert check(empty_db_url, old) == []


def test_drift_only_warns_at_start_up(empty_db_url: str, mdir: Path) -> None:
    assert cli("--db", empty_db_url, "--migrations-dir", str(mdir)).exit_code == 0
    (mdir / "0002_item_note.sql").write_text(BASIC["0002_item_note.sql"] + "-- edited\n")
    (warning,) = check(empty_db_url, mdir)
    assert "0002_item_note.sql" in warning and "repair 0002_item_note" in warning
