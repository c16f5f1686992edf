"""`migrate`, `backup` and `restore` as a new operator meets them: migrate backs up by default and
works on the embedded database (--data-dir), exit codes for bad usage are those of docs/cli.md,
restore creates a missing database, backups are owner-only."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from parsec_server.cli.migrate.common import default_backup_dir
from parsec_server.embedded_pg import default_data_dir

EXE = [sys.executable, "-m", "parsec_server.cli.main"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARSEC_")}
    return subprocess.run([*EXE, *args], capture_output=True, text=True, env=env, timeout=120)


def _one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in res.stderr, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


def _assert_owner_only(root: Path) -> int:
    assert stat.S_IMODE(root.stat().st_mode) == 0o700, oct(root.stat().st_mode)
    files = 0
    for path in root.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
        files += path.is_file()
    return files


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="parsec-migrate-safety-", dir="/tmp"))
    os.chmod(path, 0o755)  # the embedded cluster's user (as root: postgres) must get through
    try:
        yield path
    finally:
        subprocess.run(["rm", "-rf", str(path)], check=False)


def test_migrate_on_the_embedded_database_backs_up_by_default(data_dir: Path) -> None:
    first = _cli("migrate", "--data-dir", str(data_dir), "--to", "1")
    assert first.returncode == 0, first.stderr
    assert not (data_dir / "backups").exists(), "a brand-new database needs no backup"

    res = _cli("migrate", "--data-dir", str(data_dir))
    assert res.returncode == 0, res.stderr
    assert "backup of the database before migrating" in res.stderr
    backups = list((data_dir / "backups").iterdir())
    assert len(backups) == 1 and backups[0].name.startswith("pre-migrate-"), backups
    assert _assert_owner_only(backups[0]) >= 2  # metadata.json, database.dump

    status = _cli("migrate", "--data-dir", str(data_dir), "status", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    states = {m["name"]: m["state"] for m in report["migrations"]}
    assert states and set(states.values()) == {"applied"}, states
    # The embedded cluster was stopped after each command: no postgres left on the data directory.
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()


def test_default_backup_dir_is_in_the_data_directory(tmp_path: Path) -> None:
    assert default_backup_dir(tmp_path) == tmp_path / "backups"
    assert default_backup_dir(None) == default_data_dir() / "backups"
    help_text = _cli("migrate", "--help").stdout
    assert "DATA_DIR/backups" in help_text and "--data-dir" in help_text


def test_migrate_without_a_database_is_a_usage_error() -> None:
    res = _cli("migrate")
    assert res.returncode == 2, res.stderr
    assert "--db" in res.stderr and "--data-dir" in res.stderr


def test_migrate_to_an_unknown_migration_is_a_usage_error(db_url: str) -> None:
    res = _cli("migrate", "--db", db_url, "--to", "9999")
    assert res.returncode == 2, res.stderr
    assert "no such migration" in _one_error_line(res)
    dry = _cli("migrate", "--db", db_url, "--to", "9999", "--dry-run")
    assert dry.returncode == 2, dry.stderr


def test_restore_of_a_missing_path_exits_9(tmp_path: Path, db_url: str) -> None:
    res = _cli("restore", "--db", db_url, str(tmp_path / "nope"))
    assert res.returncode == 9, res.stderr
    assert "does not exist" in _one_error_line(res)


def _run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def _databases(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        return {r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")}
    finally:
        await conn.close()


def test_backup_is_owner_only_and_restore_creates_a_missing_database(
    db_url: str, tmp_path: Path
) -> None:
    os.umask(0o022)
    output = tmp_path / "nested" / "b1"
    res = _cli("backup", "--db", db_url, "--output", str(output))
    assert res.returncode == 0, res.stderr
    assert _assert_owner_only(output) >= 2
    assert stat.S_IMODE(output.parent.stat().st_mode) == 0o700

    name = f"restored_{uuid.uuid4().hex[:10]}"
    target = db_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        restored = _cli("restore", "--db", target, "--json", str(output))
        assert restored.returncode == 0, restored.stderr
        assert '"created_database": true' in restored.stdout
        assert f"created '{name}'" in restored.stderr
        assert name in _run(_databases(db_url))  # type: ignore[operator]
        # Rerun: the database exists now and is not empty: refused, exit 9.
        again = _cli("restore", "--db", target, str(output))
        assert again.returncode == 9, again.stderr
        assert "error: the target database is not empty" in again.stderr
    finally:

        async def drop() -> None:
            conn = await asyncpg.connect(db_url)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()

        asyncio.run(drop())


def test_restore_says_what_to_run_when_it_cannot_create_the_database(
    db_url: str, tmp_path: Path
) -> None:
    output = tmp_path / "b"
    assert _cli("backup", "--db", db_url, "--output", str(output)).returncode == 0
    role = f"nocreate_{uuid.uuid4().hex[:8]}"

    async def sql(statement: str) -> None:
        conn = await asyncpg.connect(db_url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(sql(f'CREATE ROLE "{role}" LOGIN NOCREATEDB'))
    try:
        base = db_url.split("://", 1)[1].split("@", 1)[1]  # host:port/database
        target = f"postgresql://{role}@{base.rsplit('/', 1)[0]}/never_{uuid.uuid4().hex[:8]}"
        res = _cli("restore", "--db", target, str(output))
        assert res.returncode == 9, res.stderr
        line = res.stderr.strip().splitlines()[-1]
        assert line.startswith("error: the database") and "createdb" in line, line
    finally:
        asyncio.run(sql(f'DROP ROLE "{role}"'))
