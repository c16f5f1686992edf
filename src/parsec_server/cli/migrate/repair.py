"""`parsec-server migrate repair`: accept an edited applied migration file."""

from __future__ import annotations

from pathlib import Path

import click

from parsec_server.cli.migrate.common import (
    Renderer,
    db_opt,
    debug_opt,
    inherit,
    json_opt,
    migrations_dir_opt,
    need_db,
    run,
)


@click.command(
    "repair",
    help=(
        "Accept the current file of an applied migration whose checksum changed (drift), after "
        "checking "
        "that the database matches it. Changes only that history row and records who, when, old "
        "and new "
        "checksum. NAME: e.g. 0002 or 0002_usage_size_indexes."
    ),
)
@click.argument("name")
@db_opt
@click.option(
    "--lock-wait",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds to wait for the migration lock.",
)
@json_opt
@migrations_dir_opt
@debug_opt
@click.pass_context
def repair_cmd(
    ctx: click.Context,
    name: str,
    db: str | None,
    lock_wait: float | None,
    as_json: bool,
    migrations_dir: Path | None,
    debug: bool,
) -> None:
    from parsec_server.storage.migrations import engine

    url = need_db(inherit(ctx, "db", db))
    renderer = Renderer(inherit(ctx, "as_json", as_json))
    run(
        engine.repair(
            url,
            name,
            source=inherit(ctx, "migrations_dir", migrations_dir),
            lock_wait=lock_wait
            if lock_wait is not None
            else (ctx.obj or {}).get("lock_wait", 60.0),
            emit=renderer,
        ),
        debug=inherit(ctx, "debug", debug),
        renderer=renderer,
    )
