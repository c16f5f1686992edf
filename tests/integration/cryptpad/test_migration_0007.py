"""Migration 0007_cryptpad_sessions: up from 0006, a session stored, down (data loss declared: refused
without --allow-data-loss), up again; the table is what cryptpad_register_session uses."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from click.testing import CliRunner

from parsec_server.cli.migrate import migrate_cmd
from parsec_server.exit_codes import Exit


def _migrate(*args: str) -> Any:
    return CliRunner().invoke(migrate_cmd, list(args), prog_name="parsec-server migrate")


def _fetch(url: str, sql: str) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    return asyncio.run(go())


def _exists(url: str) -> bool:
    return bool(_fetch(url, "SELECT to_regclass('cryptpad_session') IS NOT NULL AS t")[0]["t"])


def test_up_down_up(empty_db_url: str) -> None:
    url = empty_db_url
    assert _migrate("--db", url, "--to", "6", "--no-backup").exit_code == 0
    assert not _exists(url)
    res = _migrate("--db", url, "--to", "7", "--no-backup")
    assert res.exit_code == 0, res.output
    assert _exists(url)
    columns = {
        r["column_name"]: (r["data_type"], r["is_nullable"])
        for r in _fetch(
            url,
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_name = 'cryptpad_session'",
        )
    }
    assert columns["encrypted_edit_key"] == ("bytea", "YES")
    assert columns["encrypted_view_key"] == ("bytea", "NO")
    assert columns["document_id"] == ("uuid", "NO")
    refused = _migrate("--db", url, "--to", "6", "--no-backup")
    assert refused.exit_code == Exit.DATA_LOSS_REFUSED, refused.output
    assert _exists(url)
    down = _migrate("--db", url, "--to", "6", "--no-backup", "--allow-data-loss")
    assert down.exit_code == 0, down.output
    assert not _exists(url)
    assert _migrate("--db", url, "--to", "7", "--no-backup").exit_code == 0
    assert _exists(url)
