"""The admin guide's upgrade and rollback procedure (docs/upgrade.md, docs/rollback.md), end to end,
without Docker: real `parsec-server` processes, the release before the latest played with
PARSEC_MIGRATIONS_DIR (its migrations only).

release N serves and is written to -> `migrate --dry-run` lists the pending lines -> a `migrate`
whose backup cannot be made applies nothing (exit 8) -> `migrate` backs up, then applies -> release
N+1 serves the same data and is written to -> the three ways back of rollback.md, each keeping what
it promises:
  1. binary only (every migration since N is expand): release N serves everything, the database is
  untouched;
  2. `migrate --to N` (after its own backup): release N serves everything, nothing written since is
  lost;
  3. restore the pre-migration backup into a new database: release N serves the data as it was
  before
     the upgrade, and nothing written since (as the guide warns).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from release_data import Dataset
from upgrade_support import (
    LATEST,
    ServerProcess,
    assert_data_kept,
    cli,
    history,
    migrate,
    ok,
    release_dir,
    schema,
    snapshot,
)

from parsec_server.exit_codes import Exit
from parsec_server.storage.migrations import engine
from parsec_server.storage.migrations.releases import previous

OLD = previous(LATEST)  # release N; N+1 is this code


@pytest.mark.skipif(OLD is None, reason="no release before this schema: nothing to upgrade from")
def test_upgrade_then_each_way_back(
    new_db: Callable[[], str], releases_dir: Path, tmp_path: Path
) -> None:
    old = OLD
    assert old is not None
    old_dir = release_dir(releases_dir, old.number)
    applied_before = [m for m in engine.discover() if m.index <= old.number]
    upgrade = [m for m in engine.discover() if m.index > old.number]
    if not all(m.compat == "expand" for m in upgrade):
        # Release N is played by this code with N's migrations only, which works while this code
        # can serve schema N. After a breaking migration (0003: block.organization) it cannot:
        # test_upgrade_path covers the upgrade and the way back with every release's data, and
        # test_upgrade_compat_window the refusal of release N on the new schema.
        pytest.skip("a breaking migration since release N: this code cannot play release N")
    backups = tmp_path / "backups"
    url = new_db()

    # release N, installed and used
    ok(migrate(url, migrations_dir=old_dir))
    assert history(url) == [m.name for m in applied_before]
    before = Dataset(old.number, tag="BeforeUpgrade")
    with ServerProcess(url, migrations_dir=old_dir) as server:
        before.write(server)

    # review: the lines of docs/upgrade.md
    dry = ok(migrate(url, "--dry-run"))
    lines = dry.stdout.splitlines()
    for m in applied_before:
        assert f"{m.filename} (already applied)" in lines, dry.stdout
    for m in upgrade:
        assert f"{m.filename} ✔" in lines, dry.stdout
    assert f"{len(upgrade)} to apply, {len(applied_before)} already applied" in lines
    assert history(url) == [m.name for m in applied_before]

    # a backup that cannot be made: nothing applied, exit 8
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    failed = migrate(url, "--backup-dir", str(blocked / "backups"))
    assert failed.returncode == Exit.BACKUP_FAILED, failed.stderr
    assert failed.stderr.startswith(
        "error: the backup before migrating failed, nothing was applied"
    )
    assert history(url) == [m.name for m in applied_before]

    # migrate: backup first, named in the output, then the migrations
    before_upgrade = snapshot(url)
    done = ok(migrate(url, "--backup-dir", str(backups)))
    (pre_migrate,) = backups.iterdir()
    assert pre_migrate.name.startswith("pre-migrate-") and pre_migrate.name.endswith(f"-{old.name}")
    size = json.loads((pre_migrate / "metadata.json").read_text())["database"]["bytes"]
    assert (
        f"backup of the database before migrating: {pre_migrate} ({size / 1e6:.1f} MB)"
        in done.stderr
    )
    assert json.loads((pre_migrate / "metadata.json").read_text())["schema_version"] == old.name
    for m in upgrade:
        assert f"{m.filename} ✔ (" in done.stdout
    assert (
        f"Applied {len(upgrade)} migration(s); {len(applied_before)} were already applied."
        in done.stdout
    )
    assert schema(url) == engine.normalise_dump(engine.reference_schema())

    # release N+1: the same data, and more written
    after = Dataset(LATEST, tag="AfterUpgrade")
    with ServerProcess(url) as server:
        before.check_served(server)
        after.write(server)
    assert "schema_warning" not in server.log
    upgraded = snapshot(url)
    assert_data_kept(before_upgrade, upgraded)

    # way 1: the previous binary on the new schema (expand only): no database change
    schema_now = schema(url)
    with ServerProcess(url, migrations_dir=old_dir) as server:
        before.check_served(server)
        after.check_served(server)
    assert "running anyway" in server.log
    assert schema(url) == schema_now and snapshot(url) == upgraded

    # way 2: migrate --to N (reviewed first; backed up; nothing written since is lost). Down files
    # that drop tables of features release N does not have declare `data-loss: yes`: the review
    # says so and the operator confirms with --allow-data-loss (docs/rollback.md); those tables are
    # empty here, and every row release N can hold is kept.
    review = migrate(url, "--to", str(old.number), "--dry-run")
    lossy = [m for m in upgrade if m.down_data_loss]
    assert review.returncode == (Exit.DATA_LOSS_REFUSED if lossy else 0), review.stderr
    for m in upgrade:
        said = "discards data" if m.down_data_loss else "no data loss"
        assert f"{m.down.filename} ↩ (would revert: {said})" in review.stdout  # type: ignore[union-attr]
    confirm = ("--allow-data-loss",) if lossy else ()
    back = ok(migrate(url, "--to", str(old.number), "--backup-dir", str(backups), *confirm))
    for m in upgrade:
        assert f"{m.down.filename} ↩ reverted" in back.stdout  # type: ignore[union-attr]
    assert (
        "backup of the database before migrating" in back.stderr
        and len(list(backups.iterdir())) == 2
    )
    assert history(url) == [m.name for m in applied_before]
    assert_data_kept(upgraded, snapshot(url))
    with ServerProcess(url, migrations_dir=old_dir) as server:
        before.check_served(server)
        after.check_served(server)
    assert "schema_warning" not in server.log

    # way 3: restore the pre-migration backup (into a new database): the state before the upgrade
    restored = new_db()
    report = ok(cli("restore", "--db", restored, "--json", str(pre_migrate)))
    assert json.loads(report.stdout)["schema_version"] == old.name
    assert history(restored) == [m.name for m in applied_before]
    assert_data_kept(before_upgrade, snapshot(restored), exact=True)
    with ServerProcess(restored, migrations_dir=old_dir) as server:
        before.check_served(server)
        assert (
            server.admin("GET", f"/organizations/{after.org_id}").status_code == 404
        )  # written since: gone
    assert "schema_warning" not in server.log
