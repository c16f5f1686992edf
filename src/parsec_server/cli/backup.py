"""`parsec-server backup` and `parsec-server restore`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click

from parsec_server.backup import BackupError, RestoreError, create_backup, restore_backup
from parsec_server.cli.dbtarget import database_target, fail
from parsec_server.cli.options import data_dir_option, db_option, parse_blockstore
from parsec_server.exit_codes import Exit


def _blockstore(values: tuple[str, ...]) -> Any:
    try:
        return parse_blockstore(values)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--blockstore") from None


def _progress(as_json: bool) -> Any:
    def report(msg: str) -> None:
        click.echo(
            msg if not as_json else json.dumps({"event": "progress", "message": msg}), err=True
        )

    return report


@click.command(
    "backup",
    help="Write a consistent, verified backup of the database (and of the blockstore "
    "when it is not inside PostgreSQL) into a new directory.",
)
@db_option()
@data_dir_option()
@click.option(
    "--blockstore",
    "-b",
    envvar="PARSEC_BLOCKSTORE",
    multiple=True,
    show_envvar=True,
    help="The server's --blockstore, so that its objects are saved too (default POSTGRESQL: "
    "blocks are in the database dump).",
)
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(path_type=Path),
    help="Directory to create for the backup (must not exist).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the result as one JSON document on stdout."
)
def backup_cmd(
    db: str | None, data_dir: Path | None, blockstore: tuple[str, ...], output: Path, as_json: bool
) -> None:
    bs = _blockstore(blockstore)
    with database_target(db, data_dir) as target:
        try:
            result = asyncio.run(create_backup(target.url, bs, output, _progress(as_json)))
        except BackupError as exc:
            fail(str(exc), Exit.BACKUP_FAILED)
    meta = result.metadata
    if as_json:
        click.echo(
            json.dumps(
                {
                    "status": "ok",
                    "path": str(result.path),
                    "cleaned": [str(p) for p in result.cleaned],
                    **meta,
                }
            )
        )
    else:
        click.echo(f"backup written to {result.path}")
        click.echo(
            f"  schema version: {meta['schema_version']}, database dump {meta['database']['bytes']} bytes, "
            f"{meta['blockstore']['blocks']} blockstore objects"
        )


@click.command(
    "restore",
    help="Restore a backup made by `parsec-server backup` into an empty database "
    "(and blockstore). The backup is checked before anything is touched. A --db database that "
    "does not exist is created (the role needs CREATEDB; else the error says what to run). "
    "Exit codes: 0 restored, 2 bad usage, 11 embedded PostgreSQL, 9 restore refused or failed "
    "(missing or invalid backup, non-empty database without --force).",
)
@db_option()
@data_dir_option()
@click.option(
    "--blockstore",
    "-b",
    envvar="PARSEC_BLOCKSTORE",
    multiple=True,
    show_envvar=True,
    help="Where to restore the blockstore objects of the backup (when it has any).",
)
@click.option("--force", is_flag=True, help="Replace the content of a non-empty database.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the result as one JSON document on stdout."
)
@click.argument("path", type=click.Path(path_type=Path))
def restore_cmd(
    db: str | None,
    data_dir: Path | None,
    blockstore: tuple[str, ...],
    force: bool,
    as_json: bool,
    path: Path,
) -> None:
    bs = _blockstore(blockstore)
    if not path.is_dir():  # checked here, not by click: a refused restore exits 9 (docs/cli.md)
        what = "is not a directory" if path.exists() else "does not exist"
        fail(f"the backup {path} {what}", Exit.RESTORE_FAILED)
    with database_target(db, data_dir) as target:
        try:
            report = asyncio.run(
                restore_backup(target.url, bs, path, force=force, progress=_progress(as_json))
            )
        except RestoreError as exc:
            fail(str(exc), Exit.RESTORE_FAILED)
    if as_json:
        click.echo(json.dumps({"status": "ok", **report}))
    else:
        click.echo(
            f"restored {path}: database at schema version {report['schema_version']} "
            f"(backup of {report['created_at']}), {report['blocks']} blockstore objects"
        )
