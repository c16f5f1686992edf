"""The compatibility window, seen from `parsec-server run` (a real process, as an operator starts
it).

* the previous release on the latest schema: if everything since is `expand`, it runs (warning
naming
  the migrations it does not know) and serves every row, old and new, with no database change at all
  (the binary-only rollback); if anything is `breaking`, it refuses;
* a schema holding a breaking migration this release does not know: refused, exit 5, naming it;
* a schema with migrations pending: refused, exit 7, naming them.
The engine-level check (check_for_serving on toy migrations) is tested in
tests/integration/migrations/.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from release_data import Dataset
from upgrade_support import (
    ADMIN_TOKEN,
    LATEST,
    ServerExited,
    ServerProcess,
    build_database,
    cli,
    migrate,
    ok,
    query,
    release_dir,
    schema,
    snapshot,
)

from parsec_server.embedded_pg import free_tcp_port
from parsec_server.exit_codes import Exit
from parsec_server.storage.migrations import engine
from parsec_server.storage.migrations.releases import RELEASES, previous

HISTORY = "SELECT number, name, checksum, compat, applied_on FROM schema_migration ORDER BY number"


def run_expecting_exit(url: str, migrations_dir: Path | None = None) -> tuple[int, str]:
    """`parsec-server run` that must stop by itself (a refusal at start-up)."""
    port = free_tcp_port()
    res = cli(
        "run",
        "--db",
        url,
        "--administration-token",
        ADMIN_TOKEN,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        migrations_dir=migrations_dir,
        timeout=60,
    )
    return res.returncode, res.stderr


@pytest.mark.skipif(previous(LATEST) is None, reason="no release before this schema")
def test_previous_release_on_the_latest_schema(
    new_db: Callable[[], str], releases_dir: Path
) -> None:
    url = new_db()
    build_database(url, LATEST, releases_dir)  # data of every release, at the latest schema
    old = previous(LATEST)
    assert old is not None
    unknown = [m for m in engine.discover() if m.index > old.number]
    schema_before, history_before, data_before = schema(url), query(url, HISTORY), snapshot(url)
    server = ServerProcess(url, migrations_dir=release_dir(releases_dir, old.number))

    if any(m.compat == "breaking" for m in unknown):
        with pytest.raises(ServerExited) as info:
            server.start()
        assert info.value.code == Exit.DB_AHEAD
        return

    with server:
        for r in RELEASES:  # including what the newer releases wrote
            Dataset(r.number).check_served(server)
    warning = [line for line in server.log.splitlines() if "schema_warning" in line]
    assert len(warning) == 1, server.log
    for m in unknown:
        assert m.filename in warning[0]
    assert "newer" in warning[0] and "running anyway" in warning[0]
    # rolling the binary back touched nothing in the database
    assert (schema(url), query(url, HISTORY), snapshot(url)) == (
        schema_before,
        history_before,
        data_before,
    )


def test_unknown_breaking_migration_refuses_to_start(
    new_db: Callable[[], str], tmp_path: Path
) -> None:
    """A database migrated by a newer release with a breaking change: this release refuses to serve
    it."""
    url = new_db()
    newer = tmp_path / "newer"
    newer.mkdir()
    for m in engine.discover():
        for name, sql in ((m.filename, m.sql), (m.down.filename, m.down.sql)):  # type: ignore[union-attr]
            (newer / name).write_text(sql)
    number = len(engine.discover()) + 1
    (newer / f"{number:04d}_future_breaking.sql").write_text(
        "-- compat: breaking\nALTER TABLE organization RENAME COLUMN is_expired TO expired;\n"
    )
    (newer / f"{number:04d}_future_breaking.down.sql").write_text(
        "-- data-loss: no\nALTER TABLE organization RENAME COLUMN expired TO is_expired;\n"
    )
    ok(migrate(url, "--no-backup", migrations_dir=newer))

    code, stderr = run_expecting_exit(url)
    assert code == Exit.DB_AHEAD, stderr
    (line,) = [ln for ln in stderr.splitlines() if ln.startswith("error: ")]
    assert (
        f"{number:04d}_future_breaking.sql (breaking)" in line and "upgrade parsec-server" in line
    ), stderr
    assert "Traceback" not in stderr


def test_pending_migrations_refuse_to_start(new_db: Callable[[], str], releases_dir: Path) -> None:
    url = new_db()
    first = RELEASES[0].number
    ok(migrate(url, migrations_dir=release_dir(releases_dir, first)))
    pending = [m.filename for m in engine.discover() if m.index > first]
    if not pending:
        pytest.skip("a single migration: nothing can be pending")
    code, stderr = run_expecting_exit(url)
    assert code == Exit.SCHEMA_NOT_READY, stderr
    (line,) = [ln for ln in stderr.splitlines() if ln.startswith("error: ")]
    assert all(name in line for name in pending) and "parsec-server migrate" in line, stderr
    # the same release, started as release N (PARSEC_MIGRATIONS_DIR), serves it
    with ServerProcess(url, migrations_dir=release_dir(releases_dir, first)) as server:
        assert server.http.get("/health").status_code == 200
