"""Upgrade paths: from every schema release to the latest, and back to the previous release, with
data.

For each release R of the manifest (parsec_server/storage/migrations/releases.py), a database is
taken through the history up to R (at each release: its migrations, then the data that release
wrote, fixtures/release_NNNN.sql), then:
  1. `parsec-server migrate` to the latest: the schema equals the reference schema.sql, every row is
     still there, and the latest server serves all of it over HTTP (admin and authenticated APIs);
  2. the latest server writes more (data "written by the new version");
  3. `migrate --to <previous release>`: the dry run lists the down steps and their data loss, the
  schema
     is exactly a fresh install of that release, every row written before and after the upgrade is
     still there wherever the old schema has room for it, and that release would serve it;
  4. `migrate` up again: the reference schema, same data (up -> down -> up with data).
The mechanics of the engine (locks, failures, dry-run format on toy migrations) are tested in
tests/integration/migrations/.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest
from release_data import Dataset
from upgrade_support import (
    LATEST,
    ServerProcess,
    assert_data_kept,
    build_database,
    data_differences,
    history,
    migrate,
    ok,
    reference_schema,
    release_dir,
    row_count,
    schema,
    snapshot,
)

from parsec_server.exit_codes import Exit
from parsec_server.storage.migrations import engine
from parsec_server.storage.migrations.releases import RELEASES, previous, release

LATEST_NAME = engine.discover()[-1].name  # this code's schema (released or not yet)
PREVIOUS = previous(LATEST)  # the release a rollback of the latest upgrade goes back to


def check_for_serving(url: str, migrations: Path) -> list[str]:
    async def go() -> list[str]:
        conn = await asyncpg.connect(url)
        try:
            return await engine.check_for_serving(conn, source=migrations)
        finally:
            await conn.close()

    return asyncio.run(go())


def down_steps(number: int) -> list[engine.Migration]:
    return [m for m in engine.discover() if m.index > number]


@pytest.mark.parametrize("start", RELEASES, ids=lambda r: r.name)
def test_upgrade_from_release_to_latest_and_back(
    start: object, new_db: Callable[[], str], releases_dir: Path, schema_at: Callable[[int], str]
) -> None:
    rel = release(start.number)  # type: ignore[attr-defined]
    url = new_db()
    build_database(url, rel.number, releases_dir)
    assert history(url)[-1] == rel.name
    written_then = snapshot(url)
    assert row_count(written_then) >= 80 * len(RELEASES[: RELEASES.index(rel) + 1])

    # 1. to the latest schema, with this release's `migrate`
    up = ok(migrate(url, "--no-backup"))
    pending = down_steps(rel.number)
    for m in pending:
        assert f"{m.filename} ✔ (" in up.stdout, up.stdout
    if not pending:
        assert "Nothing to do" in up.stdout
    assert schema(url) == reference_schema()
    assert_data_kept(written_then, snapshot(url))

    after_upgrade = Dataset(LATEST, tag=f"NewFrom{rel.number:04d}")  # by the latest server
    with ServerProcess(url) as server:
        for r in RELEASES[: RELEASES.index(rel) + 1]:
            Dataset(r.number).check_served(server)
        # 2. the new version writes
        after_upgrade.write(server)
    assert "schema_warning" not in server.log
    before_down = snapshot(url)

    if PREVIOUS is None:
        pytest.skip("no release before this schema: nothing to go back to")

    # 3. back to the previous release
    steps = down_steps(PREVIOUS.number)
    loss = [m for m in steps if m.down_data_loss]
    dry = migrate(url, "--to", str(PREVIOUS.number), "--dry-run")
    assert dry.returncode == (Exit.DATA_LOSS_REFUSED if loss else 0), dry.stderr
    for m in steps:
        assert m.down is not None, f"{m.filename} has no down file: a rollback cannot revert it"
        what = "discards data" if m.down_data_loss else "no data loss"
        assert f"{m.down.filename} ↩ (would revert: {what})" in dry.stdout, dry.stdout
    assert history(url)[-1] == LATEST_NAME  # a dry run changes nothing
    down = ok(
        migrate(
            url,
            "--to",
            str(PREVIOUS.number),
            "--no-backup",
            *(["--allow-data-loss"] if loss else []),
        )
    )
    for m in steps:
        assert f"{m.down.filename} ↩ reverted" in down.stdout, down.stdout  # type: ignore[union-attr]
    assert history(url)[-1] == PREVIOUS.name
    assert schema(url) == schema_at(PREVIOUS.number)
    after_down = snapshot(url)
    if loss:
        # only what the old schema cannot hold may be gone: tables and columns it does not have
        problems = [
            p for p in data_differences(before_down, after_down) if not p.endswith("is gone")
        ]
        assert not problems, problems
    else:
        assert_data_kept(before_down, after_down)
    assert check_for_serving(url, release_dir(releases_dir, PREVIOUS.number)) == []

    # 4. and up again
    ok(migrate(url, "--no-backup"))
    assert schema(url) == reference_schema()
    assert_data_kept(after_down, snapshot(url))


def test_going_below_the_first_release_is_refused_without_allow_data_loss(
    new_db: Callable[[], str], releases_dir: Path
) -> None:
    """`--to 0` drops the data model: the dry run says so, the real run refuses (exit 10) and
    changes nothing; every down step that would discard data is named."""
    url = new_db()
    build_database(url, LATEST, releases_dir)
    before = snapshot(url)
    dry = migrate(url, "--to", "0", "--dry-run")
    assert dry.returncode == Exit.DATA_LOSS_REFUSED, dry.stdout + dry.stderr
    for m in engine.discover():
        what = "discards data" if m.down_data_loss else "no data loss"
        assert f"{m.down.filename} ↩ (would revert: {what})" in dry.stdout  # type: ignore[union-attr]
    assert "discarding data" in dry.stdout and "migrate would refuse" in dry.stderr
    refused = migrate(url, "--to", "0", "--no-backup")
    assert refused.returncode == Exit.DATA_LOSS_REFUSED, refused.stderr
    assert refused.stderr.count("\n") == 1 and "--allow-data-loss" in refused.stderr, refused.stderr
    assert history(url) == [m.name for m in engine.discover()]
    assert_data_kept(before, snapshot(url), exact=True)
