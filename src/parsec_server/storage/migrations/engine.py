"""Schema migration engine: plan, lock, apply/revert, report.

Public API (used by the CLI, the server start-up and the tests):

* `migrate(url, ...)`          the `parsec-server migrate` run (also `--dry-run`, `--to`)
* `apply_all(url)`             bring an empty or partial database to the latest schema
* `check_for_serving(conn)`    server start-up check: raises SchemaNotReady / DatabaseAhead
* `is_empty(url)`              no table at all (a brand-new database)
* `status(url)`, `repair(url, name)`, `dump_schema(url)`

How a run goes (`migrate`): discover the files (source.py) -> connect -> read the history without
any lock (to know what was pending) -> take the migration lock, a *session* advisory lock polled
with `pg_try_advisory_lock` outside any transaction (no deadlock with CREATE INDEX CONCURRENTLY,
released by PostgreSQL if we die) -> create the history tables if needed -> plan again -> refuse
drift, unknown breaking migrations, out-of-order files, data loss -> run each step in its own
transaction with a `lock_timeout`, retried with jittered exponential backoff when a table lock
cannot be had in time (so a migration queued behind a long transaction never freezes the
application's queries for long) -> non-transactional files run statement by statement, their
progress recorded so that a rerun resumes (and first drops an INVALID index left by an interrupted
CREATE INDEX CONCURRENTLY). An index already there is skipped only if its definition is the one the
statement specifies (verify.py); otherwise the step stops with SchemaConflict.

Progress is reported through `emit(event: dict)`; the event dicts are what `--json` prints.

Modules: source.py (files, headers, checksums) -> plan.py (what to do) -> lock.py (one run at a
time) -> runner.py (one step, safely; monitor.py watches it) -> history.py (the engine's tables);
connection.py, reference.py (schema.sql), lint.py (`migrate lint`), sqltext.py (statement
splitting), verify.py (what a step would skip).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from parsec_server import __version__
from parsec_server.storage.migrations import history, lock, monitor, verify
from parsec_server.storage.migrations.connection import close, connect, connect_reason, redact_url
from parsec_server.storage.migrations.errors import (
    BackupFailed,
    CannotConnect,
    ChecksumDrift,
    DatabaseAhead,
    DataLossRefused,
    InvalidMigrations,
    MigrationError,
    MigrationFailed,
    MigrationLockTimeout,
    SchemaNotReady,
)
from parsec_server.storage.migrations.history import Applied
from parsec_server.storage.migrations.monitor import Emit, jsonable
from parsec_server.storage.migrations.plan import Options, Plan, Step, make_plan
from parsec_server.storage.migrations.reference import (
    SCHEMA_HEADER,
    dump_schema,
    normalise_dump,
    reference_schema,
)
from parsec_server.storage.migrations.runner import Runner
from parsec_server.storage.migrations.source import Migration, MigrationsSource, discover
from parsec_server.storage.migrations.verify import verify_schema

__all__ = [
    "SCHEMA_HEADER",
    "BackupFailed",
    "CannotConnect",
    "ChecksumDrift",
    "DataLossRefused",
    "DatabaseAhead",
    "InvalidMigrations",
    "MigrationError",
    "MigrationFailed",
    "MigrationLockTimeout",
    "Options",
    "Plan",
    "SchemaNotReady",
    "Step",
    "apply_all",
    "check_for_serving",
    "current_version",
    "discover",
    "dump_schema",
    "is_empty",
    "make_plan",
    "migrate",
    "normalise_dump",
    "redact_url",
    "reference_schema",
    "repair",
    "status",
    "verify_schema",
]

# Called under the migration lock, once the plan is checked, before the first step changes anything
# (not for a brand-new database): the CLI takes its backup there. Returns details for the audit log.
BeforeSteps = Callable[[Plan], Awaitable[dict[str, Any] | None]]


_DEFAULT_OPTIONS = Options()


def _quiet(_event: dict[str, Any]) -> None:
    pass


def _migration_event(state: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"event": "migration", "name": name, "state": state, **extra}


def _plan_events(
    plan: Plan, *, dry_run: bool, show_sql: bool, waited_for: set[int] | None = None
) -> list[dict[str, Any]]:
    """Lines for what is already there (and, for a dry run, what would happen)."""
    events: list[dict[str, Any]] = []
    stepping = {s.number for s in plan.steps}
    waited_for = waited_for or set()
    for row in plan.applied + [r for _, r in plan.conflicts]:
        if plan.direction == "down" and row.number in stepping:
            continue
        state = "applied_by_other" if row.number in waited_for else "already_applied"
        events.append(
            _migration_event(state, row.filename, checksum=row.checksum, compat=row.compat)
        )
    for row in plan.unknown:
        if plan.direction == "down" and row.number in stepping:
            continue
        events.append(_migration_event("unknown", row.filename, compat=row.compat))
    if dry_run:
        for s in plan.steps:
            extra: dict[str, Any] = {}
            if s.direction == "up":
                assert s.migration is not None
                extra = {"checksum": s.migration.checksum, "compat": s.migration.compat}
            else:
                extra = {"data_loss": s.data_loss}
            if s.script is not None:
                extra["transaction"] = "on" if s.script.transactional else "off"
                if show_sql:
                    extra["statements"] = [st.text for st in s.script.statements()]
            events.append(
                _migration_event(
                    "pending" if s.direction == "up" else "would_revert", s.filename, **extra
                )
            )
        stepping_up = {s.number for s in plan.steps if s.direction == "up"}
        events.extend(
            _migration_event("beyond_target", m.filename)
            for m in plan.pending
            if m.index not in stepping_up
        )
    return events


async def migrate(
    url: str,
    *,
    source: MigrationsSource = None,
    options: Options = _DEFAULT_OPTIONS,
    dry_run: bool = False,
    show_sql: bool = False,
    emit: Emit = _quiet,
    before_steps: BeforeSteps | None = None,
) -> dict[str, Any]:
    """`parsec-server migrate`. Returns the summary event (also emitted); raises MigrationError."""
    migrations = discover(source)
    if dry_run:
        return await _dry_run(url, migrations, options, show_sql, emit)

    conn = await connect(url, purpose="migrate")
    watch_conn: asyncpg.Connection | None = None
    watch: monitor.Watch | None = None
    locked = False
    try:
        try:
            before = make_plan(migrations, await history.read(conn), options.target)
            waited = await lock.acquire(conn, options.lock_wait, options.heartbeat, emit)
            locked = True
            await history.ensure(conn)
            plan = make_plan(migrations, await history.read(conn), options.target)
        except (OSError, asyncpg.InterfaceError) as exc:
            raise CannotConnect(f"lost the database connection: {connect_reason(exc)}") from None
        pending_before = {m.index for m in before.pending} if waited > 0 else set()
        applied_now = {r.number for r in plan.history}
        by_other = pending_before & applied_now
        warnings = plan.check(allow_data_loss=options.allow_data_loss)
        for w in warnings:
            emit({"event": "warning", "message": w})
        for ev in _plan_events(plan, dry_run=False, show_sql=False, waited_for=by_other):
            emit(ev)

        done: list[str] = []
        if plan.steps and plan.history and before_steps is not None:
            detail = await before_steps(plan)
            if detail is not None:
                await history.event(conn, "backup", None, **detail)
        if plan.steps:
            watch_conn = await connect(url, purpose="migrate-monitor")
            watch = monitor.Watch(watch_conn, conn.get_server_pid(), emit, options.heartbeat)
            runner = Runner(conn, watch, options, emit, await conn.fetchval("SHOW search_path"))
            for step in plan.steps:
                try:
                    duration_ms, attempts = await runner.run(step)
                except MigrationFailed as exc:
                    emit(
                        _migration_event(
                            "failed",
                            step.filename,
                            error=exc.message,
                            sqlstate=exc.sqlstate,
                            direction=step.direction,
                        )
                    )
                    exc.message = _failed_message(step, exc.message, await _current(conn))
                    raise
                done.append(step.filename)
                emit(
                    _migration_event(
                        "applied" if step.direction == "up" else "reverted",
                        step.filename,
                        duration_ms=duration_ms,
                        attempts=attempts,
                        checksum=step.migration.checksum
                        if step.migration and step.direction == "up"
                        else None,
                    )
                )
        summary = {
            "event": "summary",
            "dry_run": False,
            "direction": plan.direction,
            "applied": done if plan.direction == "up" else [],
            "reverted": done if plan.direction == "down" else [],
            "applied_by_other": sorted(r.filename for r in plan.history if r.number in by_other),
            "already_applied": len(plan.history)
            - len(by_other if plan.direction == "up" else done),
            "pending": [m.filename for m in plan.pending if m.filename not in done],
            "unknown": [r.filename for r in plan.unknown],
            "warnings": warnings,
        }
        emit(summary)
        return summary
    finally:
        if watch is not None:
            await watch.close()
        await close(watch_conn)
        if locked:
            await lock.release(conn)
        await close(conn)


async def _current(conn: asyncpg.Connection) -> str:
    with contextlib.suppress(Exception):
        name = await conn.fetchval("SELECT name FROM schema_migration ORDER BY number DESC LIMIT 1")
        return f"{name}.sql" if name else "no migration applied"
    return "unknown (connection lost)"


def _failed_message(step: Step, reason: str, current: str) -> str:
    if step.script is not None and step.script.transactional:
        what = "failed and was rolled back"
    else:
        what = (
            "failed part-way (non-transactional: statements that completed stay; a rerun resumes)"
        )
    return f"{step.filename} {what}: {reason}. The database is at {current}"


_LONG_TRANSACTION_S = 60.0
_LONG_TRANSACTIONS = """
SELECT pid, state, application_name, usename,
       left(regexp_replace(query, '\\s+', ' ', 'g'), 120) AS query,
       EXTRACT(EPOCH FROM clock_timestamp() - xact_start)::float8 AS xact_age_s,
       EXTRACT(EPOCH FROM clock_timestamp() - state_change)::float8 AS state_age_s
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND xact_start < clock_timestamp() - make_interval(secs => $1)
ORDER BY xact_start
"""


async def _dry_run(
    url: str, migrations: list[Migration], options: Options, show_sql: bool, emit: Emit
) -> dict[str, Any]:
    conn = await connect(url, purpose="migrate-dry-run", read_only=True)
    try:
        async with conn.transaction(readonly=True):
            rows = await history.read(conn)
            long_running = [
                dict(r) for r in await conn.fetch(_LONG_TRANSACTIONS, _LONG_TRANSACTION_S)
            ]
        plan = make_plan(migrations, rows, options.target)
        conflict = await verify.pending_conflict(conn, plan)
    except (OSError, asyncpg.InterfaceError) as exc:
        raise CannotConnect(f"lost the database connection: {connect_reason(exc)}") from None
    finally:
        await close(conn)
    if plan.steps:
        for tx in long_running:  # pre-flight: what will make lock-taking steps wait and retry
            emit(
                {
                    "event": "warning",
                    "message": (
                        f"{monitor.describe_blocker(tx)} has had a transaction open for "
                        f"{monitor.human_duration(tx['xact_age_s'])}: steps that lock its tables "
                        "will wait "
                        "(up to their lock_timeout, then retry) until it ends"
                    ),
                }
            )
    for ev in _plan_events(plan, dry_run=True, show_sql=show_sql):
        emit(ev)
    ups = [s.filename for s in plan.steps if s.direction == "up"]
    downs = [s.filename for s in plan.steps if s.direction == "down"]
    summary: dict[str, Any] = {
        "event": "summary",
        "dry_run": True,
        "direction": plan.direction,
        "to_apply": ups,
        "to_revert": downs,
        "data_loss": [s.filename for s in plan.steps if s.direction == "down" and s.data_loss],
        "already_applied": len(plan.applied) + len(plan.conflicts) - len(downs),
        "unknown": [r.filename for r in plan.unknown],
        "pending": [m.filename for m in plan.pending],
        "warnings": [],
    }
    try:
        summary["warnings"] = plan.check(allow_data_loss=options.allow_data_loss)
        if conflict is not None:
            conflict.message = f"{conflict.migration}: {conflict.message}"
            raise conflict
    except MigrationError as exc:
        summary["refused"] = {"kind": exc.kind.value, "message": exc.message}
        emit(summary)
        exc.message = f"migrate would refuse: {exc.message}"
        raise
    emit(summary)
    return summary


async def apply_all(
    url: str, *, source: MigrationsSource = None, lock_wait: float = 60.0, emit: Emit = _quiet
) -> None:
    """Migrate to the latest schema, under the migration lock (brand-new embedded database,
    tests)."""
    await migrate(url, source=source, options=Options(lock_wait=lock_wait), emit=emit)


_default_migrations: list[Migration] | None = None


def _migrations_for(source: MigrationsSource) -> list[Migration]:
    global _default_migrations
    if source is not None:
        return discover(source)
    if _default_migrations is None:
        _default_migrations = discover(None)
    return _default_migrations


async def check_for_serving(
    conn: asyncpg.Connection, *, source: MigrationsSource = None
) -> list[str]:
    """Server start-up check (two cheap queries). Never migrates.

    Raises SchemaNotReady (pending migrations) or DatabaseAhead (migrations this release does not
    know that are not all declared `compat: expand`). Returns warnings: a newer but compatible
    schema, drift.
    """
    migrations = _migrations_for(source)
    rows = await history.read(conn)
    plan = make_plan(migrations, rows, None)
    warnings: list[str] = []
    if plan.conflicts:
        names = [row.filename for _, row in plan.conflicts]
        raise DatabaseAhead(
            f"the database's migration history does not match this parsec-server {__version__}: "
            f"it holds {', '.join(names)} under numbers this release uses for other migrations",
            names=names,
        )
    breaking = [r for r in plan.unknown if r.compat != "expand"]
    if breaking:
        listed = ", ".join(f"{r.filename} ({r.compat})" for r in plan.unknown)
        raise DatabaseAhead(
            f"the database schema is newer than this parsec-server {__version__}: it holds "
            "migration(s) "
            f"this release does not know and cannot run on: {listed}; upgrade parsec-server",
            names=[r.filename for r in breaking],
        )
    if plan.pending:
        names = [m.filename for m in plan.pending]
        raise SchemaNotReady(
            f"the database needs {len(names)} migration(s) ({', '.join(names)}): run "
            "`parsec-server migrate --dry-run` to review them, then `parsec-server migrate`",
            pending=names,
        )
    if plan.unknown:
        warnings.append(
            f"the database schema is newer than this parsec-server {__version__} "
            f"({', '.join(r.filename for r in plan.unknown)}), declared compatible with it: "
            "running anyway"
        )
    for m, _row in plan.drift:
        warnings.append(
            f"{m.filename} differs from the version applied to this database (checksum drift); "
            f"check it and run `parsec-server migrate repair {m.name}`"
        )
    return warnings


async def current_version(conn: asyncpg.Connection) -> str | None:
    """Name of the newest applied migration (`0002_usage_size_indexes`), None before the first."""
    if not await history.exists(conn):
        return None
    name: str | None = await conn.fetchval(
        "SELECT name FROM schema_migration ORDER BY number DESC LIMIT 1"
    )
    return name


async def is_empty(url: str) -> bool:
    """True when the database holds no table, view or sequence outside the system schemas."""
    conn = await connect(url, purpose="check", read_only=True)
    try:
        return not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%')"
        )
    finally:
        await close(conn)


def resolve_name(migrations: list[Migration], rows: list[Applied], name: str) -> int:
    """`0002`, `2`, `0002_foo` or `0002_foo.sql` -> 2."""
    key = name.strip().removesuffix(".sql").removesuffix(".down")
    if key.isdigit():
        return int(key)
    for m in migrations:
        if m.name == key:
            return m.index
    for row in rows:
        if row.name == key:
            return row.number
    prefix = re.match(r"^(\d{4})_", key)
    if prefix:
        return int(prefix.group(1))
    raise MigrationFailed(f"no migration named {name!r}")


async def repair(
    url: str,
    name: str,
    *,
    source: MigrationsSource = None,
    lock_wait: float = 60.0,
    emit: Emit = _quiet,
) -> dict[str, Any]:
    """Accept the current file of one applied migration (checksum, compat, down script); audited."""
    migrations = discover(source)
    conn = await connect(url, purpose="migrate-repair")
    locked = False
    try:
        await lock.acquire(conn, lock_wait, 5.0, emit)
        locked = True
        rows = await history.read(conn)
        number = resolve_name(migrations, rows, name)
        m = next((x for x in migrations if x.index == number), None)
        row = next((r for r in rows if r.number == number), None)
        if m is None:
            raise MigrationFailed(f"{name}: this release has no migration {number:04d}")
        if row is None:
            raise MigrationFailed(
                f"{m.filename} is not applied to this database: nothing to repair"
            )
        if row.name != m.name:
            raise MigrationFailed(
                f"{m.filename}: the database applied {row.name} under that number; repair only "
                "accepts "
                "an edited file, not a different migration"
            )
        if row.checksum == m.checksum and row.compat == m.compat:
            result = {
                "event": "repair",
                "name": m.filename,
                "changed": False,
                "message": f"{m.filename} matches the applied version: nothing to repair",
            }
        else:
            entry = await history.repair(conn, row, m)
            result = {
                "event": "repair",
                "name": m.filename,
                "changed": True,
                **entry,
                "message": f"{m.filename}: accepted checksum {m.checksum[:12]}… "
                f"(was {row.checksum[:12]}…), recorded in the history",
            }
        emit(result)
        return result
    finally:
        if locked:
            await lock.release(conn)
        await close(conn)


async def status(url: str, *, source: MigrationsSource = None) -> dict[str, Any]:
    """History with durations, versions, repairs, plus what is pending/unknown and recent events."""
    migrations = discover(source)
    conn = await connect(url, purpose="migrate-status", read_only=True)
    try:
        rows = await history.read(conn)
        events = await history.recent_events(conn)
        holder = await monitor.lock_holder(conn)
        progress_rows = (
            [
                dict(r)
                for r in await conn.fetch("SELECT * FROM schema_migration_progress ORDER BY number")
            ]
            if await conn.fetchval("SELECT to_regclass('schema_migration_progress') IS NOT NULL")
            else []
        )
    finally:
        await close(conn)
    plan = make_plan(migrations, rows, None)
    drifted = {m.index for m, _ in plan.drift}
    conflicting = {m.index for m, _ in plan.conflicts}
    by_number = {r.number: r for r in rows}
    items: list[dict[str, Any]] = []
    for m in migrations:
        row = by_number.get(m.index)
        if row is None:
            items.append({"name": m.filename, "state": "pending", "compat": m.compat})
            continue
        state = (
            "drift" if m.index in drifted else "conflict" if m.index in conflicting else "applied"
        )
        items.append(_status_item(row, state))
    items.extend(_status_item(row, "unknown") for row in plan.unknown)
    return {
        "event": "status",
        "database": redact_url(url),
        "migrations": items,
        "partial": [jsonable(p) for p in progress_rows],
        "lock_holder": jsonable(holder),
        "recent_events": [jsonable(e) for e in events],
    }


def _status_item(row: Applied, state: str) -> dict[str, Any]:
    return {
        "name": row.filename,
        "state": state,
        "applied_on": row.applied_on.isoformat(),
        "duration_ms": row.duration_ms,
        "attempts": row.attempts,
        "server_version": row.server_version,
        "applied_by": row.applied_by,
        "compat": row.compat,
        "checksum": row.checksum,
        "repairs": row.repairs,
    }
