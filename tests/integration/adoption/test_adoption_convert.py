"""The adoption's conversion on databases made by the official 3.9.3 `parsec migrate`: the schema it
leaves is exactly a fresh parsec-server database's (the official tables aside, in
`parsec_official`), and a conversion that fails is rolled back whole (exit 18, one line)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from parsec_server.storage.migrations.reference import dump_schema

COMPAT_BIN = Path(__file__).resolve().parents[3] / ".venv-compat" / "bin"
MIGRATE = [sys.executable, "-m", "parsec_server.cli.migrate"]


def _migrate(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PARSEC_DB", "PARSEC_DATA_DIR")}
    return subprocess.run(
        [*MIGRATE, "--db", url, *args], capture_output=True, text=True, timeout=300, env=env
    )


def _q(url: str, sql: str) -> list[tuple[Any, ...]]:
    async def go() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(url)
        try:
            if ";" in sql:
                await conn.execute(sql)
                return []
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    return asyncio.run(go())


_RELATIONS = (
    "SELECT n.nspname::text, c.relname::text, c.relkind::text FROM pg_class c"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
    " AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1, 2"
)


@pytest.fixture(scope="module")
def official_template(pg_cluster: Any) -> Iterator[str]:
    if not (COMPAT_BIN / "parsec").exists():
        pytest.skip("no .venv-compat (the official parsec-cloud 3.9.3 server)")
    name = pg_cluster.create_database()
    subprocess.run(
        [str(COMPAT_BIN / "parsec"), "migrate", "--db", pg_cluster.url_for(name)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    yield name
    pg_cluster.drop_database(name)


@pytest.fixture
def official_url(pg_cluster: Any, official_template: str) -> Iterator[str]:
    name = pg_cluster.create_database(template=official_template)
    yield pg_cluster.url_for(name)
    pg_cluster.drop_database(name)


def test_the_adopted_schema_is_a_fresh_install_s(official_url: str, db_url: str) -> None:
    res = _migrate(official_url, "--no-backup")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "--no-backup: NO BACKUP" in res.stderr
    # what `migrate verify` compares: public only, the official tables aside
    assert asyncio.run(dump_schema(official_url)) == asyncio.run(dump_schema(db_url))
    official = {t for s, t, k in _q(official_url, _RELATIONS) if s == "parsec_official"}
    assert {"migration", "organization", "vlob_atom", "account", "vault_item"} <= official
    assert "block_data" not in official
    assert _q(official_url, "SELECT count(*) FROM parsec_official.migration") == [(24,)]


def test_a_failing_conversion_changes_nothing(official_url: str, tmp_path: Path) -> None:
    # an invitation token that is no hexadecimal access token: the invitation step fails
    _q(
        official_url,
        """
        INSERT INTO organization (organization_id, is_expired, user_profile_outsider_allowed,
            _created_on, realm_minimum_archiving_period_before_deletion)
        VALUES ('Broken', false, true, now(), 0);
        INSERT INTO invitation (organization, token, type, user_invitation_claimer_email,
            created_on, created_by_service_label)
        SELECT _id, 'not-hex', 'USER', 'a@example.com', now(), 'svc' FROM organization;
        """,
    )
    before = _q(official_url, _RELATIONS)
    res = _migrate(official_url, "--backup-dir", str(tmp_path / "backups"))
    assert res.returncode == 18, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    (line,) = [x for x in res.stderr.splitlines() if x.startswith("error: ")]
    assert line.startswith("error: converting invitation into invitation failed: ")
    assert line.endswith("rolled back, nothing was changed")
    assert _q(official_url, _RELATIONS) == before
    assert len(list((tmp_path / "backups").iterdir())) == 1  # taken before the conversion
