"""`parsec-server migrate verify`: compare the database schema with this release's reference."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from parsec_server.cli.migrate.common import (
    Renderer,
    db_opt,
    debug_opt,
    fail,
    inherit,
    json_opt,
    migrations_dir_opt,
    need_db,
    run,
)
from parsec_server.exit_codes import Exit

_SHOWN_DIFF_LINES = 200


@click.command(
    "verify",
    help=(
        "Compare the database schema (pg_dump --schema-only, normalised) with the reference "
        "schema of this release, once every migration is applied: finds what was changed by hand, "
        "or an index an older parsec-server took for a migration's on its name alone. Exit 0 when "
        f"identical, {int(Exit.SCHEMA_CONFLICT)} with the differences (a unified diff, "
        "reference first)."
    ),
)
@db_opt
@json_opt
@migrations_dir_opt
@debug_opt
@click.pass_context
def verify_cmd(
    ctx: click.Context, db: str | None, as_json: bool, migrations_dir: Path | None, debug: bool
) -> None:
    from parsec_server.storage.migrations import engine

    url = need_db(inherit(ctx, "db", db))
    as_json = inherit(ctx, "as_json", as_json)
    renderer = Renderer(as_json)
    report = run(
        engine.verify_schema(url, source=inherit(ctx, "migrations_dir", migrations_dir)),
        debug=inherit(ctx, "debug", debug),
        renderer=renderer,
    )
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False))
        sys.stdout.flush()
    elif report["identical"]:
        click.echo(
            f"the schema of {report['database']} is the reference schema of this release "
            f"({report['migrations']} migration(s) applied)"
        )
    else:
        diff = report["diff"]
        for line in diff[:_SHOWN_DIFF_LINES]:
            click.echo(line)
        if len(diff) > _SHOWN_DIFF_LINES:
            click.echo(f"... ({len(diff) - _SHOWN_DIFF_LINES} more diff lines; --json has all)")
    if not report["identical"]:
        changed = sum(1 for ln in report["diff"] if ln[:1] in "+-" and ln[:3] not in ("+++", "---"))
        fail(
            Exit.SCHEMA_CONFLICT,
            f"the database schema differs from the reference schema of this release "
            f"({changed} line(s)): see the diff above; fix the objects by hand or restore",
        )
