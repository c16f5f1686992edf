"""`parsec-server migrate lint`: check migration files before they ship."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from parsec_server.cli.migrate.common import (
    exit_code_for,
    fail,
    inherit,
    json_opt,
    migrations_dir_opt,
)
from parsec_server.exit_codes import Exit


@click.command(
    "lint",
    help=(
        "Flag dangerous DDL on existing tables (non-concurrent indexes, constraints validated "
        "under "
        "exclusive locks, table rewrites, SET NOT NULL without a validated CHECK...), IF NOT "
        "EXISTS whose result the engine cannot verify (anything but CREATE INDEX) and header "
        "mistakes. "
        "Default: this release's migrations; or the given directory. Exit 1 if any error is found."
    ),
)
@click.argument(
    "directory", required=False, type=click.Path(file_okay=False, exists=True, path_type=Path)
)
@json_opt
@migrations_dir_opt
@click.pass_context
def lint_cmd(
    ctx: click.Context, directory: Path | None, as_json: bool, migrations_dir: Path | None
) -> None:
    from parsec_server.storage.migrations import lint
    from parsec_server.storage.migrations.errors import MigrationError

    as_json = inherit(ctx, "as_json", as_json)
    try:
        findings = lint.lint(directory or inherit(ctx, "migrations_dir", migrations_dir))
    except MigrationError as exc:
        fail(exit_code_for(exc), exc.message)
    errors = [f for f in findings if f.severity == "error"]
    if as_json:
        click.echo(
            json.dumps(
                {"event": "lint", "findings": [f.as_dict() for f in findings]}, ensure_ascii=False
            )
        )
    else:
        for f in findings:
            click.echo(str(f))
        click.echo(f"{len(errors)} error(s), {len(findings) - len(errors)} warning(s)")
    if errors:
        sys.exit(int(Exit.MIGRATION_FAILED))
