"""`parsec-server migrate dump-schema`: the schema in the format of schema.sql."""

from __future__ import annotations

from pathlib import Path

import click

from parsec_server.cli.migrate.common import (
    db_opt,
    debug_opt,
    inherit,
    migrations_dir_opt,
    need_db,
    run,
)


@click.command(
    "dump-schema",
    help=(
        "Print the database schema as pg_dump --schema-only, normalised: the format of the "
        "reference "
        "schema.sql. To regenerate the reference: create an empty database, then "
        "`parsec-server migrate dump-schema --apply --db URL --output "
        "src/parsec_server/storage/migrations/schema.sql`."
    ),
)
@db_opt
@click.option(
    "--apply",
    "apply_first",
    is_flag=True,
    help="First apply all migrations (to an empty database).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout.",
)
@migrations_dir_opt
@debug_opt
@click.pass_context
def dump_schema_cmd(
    ctx: click.Context,
    db: str | None,
    apply_first: bool,
    output: Path | None,
    migrations_dir: Path | None,
    debug: bool,
) -> None:
    from parsec_server.storage.migrations import engine

    url = need_db(inherit(ctx, "db", db))
    source = inherit(ctx, "migrations_dir", migrations_dir)

    async def go() -> str:
        if apply_first:
            await engine.apply_all(url, source=source)
        return await engine.dump_schema(url)

    text = run(go(), debug=inherit(ctx, "debug", debug))
    if output is not None:
        output.write_text(engine.SCHEMA_HEADER + text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)
