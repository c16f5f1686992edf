"""`parsec-server migrate`: review and apply database schema migrations.

Rendering only: the work is in `parsec_server.storage.migrations.engine`, which reports progress as
event dicts. Human output: migration lines and the summary on stdout; progress (heartbeats, retries,
lock waits) and warnings on stderr; an error is one `error: ...` line on stderr and its exit code
(tracebacks only with --debug). `--json`: the same events as JSON lines on stdout.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from parsec_server.exit_codes import Exit

T = TypeVar("T")

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
discard data (see --allow-data-loss). A dry run exits with the code the real run would.
"""


def _db_option(required: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--db",
        envvar="PARSEC_DB",
        metavar="URL",
        required=required,
        help=(
            "PostgreSQL database URL: postgresql://user:password@host:port/database  [env var: "
            "PARSEC_DB]"
        ),
    )


_migrations_dir = click.option(
    "--migrations-dir",
    envvar="PARSEC_MIGRATIONS_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    hidden=True,  # tests and experiments: another set of migration files
)
_json_option = click.option(
    "--json", "as_json", is_flag=True, help="Machine-readable output (JSON Lines)."
)
_debug_option = click.option(
    "--debug", is_flag=True, envvar="DEBUG", help="Show tracebacks of unexpected errors."
)


def _duration_ms(ms: float | None) -> str:
    if ms is None:
        return "?"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.1f} s"


def _blockers(blocked: list[dict[str, Any]]) -> str:
    from parsec_server.storage.migrations.monitor import describe_blocker

    return "; ".join(describe_blocker(b) for b in blocked)


class Renderer:
    def __init__(self, as_json: bool, show_sql: bool = False) -> None:
        self.as_json = as_json
        self.show_sql = show_sql
        self.failed_printed = False

    def out(self, text: str) -> None:
        click.echo(text)

    def err(self, text: str) -> None:
        click.echo(text, err=True)

    def __call__(self, ev: dict[str, Any]) -> None:
        if self.as_json:
            click.echo(json.dumps(ev, default=str, ensure_ascii=False))
            sys.stdout.flush()
            return
        kind = ev["event"]
        method = getattr(self, f"_on_{kind}", None)
        if method is not None:
            method(ev)

    def _on_migration(self, ev: dict[str, Any]) -> None:
        name, state = ev["name"], ev["state"]
        if state == "already_applied":
            self.out(f"{name} (already applied)")
        elif state == "applied_by_other":
            self.out(f"{name} (applied by another migrate run while this one waited)")
        elif state == "pending":
            self.out(f"{name} ✔")  # the official guide's line, exactly
            self._statements(ev)
        elif state == "would_revert":
            loss = "discards data" if ev.get("data_loss") else "no data loss"
            self.out(f"{name} ↩ (would revert: {loss})")
            self._statements(ev)
        elif state == "beyond_target":
            self.out(f"{name} (pending, beyond --to: not applied)")
        elif state == "unknown":
            self.out(
                f"{name} (unknown to this release: applied by a newer parsec-server, compat "
                f"{ev.get('compat')})"
            )
        elif state == "applied":
            retries = f", {ev['attempts']} attempts" if ev.get("attempts", 1) > 1 else ""
            self.out(f"{name} ✔ ({_duration_ms(ev.get('duration_ms'))}{retries})")
        elif state == "reverted":
            self.out(f"{name} ↩ reverted ({_duration_ms(ev.get('duration_ms'))})")
        elif state == "failed":
            self.failed_printed = True
            self.out(f"{name} ✘: {ev.get('error')}")

    def _statements(self, ev: dict[str, Any]) -> None:
        if not self.show_sql:
            return
        if ev.get("transaction") == "off":
            self.out("    -- transaction: off (each statement on its own, resumable)")
        for st in ev.get("statements", []):
            self.out("    " + st.replace("\n", "\n    ") + ";")

    def _on_heartbeat(self, ev: dict[str, Any]) -> None:
        text = f"  … {ev['name']} still running ({ev['elapsed_s']:.0f}s)"
        if ev.get("waiting_for_lock"):
            text += f": waiting for a lock ({ev.get('wait_event')})"
        elif ev.get("wait_event"):
            text += f": {ev.get('wait_event')}"
        if ev.get("blocked_by"):
            text += f", blocked by {_blockers(ev['blocked_by'])}"
        if ev.get("index_progress"):
            text += f", index build: {ev['index_progress']}"
        self.err(text)

    def _on_retry(self, ev: dict[str, Any]) -> None:
        who = f"; blocked by {_blockers(ev['blocked_by'])}" if ev.get("blocked_by") else ""
        self.err(
            f"  … {ev['name']}: could not take its locks in time ({ev['reason']}){who}; "
            f"rolled back, retry {ev['attempt'] + 1}/{ev['of']} in {ev['delay_s']:.1f}s"
        )

    def _on_lock_wait(self, ev: dict[str, Any]) -> None:
        self.err(f"{ev['message']} ({ev['waited_s']:.0f}s of {ev['lock_wait_s']:g}s)")

    def _on_lock_acquired(self, ev: dict[str, Any]) -> None:
        self.err(f"got the migration lock after {ev['waited_s']:.1f}s")

    def _on_resume(self, ev: dict[str, Any]) -> None:
        self.err(
            f"  … {ev['name']}: resuming after the {ev['statements_done']}/{ev['of']} statements "
            "an earlier run completed"
        )

    def _on_cleanup(self, ev: dict[str, Any]) -> None:
        self.err(f"  … {ev['name']}: {ev['message']}")

    def _on_backup(self, ev: dict[str, Any]) -> None:
        self.err(
            f"backup of the database before migrating: {ev['path']} ({ev['bytes'] / 1e6:.1f} MB)"
        )

    def _on_warning(self, ev: dict[str, Any]) -> None:
        self.err(f"warning: {ev['message']}")

    def _on_repair(self, ev: dict[str, Any]) -> None:
        self.out(ev["message"])

    def _on_summary(self, ev: dict[str, Any]) -> None:
        if ev.get("dry_run"):
            parts = []
            if ev["to_apply"] or not ev["to_revert"]:
                parts.append(f"{len(ev['to_apply'])} to apply")
            if ev["to_revert"]:
                loss = f" ({len(ev['data_loss'])} discarding data)" if ev["data_loss"] else ""
                parts.append(f"{len(ev['to_revert'])} to revert{loss}")
            parts.append(f"{ev['already_applied']} already applied")
            if ev["unknown"]:
                parts.append(f"{len(ev['unknown'])} unknown to this release")
            self.out(", ".join(parts))
            for w in ev.get("warnings", []):
                self.err(f"warning: {w}")
            return
        applied, reverted, others = ev["applied"], ev["reverted"], ev["applied_by_other"]
        if reverted:
            self.out(
                f"Reverted {len(reverted)} migration(s); {ev['already_applied']} stay applied."
            )
        elif applied:
            self.out(
                f"Applied {len(applied)} migration(s); {ev['already_applied']} were already "
                "applied."
            )
        elif others:
            self.out(
                f"Nothing left to do: another migrate run applied {len(others)} migration(s) "
                "while this one "
                f"waited; {ev['already_applied']} were already applied."
            )
        else:
            self.out(f"Nothing to do: {ev['already_applied']} migration(s) already applied.")


def _fail(code: int, message: str, renderer: Renderer | None = None) -> NoReturn:
    if renderer is not None and renderer.as_json:
        click.echo(
            json.dumps(
                {"event": "error", "exit_code": int(code), "message": message}, ensure_ascii=False
            )
        )
    click.echo(f"error: {message}", err=True)
    sys.exit(int(code))


def _run(coro: Coroutine[Any, Any, T], *, debug: bool, renderer: Renderer | None = None) -> T:
    from parsec_server.storage.migrations.errors import MigrationError

    try:
        return asyncio.run(coro)
    except MigrationError as exc:
        if debug:
            raise
        _fail(exc.exit_code, exc.message, renderer)
    except KeyboardInterrupt:
        _fail(130, "interrupted (a migration in progress is rolled back by PostgreSQL)", renderer)
    except Exception as exc:
        if debug:
            raise
        text = " ".join(str(exc).split())
        _fail(
            Exit.MIGRATION_FAILED,
            f"unexpected {type(exc).__name__}: {text} (rerun with --debug for details)",
            renderer,
        )


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


def _need_db(db: str | None) -> str:
    if not db:
        raise click.UsageError("missing option --db URL (or env var PARSEC_DB)")
    return db


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
        "Before changing an existing database it is backed up into --backup-dir (verified dump). "
        "Use --to NNNN to move up or down to a migration (down steps that discard data need "
        "--allow-data-loss)."
    ),
    epilog=_JSON_HELP + "\n" + _EXIT_HELP,
)
@_db_option()
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
    "--to", "target", metavar="NNNN", help="Move up or down to this migration (0: revert all)."
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
    help="Before changing an existing database, dump it (verified) into a new directory here.  "
    "[env var: PARSEC_BACKUP_DIR]",
)
@click.option("--no-backup", is_flag=True, help="Apply without taking a backup first.")
@_json_option
@_migrations_dir
@_debug_option
@click.pass_context
def migrate_cmd(
    ctx: click.Context,
    db: str | None,
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
        db=db, as_json=as_json, migrations_dir=migrations_dir, debug=debug, lock_wait=lock_wait
    )
    if ctx.invoked_subcommand is not None:
        return
    from parsec_server.storage.migrations import engine

    url = _need_db(db)
    dry_run = dry_run or show_sql
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
    _run(
        engine.migrate(
            url,
            source=migrations_dir,
            options=options,
            dry_run=dry_run,
            show_sql=show_sql,
            emit=renderer,
            before_steps=_no_backup_hook(renderer)
            if no_backup
            else _backup_hook(url, backup_dir, renderer),
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
    url: str, backup_dir: Path | None, emit: Renderer
) -> Callable[[Any], Coroutine[Any, Any, dict[str, Any] | None]]:
    """Back the database up (parsec_server.backup) before the first step changes it."""

    async def hook(plan: Any) -> dict[str, Any] | None:
        from datetime import UTC, datetime

        from parsec_server.backup import BackupError, create_backup
        from parsec_server.storage.migrations.errors import BackupFailed

        if backup_dir is None:
            emit(
                {
                    "event": "warning",
                    "message": "no backup taken before migrating: set --backup-dir (or "
                    "PARSEC_BACKUP_DIR), or pass --no-backup",
                }
            )
            return None
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
        size = int(result.metadata["database"]["bytes"])
        emit({"event": "backup", "path": str(result.path), "bytes": size})
        return {"path": str(result.path), "bytes": size}

    return hook


def _inherit(ctx: click.Context, key: str, value: Any) -> Any:
    if value not in (None, False):
        return value
    return (ctx.obj or {}).get(key, value)


@migrate_cmd.command(
    "status", help="Show the migration history: durations, versions, repairs, pending."
)
@_db_option()
@_json_option
@_migrations_dir
@_debug_option
@click.pass_context
def status_cmd(
    ctx: click.Context, db: str | None, as_json: bool, migrations_dir: Path | None, debug: bool
) -> None:
    from parsec_server.storage.migrations import engine
    from parsec_server.storage.migrations.monitor import human_duration

    url = _need_db(_inherit(ctx, "db", db))
    as_json = _inherit(ctx, "as_json", as_json)
    renderer = Renderer(as_json)
    report = _run(
        engine.status(url, source=_inherit(ctx, "migrations_dir", migrations_dir)),
        debug=_inherit(ctx, "debug", debug),
        renderer=renderer,
    )
    if as_json:
        click.echo(json.dumps(report, default=str, ensure_ascii=False))
        return
    click.echo(f"Database: {report['database']}")
    rows = [("MIGRATION", "STATE", "APPLIED ON (UTC)", "TOOK", "BY VERSION", "COMPAT", "NOTES")]
    for it in report["migrations"]:
        notes = []
        if it.get("attempts", 1) > 1:
            notes.append(f"{it['attempts']} attempts")
        for r in it.get("repairs") or []:
            notes.append(
                f"repaired {r.get('repaired_on', '?')[:19].replace('T', ' ')} by {r.get('by')} "
                f"({r.get('old_checksum', '')[:8]}→{r.get('new_checksum', '')[:8]})"
            )
        applied = it.get("applied_on")
        rows.append(
            (
                it["name"],
                it["state"],
                applied[:19].replace("T", " ") if applied else "",
                human_duration(it["duration_ms"] / 1000)
                if it.get("duration_ms") is not None
                else "",
                it.get("server_version", ""),
                it.get("compat", ""),
                "; ".join(notes),
            )
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        line = "  ".join(str(c).ljust(w) for c, w in zip(r[:-1], widths, strict=True))
        click.echo((line + "  " + r[-1]).rstrip())
    counts: dict[str, int] = {}
    for it in report["migrations"]:
        counts[it["state"]] = counts.get(it["state"], 0) + 1
    click.echo(", ".join(f"{n} {state}" for state, n in counts.items()) or "no migrations")
    for p in report["partial"]:
        click.echo(
            f"interrupted non-transactional migration: {p['name']} ({p['statements_done']} "
            "statement(s) done)"
        )
    if report["lock_holder"]:
        h = report["lock_holder"]
        click.echo(f"migration lock held by pid {h['pid']} ({h.get('application_name')})")
    applied = {it["name"] for it in report["migrations"] if it["state"] != "pending"}
    failures = [
        e
        for e in report["recent_events"]
        if e["kind"] == "fail" and f"{e['name']}.sql" not in applied
    ]
    if failures:
        last = failures[-1]
        click.echo(
            f"last failure: {last['name']}.sql at {str(last['happened_on'])[:19]} "
            f"({last['server_version']}): {last['detail'].get('error')}"
        )


@migrate_cmd.command(
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
@_db_option()
@click.option(
    "--lock-wait",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds to wait for the migration lock.",
)
@_json_option
@_migrations_dir
@_debug_option
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

    url = _need_db(_inherit(ctx, "db", db))
    renderer = Renderer(_inherit(ctx, "as_json", as_json))
    _run(
        engine.repair(
            url,
            name,
            source=_inherit(ctx, "migrations_dir", migrations_dir),
            lock_wait=lock_wait
            if lock_wait is not None
            else (ctx.obj or {}).get("lock_wait", 60.0),
            emit=renderer,
        ),
        debug=_inherit(ctx, "debug", debug),
        renderer=renderer,
    )


@migrate_cmd.command(
    "lint",
    help=(
        "Flag dangerous DDL on existing tables (non-concurrent indexes, constraints validated "
        "under "
        "exclusive locks, table rewrites, SET NOT NULL without a validated CHECK...) and header "
        "mistakes. "
        "Default: this release's migrations; or the given directory. Exit 1 if any error is found."
    ),
)
@click.argument(
    "directory", required=False, type=click.Path(file_okay=False, exists=True, path_type=Path)
)
@_json_option
@_migrations_dir
@click.pass_context
def lint_cmd(
    ctx: click.Context, directory: Path | None, as_json: bool, migrations_dir: Path | None
) -> None:
    from parsec_server.storage.migrations import lint
    from parsec_server.storage.migrations.errors import MigrationError

    as_json = _inherit(ctx, "as_json", as_json)
    try:
        findings = lint.lint(directory or _inherit(ctx, "migrations_dir", migrations_dir))
    except MigrationError as exc:
        _fail(exc.exit_code, exc.message)
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


@migrate_cmd.command(
    "dump-schema",
    help=(
        "Print the database schema as pg_dump --schema-only, normalised: the format of the "
        "reference "
        "schema.sql. To regenerate the reference: create an empty database, then "
        "`parsec-server migrate dump-schema --apply --db URL --output "
        "src/parsec_server/storage/migrations/schema.sql`."
    ),
)
@_db_option()
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
@_migrations_dir
@_debug_option
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

    url = _need_db(_inherit(ctx, "db", db))
    source = _inherit(ctx, "migrations_dir", migrations_dir)

    async def go() -> str:
        if apply_first:
            await engine.apply_all(url, source=source)
        return await engine.dump_schema(url)

    text = _run(go(), debug=_inherit(ctx, "debug", debug))
    if output is not None:
        output.write_text(engine.SCHEMA_HEADER + text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


if __name__ == "__main__":  # `python -m parsec_server.cli.migrate ...` (tests, bring-up)
    migrate_cmd(prog_name="parsec-server migrate")
