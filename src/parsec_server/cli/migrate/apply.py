"""`parsec-server migrate` itself: apply (or review, or move --to) the schema migrations, taking a
verified backup first. Subcommands are in the sibling modules."""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import click

from parsec_server.cli.migrate.adoption import adopt_official
from parsec_server.cli.migrate.common import (
    Renderer,
    db_opt,
    debug_opt,
    default_backup_dir,
    json_opt,
    migrations_dir_opt,
    need_db,
    run,
)
from parsec_server.cli.migrate.handback import handback_cmd, is_handback_target
from parsec_server.cli.options import data_dir_option
from parsec_server.exit_codes import Exit


def _parse_target(value: str | None) -> int | None:
    if value is None:
        return None
    m = re.match(r"^(\d+)(?:_\w*)?(?:\.sql)?$", value.strip())
    if m is None:
        raise click.BadParameter(
            "expected a migration number such as 0003 (or 0 for none)", param_hint="--to"
        )
    return int(m.group(1))


def _parse_duration(_ctx: click.Context, _param: click.Parameter, value: str) -> float:
    from parsec_server.storage.migrations.source import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


_JSON_HELP = """
With --json, stdout carries one JSON object per line (JSON Lines), each with an "event" key:
"migration" (name, state: already_applied | applied_by_other | pending | beyond_target |
would_revert | unknown | applied | reverted | failed; duration_ms, checksum, compat, error,
sqlstate), "lock_wait", "lock_acquired", "backup", "heartbeat", "retry", "resume", "cleanup",
"warning", then a final "summary" (or "error" with exit_code and message).
"""

_EXIT_HELP = f"""
Exit codes: {Exit.OK} done/up to date; {Exit.MIGRATION_FAILED} a migration failed (rolled back);
{Exit.USAGE} bad usage; {Exit.LOCKED} migration lock not acquired within --lock-wait;
{Exit.CHECKSUM_DRIFT} an applied migration file was edited; {Exit.DB_AHEAD} the database is newer
than this server; {Exit.CANNOT_CONNECT} cannot connect; {Exit.BACKUP_FAILED} the backup before
migrating failed (nothing applied); {Exit.DATA_LOSS_REFUSED} a down step would
discard data, or the hand-back (--to official-3.9) would lose what the official schema cannot
hold (see --allow-data-loss); {Exit.SCHEMA_CONFLICT} an object a migration would
create already exists with another definition (nothing skipped); {Exit.OFFICIAL_LEVEL} an
official Parsec server database at another level than 3.9.x (upgrade it with the official server
first); {Exit.ADOPTION_FAILED} converting an official 3.9.x database failed (rolled back, nothing
changed). A dry run exits with the code the real run would.
"""


@click.group(
    "migrate",
    invoke_without_command=True,
    help=(
        "Apply pending database schema migrations (or review them with --dry-run).\n\n"
        "Each migration runs in its own transaction, under a migration lock (concurrent runs wait, "
        "then "
        "report what the winner applied). A migration waits at most --lock-timeout for each table "
        "lock, "
        "then is rolled back and retried, so it never stalls the application's queries for long.\n"
        "\n"
        "Before changing an existing database it is backed up (verified dump) into a new "
        "directory in --backup-dir (default: `backups` in the data directory); --no-backup skips "
        "it, loudly. "
        "Use --to NNNN to move up or down to a migration (down steps that discard data need "
        "--allow-data-loss). --to official-3.9 converts the database back into the official "
        "Parsec server's 3.9.x schema (what it cannot hold needs --allow-data-loss)."
    ),
    epilog=_JSON_HELP + "\n" + _EXIT_HELP,
)
@db_opt
@data_dir_option()
@click.option(
    "--dry-run",
    is_flag=True,
    help="List what would be applied; change nothing (read-only, no lock).",
)
@click.option(
    "--sql",
    "show_sql",
    is_flag=True,
    help="Also print the statements of each step (implies --dry-run).",
)
@click.option(
    "--to",
    "target",
    metavar="NNNN|official-3.9",
    help="Move up or down to this migration (0: revert all); `official-3.9` hands the database "
    "back to the official Parsec server 3.9.x (docs/switching-from-official.md).",
)
@click.option(
    "--allow-data-loss",
    is_flag=True,
    help="Allow down steps whose down file declares `data-loss: yes`.",
)
@click.option(
    "--lock-wait",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds to wait for the migration lock held by another run.",
)
@click.option(
    "--lock-timeout",
    default="2s",
    show_default=True,
    callback=_parse_duration,
    help="How long a statement may wait for a table lock before the migration is rolled back and "
    "retried (a file's lock_timeout header wins).",
)
@click.option(
    "--lock-retries",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Retries after a lock timeout (with exponential backoff).",
)
@click.option(
    "--heartbeat",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds between progress reports of a long step or lock wait.",
)
@click.option(
    "--backup-dir",
    envvar="PARSEC_BACKUP_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Before changing an existing database, dump it (verified) into a new directory here "
    "[default: DATA_DIR/backups, DATA_DIR being --data-dir or the embedded default].  "
    "[env var: PARSEC_BACKUP_DIR]",
)
@click.option("--no-backup", is_flag=True, help="Apply without taking a backup first.")
@json_opt
@migrations_dir_opt
@debug_opt
@click.pass_context
def migrate_cmd(
    ctx: click.Context,
    db: str | None,
    data_dir: Path | None,
    dry_run: bool,
    show_sql: bool,
    target: str | None,
    allow_data_loss: bool,
    lock_wait: float,
    lock_timeout: float,
    lock_retries: int,
    heartbeat: float,
    backup_dir: Path | None,
    no_backup: bool,
    as_json: bool,
    migrations_dir: Path | None,
    debug: bool,
) -> None:
    ctx.ensure_object(dict)
    ctx.obj.update(
        db=db,
        data_dir=data_dir,
        as_json=as_json,
        migrations_dir=migrations_dir,
        debug=debug,
        lock_wait=lock_wait,
    )
    if db and data_dir:
        raise click.UsageError(
            "--data-dir is for the embedded PostgreSQL: do not combine it with --db."
        )
    if ctx.invoked_subcommand is not None:
        return
    from parsec_server.storage.migrations import engine

    url = need_db(db)
    dry_run = dry_run or show_sql
    if is_handback_target(target):
        if dry_run and not as_json:
            click.echo(f"Dry run on {engine.redact_url(url)}: nothing is changed in the database.")
        handback_cmd(
            url,
            dry_run=dry_run,
            allow_data_loss=allow_data_loss,
            backup_dir=backup_dir or default_backup_dir(data_dir),
            no_backup=no_backup,
            lock_wait=lock_wait,
            lock_timeout=lock_timeout,
            heartbeat=heartbeat,
            migrations_dir=migrations_dir,
            as_json=as_json,
            debug=debug,
        )
        return
    options = engine.Options(
        lock_wait=lock_wait,
        lock_timeout=lock_timeout,
        lock_retries=lock_retries,
        heartbeat=heartbeat,
        target=_parse_target(target),
        allow_data_loss=allow_data_loss,
    )
    renderer = Renderer(as_json, show_sql=show_sql)
    if dry_run and not as_json:
        click.echo(f"Dry run on {engine.redact_url(url)}: nothing is changed in the database.")
    # an official Parsec server's database: adopted (or refused: exit 17) here, before the engine
    adopt_official(
        url,
        dry_run=dry_run,
        migrations_dir=migrations_dir,
        renderer=renderer,
        debug=debug,
        backup_dir=None if no_backup else (backup_dir or default_backup_dir(data_dir)),
        lock_wait=lock_wait,
        heartbeat=heartbeat,
    )
    run(
        engine.migrate(
            url,
            source=migrations_dir,
            options=options,
            dry_run=dry_run,
            show_sql=show_sql,
            emit=renderer,
            before_steps=_no_backup_hook(renderer)
            if no_backup
            else _backup_hook(url, backup_dir or default_backup_dir(data_dir), renderer),
        ),
        debug=debug,
        renderer=renderer,
    )


def _no_backup_hook(emit: Renderer) -> Callable[[Any], Coroutine[Any, Any, dict[str, Any] | None]]:
    """--no-backup: say loudly, before the first step, that nothing saves the database."""

    async def hook(plan: Any) -> dict[str, Any] | None:
        emit(
            {
                "event": "warning",
                "message": "--no-backup: NO BACKUP taken before migrating; if a migration goes "
                "wrong, only its down file or your own backup can bring the data back",
            }
        )
        return None

    return hook


def _backup_hook(
    url: str, backup_dir: Path, emit: Renderer
) -> Callable[[Any], Coroutine[Any, Any, dict[str, Any] | None]]:
    """Back the database up (parsec_server.backup) before the first step changes it."""

    async def hook(plan: Any) -> dict[str, Any] | None:
        from datetime import UTC, datetime

        from parsec_server.backup import BackupError, create_backup
        from parsec_server.storage.migrations.errors import BackupFailed

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        base = backup_dir / f"pre-migrate-{stamp}-{plan.history[-1].name}"
        output, n = base, 1
        while output.exists():
            output, n = base.with_name(f"{base.name}-{n}"), n + 1
        try:
            result = await create_backup(url, None, output)
        except (BackupError, OSError) as exc:
            raise BackupFailed(
                f"the backup before migrating failed, nothing was applied: {exc} (fix it, or pass "
                "--no-backup)"
            ) from None
        if result.cleaned:
            emit(
                {
                    "event": "cleanup",
                    "name": "backup",
                    "paths": [str(p) for p in result.cleaned],
                    "message": f"removed {len(result.cleaned)} partial backup(s) left by an "
                    "interrupted run: " + ", ".join(str(p) for p in result.cleaned),
                }
            )
        size = int(result.metadata["database"]["bytes"])
        emit({"event": "backup", "path": str(result.path), "bytes": size})
        return {"path": str(result.path), "bytes": size}

    return hook
