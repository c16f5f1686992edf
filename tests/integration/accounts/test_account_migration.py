"""Migration 0004_accounts on a database holding an account: its down step is refused without
--allow-data-loss, drops the account tables with it (and only them), and the up step brings them
back empty and working."""

from __future__ import annotations

import asyncio

import asyncpg
from account_support import account_server, create_account
from click.testing import CliRunner, Result

from parsec_server.cli.migrate import migrate_cmd

TABLES = {
    "account",
    "account_vault",
    "account_vault_item",
    "account_auth_method",
    "account_validation_code",
    "account_email_sent",
}


def _migrate(*args: str) -> Result:
    return CliRunner().invoke(migrate_cmd, list(args), prog_name="parsec-server migrate")


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'account%'"
        )
    finally:
        await conn.close()
    return {r[0] for r in rows}


async def _last_applied(url: str) -> int:
    """The number of the newest migration applied (to come back to it)."""
    conn = await asyncpg.connect(url)
    try:
        latest: int = await conn.fetchval("SELECT max(number) FROM schema_migration")
    finally:
        await conn.close()
    return latest


async def test_down_then_up(db_url: str) -> None:
    async with account_server(db_url) as (server, box):
        await create_account(server, box, "kept@example.com")
    assert await _tables(db_url) == TABLES
    latest = await _last_applied(db_url)

    refused = await asyncio.to_thread(_migrate, "--db", db_url, "--to", "0003", "--no-backup")
    assert refused.exit_code != 0
    assert await _tables(db_url) == TABLES

    down = await asyncio.to_thread(
        _migrate, "--db", db_url, "--to", "0003", "--no-backup", "--allow-data-loss"
    )
    assert down.exit_code == 0, down.output
    assert await _tables(db_url) == set()

    up = await asyncio.to_thread(_migrate, "--db", db_url, "--to", f"{latest:04d}", "--no-backup")
    assert up.exit_code == 0, up.output
    assert await _tables(db_url) == TABLES
    async with account_server(db_url) as (server, box):
        acct = await create_account(server, box, "kept@example.com")
        assert (await acct.rpc("vault_item_list"))["items"] == {}
