"""Test infrastructure shared by every test.

One throwaway PostgreSQL cluster per test run (the same launcher as the embedded default), started on a free
loopback port and stopped at the end, even on failure or Ctrl-C (the postmaster also dies with us). Tests that
need a database get a fresh one, copied from a migrated template database (`CREATE DATABASE ... TEMPLATE`).
`PARSEC_TEST_PG_URL` points the suite at an existing server instead (its role must be allowed to create databases).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from parsec_server.embedded_pg import EmbeddedPostgres, free_tcp_port

REPO = Path(__file__).resolve().parent.parent


class PgCluster:
    """Handle on the test run's cluster: make and drop databases."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url  # URL of the `postgres` maintenance database
        self._template: str | None = None

    def url_for(self, database: str) -> str:
        base, _, _query = self.admin_url.partition("?")
        head = base.rsplit("/", 1)[0]
        return f"{head}/{database}" + (f"?{_query}" if _query else "")

    async def _exec(self, sql: str) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def create_database(self, template: str | None = None) -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        tmpl = f' TEMPLATE "{template}"' if template else ""
        asyncio.run(self._exec(f'CREATE DATABASE "{name}"{tmpl}'))
        return name

    def drop_database(self, name: str) -> None:
        asyncio.run(self._exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def migrated_template(self) -> str:
        """A database with every migration applied, made once per run."""
        if self._template is None:
            from parsec_server.storage.migrations import engine

            name = self.create_database()
            asyncio.run(engine.apply_all(self.url_for(name)))
            self._template = name
        return self._template


@pytest.fixture(scope="session", autouse=True)
def _backups_in_the_test_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`migrate` backs an existing database up by default, into DATA_DIR/backups: in the tests,
    into this run's temporary directory instead (helpers that drop PARSEC_* keep this one)."""
    previous = os.environ.get("PARSEC_BACKUP_DIR")
    os.environ["PARSEC_BACKUP_DIR"] = str(tmp_path_factory.mktemp("default-backups"))
    yield
    if previous is None:
        del os.environ["PARSEC_BACKUP_DIR"]
    else:
        os.environ["PARSEC_BACKUP_DIR"] = previous


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    external = os.environ.get("PARSEC_TEST_PG_URL")
    if external:
        yield PgCluster(external)
        return
    tmp = Path(tempfile.mkdtemp(prefix="parsec-test-pg-", dir="/tmp"))
    os.chmod(tmp, 0o755)
    pg = EmbeddedPostgres(tmp, tcp_port=free_tcp_port(), database="postgres", fast_unsafe=True)
    pg.start()
    try:
        yield PgCluster(pg.url)
    finally:
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def empty_db_url(pg_cluster: PgCluster) -> Iterator[str]:
    """URL of a brand-new empty database, dropped after the test."""
    name = pg_cluster.create_database()
    try:
        yield pg_cluster.url_for(name)
    finally:
        pg_cluster.drop_database(name)


@pytest.fixture
def db_url(pg_cluster: PgCluster) -> Iterator[str]:
    """URL of a fresh, fully migrated database (a copy of the migrated template), dropped after the test."""
    name = pg_cluster.create_database(template=pg_cluster.migrated_template())
    try:
        yield pg_cluster.url_for(name)
    finally:
        pg_cluster.drop_database(name)


# A test that needs a tool the test script installs (the official package in .venv-compat) skips
# when run by hand without it. Under ./scripts/test.sh
# (PARSEC_TEST_NO_MISSING_TOOLS=1) such a skip is a failure: a broken setup must not pass silently.
# (The JSON5 schemas of ../shared are not installed by the script: their absence stays a skip.)
_MISSING_TOOL_SKIPS = ("no .venv-compat", "official package cannot be imported")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not report.skipped or os.environ.get("PARSEC_TEST_NO_MISSING_TOOLS") != "1":
        return
    reason = (
        str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
    )
    if any(marker in reason for marker in _MISSING_TOOL_SKIPS):
        report.outcome = "failed"
        report.longrepr = f"skipped for a missing tool under ./scripts/test.sh: {reason}"
