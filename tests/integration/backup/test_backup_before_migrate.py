"""The backup `parsec-server migrate` takes before changing a database, with the shipped migrations
and representative data: taken before the first step, reported (--json), and a working way back
(restored, it is the database exactly as it was before the migration). Its mechanics on toy
migrations (no backup for a brand-new database or when nothing is pending, exit 8 when it fails) are
tested in tests/integration/migrations/test_migrate_cli.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from backup_support import restore
from upgrade_support import (
    LATEST,
    assert_data_kept,
    build_database,
    history,
    migrate,
    ok,
    schema,
    snapshot,
)

from parsec_server.storage.migrations import engine
from parsec_server.storage.migrations.releases import previous

OLD = previous(LATEST)
pytestmark = pytest.mark.skipif(
    OLD is None, reason="no release before this schema: nothing to migrate"
)


def test_backup_is_taken_first_and_restores_the_database_as_it_was(
    db_factory: Callable[[], str], work_dir: Path, tmp_path: Path
) -> None:
    url = db_factory()
    old = OLD
    assert old is not None
    build_database(url, old.number, work_dir)
    schema_before, history_before, data_before = schema(url), history(url), snapshot(url)

    res = ok(migrate(url, "--backup-dir", str(tmp_path / "backups"), "--json"))
    events = [json.loads(line) for line in res.stdout.splitlines()]
    kinds = [e["event"] if e["event"] != "migration" else f"migration:{e['state']}" for e in events]
    assert kinds.index("backup") < kinds.index("migration:applied"), kinds  # the backup comes first
    (taken,) = [e for e in events if e["event"] == "backup"]
    path = Path(taken["path"])
    assert path.parent == tmp_path / "backups" and path.name.endswith(f"-{old.name}")
    meta = json.loads((path / "metadata.json").read_text())
    assert meta["schema_version"] == old.name and taken["bytes"] == meta["database"]["bytes"]
    assert (
        meta["blockstore"]["included"] is False
    )  # the database only: migrations do not touch blocks
    assert history(url)[-1] == engine.discover()[-1].name
    assert [e["name"] for e in events if e.get("state") == "applied"] == [
        m.filename for m in engine.discover() if m.index > old.number
    ]

    target = db_factory()
    ok(restore(target, path))
    assert (schema(target), history(target)) == (schema_before, history_before)
    assert_data_kept(data_before, snapshot(target), exact=True)


def test_no_backup_says_so(db_factory: Callable[[], str], work_dir: Path) -> None:
    url = db_factory()
    build_database(url, OLD.number, work_dir)  # type: ignore[union-attr]
    res = ok(migrate(url, "--no-backup"))
    assert "warning: " in res.stderr and "no backup" in res.stderr.lower(), res.stderr
