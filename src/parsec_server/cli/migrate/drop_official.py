"""`parsec-server migrate drop-official`: remove the official tables an adoption kept."""

from __future__ import annotations

import click

from parsec_server.cli.migrate.common import (
    Renderer,
    db_opt,
    debug_opt,
    fail,
    inherit,
    json_opt,
    need_db,
    run,
)
from parsec_server.exit_codes import Exit
from parsec_server.storage.adoption.drop import OfficialCopy, drop_official, kept_official
from parsec_server.storage.adoption.official_schema import OFFICIAL_SCHEMA
from parsec_server.storage.migrations import history, lock
from parsec_server.storage.migrations.connection import close, connect


async def _go(url: str, yes: bool, lock_wait: float, renderer: Renderer) -> OfficialCopy | None:
    conn = await connect(url, purpose="migrate-drop-official")
    try:
        if not await history.exists(conn):
            fail(
                Exit.REFUSED,
                "this database is not parsec-server's (no schema_migration table): drop-official "
                "only removes what an adoption kept; nothing was changed",
                renderer,
            )
        if not yes:
            return await kept_official(conn)
        await lock.acquire(conn, lock_wait, 5.0, renderer)
        try:
            return await drop_official(conn)
        finally:
            await lock.release(conn)
    finally:
        await close(conn)


@click.command(
    "drop-official",
    help=(
        f"Drop the schema `{OFFICIAL_SCHEMA}`, where the adoption of an official Parsec server "
        "database kept the official tables (unused by parsec-server). Without --yes, only says "
        "what would be dropped and how much space it takes (exit 15). Once dropped, the backup "
        "taken before the adoption is the only copy of the official database as it was."
    ),
)
@db_opt
@click.option("--yes", is_flag=True, help=f"Really drop schema `{OFFICIAL_SCHEMA}`.")
@click.option(
    "--lock-wait",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds to wait for the migration lock.",
)
@json_opt
@debug_opt
@click.pass_context
def drop_official_cmd(
    ctx: click.Context,
    db: str | None,
    yes: bool,
    lock_wait: float | None,
    as_json: bool,
    debug: bool,
) -> None:
    url = need_db(inherit(ctx, "db", db))
    renderer = Renderer(inherit(ctx, "as_json", as_json))
    wait = lock_wait if lock_wait is not None else (ctx.obj or {}).get("lock_wait", 60.0)
    kept = run(_go(url, yes, wait, renderer), debug=inherit(ctx, "debug", debug), renderer=renderer)
    if kept is None:
        renderer({"event": "drop_official", "schema": OFFICIAL_SCHEMA, "dropped": False})
        if not renderer.as_json:
            click.echo(f"Nothing to drop: there is no schema `{OFFICIAL_SCHEMA}`.")
        return
    size = f"{kept.tables} tables, {kept.bytes / 1e6:.1f} MB"
    if not yes:
        fail(
            Exit.REFUSED,
            f"schema `{OFFICIAL_SCHEMA}` holds {size} kept by the adoption; pass --yes to drop "
            "it (the pre-adoption backup stays the only copy); nothing was changed",
            renderer,
        )
    renderer(
        {
            "event": "drop_official",
            "schema": OFFICIAL_SCHEMA,
            "dropped": True,
            "tables": kept.tables,
            "bytes": kept.bytes,
        }
    )
    if not renderer.as_json:
        click.echo(f"Dropped schema `{OFFICIAL_SCHEMA}` ({size}).")
