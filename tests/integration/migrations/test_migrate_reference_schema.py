"""The shipped migrations: a fresh install equals the reference schema; down and up round-trip.

Regenerate the reference after changing a migration:
    PARSEC_UPDATE_SCHEMA=1 .venv/bin/python -m pytest
    tests/integration/migrations/test_migrate_reference_schema.py
(or `parsec-server migrate dump-schema --apply --db <empty database> --output <schema.sql>`).
"""

from __future__ import annotations

import asyncio
import difflib
import os

import asyncpg
from migration_helpers import cli, dump, history, value

from parsec_server.storage.migrations import engine, source

ENGINE_TABLES_ONLY = {"schema_migration", "schema_migration_event", "schema_migration_progress"}


def _assert_same(actual: str, expected: str, what: str) -> None:
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(True),
                actual.splitlines(True),
                "reference schema.sql",
                what,
                n=2,
            )
        )
        raise AssertionError(f"{what} differs from the reference schema:\n{diff[:6000]}")


def _reference() -> str:
    return engine.normalise_dump(source.reference_schema_path().read_text())


def test_fresh_install_equals_reference_schema(empty_db_url: str) -> None:
    asyncio.run(engine.apply_all(empty_db_url))
    fresh = dump(empty_db_url)
    if os.environ.get("PARSEC_UPDATE_SCHEMA") == "1":
        source.reference_schema_path().write_text(engine.SCHEMA_HEADER + fresh)
    _assert_same(fresh, _reference(), "fresh install")


def test_every_step_down_then_up_leaves_the_reference_schema(db_url: str) -> None:
    reference = _reference()
    _assert_same(dump(db_url), reference, "template database")
    count = len(source.discover())
    for target in range(count - 1, -1, -1):  # one step down at a time, to nothing
        result = cli("--db", db_url, "--to", str(target), "--allow-data-loss")
        assert result.exit_code == 0, result.output
        assert len(history(db_url)) == target
    tables = {
        r for (r,) in _rows(db_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    assert tables == ENGINE_TABLES_ONLY  # 0001's down removed every table of the data model
    result = cli("--db", db_url)
    assert result.exit_code == 0, result.output
    _assert_same(dump(db_url), reference, "after down to 0000 and up again")
    # and a partial round trip: down to 0001, up again
    assert (
        cli("--db", db_url, "--to", "1", "--allow-data-loss").exit_code == 0
    )  # 0004+ declare loss
    assert value(db_url, "SELECT to_regclass('vlob_atom_realm_size') IS NULL")
    assert cli("--db", db_url).exit_code == 0
    _assert_same(dump(db_url), reference, "after down to 0001 and up again")


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    async def go() -> list[tuple[object, ...]]:
        conn = await asyncpg.connect(url)
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    return asyncio.run(go())


def test_dump_schema_cli_writes_the_reference_format(db_url: str, tmp_path: object) -> None:
    from pathlib import Path

    out = Path(str(tmp_path)) / "schema.sql"
    result = cli("dump-schema", "--db", db_url, "--output", str(out))
    assert result.exit_code == 0, result.output
    assert engine.normalise_dump(out.read_text()) == _reference()
    assert out.read_text().startswith("-- ")  # generated-file header
