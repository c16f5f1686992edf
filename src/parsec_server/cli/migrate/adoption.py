"""`parsec-server migrate` on a database of the official Parsec server (docs/switching-from-official.md).

Runs before the engine: the engine would take the official tables for squatters of its own
migrations. An official database at a level this release does not adopt (older or newer 3.x, 2.x)
is refused with what to upgrade first (exit 17), nothing changed. An official 3.9.x database: the
dry run prints the two lineages in the official guide's format, what happens to each official
table, and changes nothing; the real run takes the migration lock, a verified backup (unless
--no-backup), then converts the database in one transaction (storage/adoption/convert.py), printing
a progress line per table. A failed conversion is rolled back (exit 18, nothing changed).
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import click

from parsec_server.cli.migrate.common import Renderer, duration_ms, exit_code_for, fail, run
from parsec_server.exit_codes import Exit
from parsec_server.storage.adoption import (
    ADOPTABLE_RELEASE,
    OFFICIAL_SCHEMA,
    OfficialDatabase,
    OfficialLevel,
    OfficialTable,
    detect,
    inventory,
)
from parsec_server.storage.adoption.convert import AdoptionError, AdoptionResult, Emit, adopt
from parsec_server.storage.migrations import lock
from parsec_server.storage.migrations.connection import close, connect
from parsec_server.storage.migrations.errors import BackupFailed, MigrationError
from parsec_server.storage.migrations.source import Migration, discover


async def _detect(
    url: str, ours: frozenset[str] | None
) -> tuple[OfficialDatabase | None, list[OfficialTable]]:
    """The official database (None if not one) and, when `ours` is given, its tables."""
    conn = await connect(url, purpose="migrate-detect", read_only=True)
    try:
        async with conn.transaction(readonly=True):
            found = await detect(conn)
            if found is None or ours is None or found.level is not OfficialLevel.V3_9:
                return found, []
            return found, await inventory(conn, ours)
    finally:
        await close(conn)


OURS_HEADER = "Lineage of parsec-server (table `schema_migration`), applied by the adoption:"


def _our_tables(migrations_dir: Path | None) -> frozenset[str]:
    """Names of the tables parsec-server's migrations (this release's files) create."""
    names: set[str] = set()
    for m in discover(migrations_dir):
        for statement in m.statements():
            found = re.match(r"CREATE TABLE (?:IF NOT EXISTS )?(?:public\.)?(\w+)", statement.words)
            if found is not None:
                names.add(found.group(1).lower())
    return frozenset(names)


def adopt_official(
    url: str,
    *,
    dry_run: bool,
    migrations_dir: Path | None,
    renderer: Renderer,
    debug: bool,
    backup_dir: Path | None,
    lock_wait: float,
    heartbeat: float,
) -> None:
    """Return when the database is not an official server's; otherwise adopt it (or, on a dry
    run, show the adoption) and exit. `backup_dir` None: --no-backup."""
    try:  # the shipped (or --migrations-dir) files: an invalid set is one error line, not a traceback
        ours = _our_tables(migrations_dir)
    except MigrationError as exc:
        if debug:
            raise
        fail(exit_code_for(exc), exc.message, renderer)
    found, tables = run(_detect(url, ours), debug=debug, renderer=renderer)
    if found is None:
        return
    if found.level is not OfficialLevel.V3_9:
        fail(Exit.OFFICIAL_LEVEL, found.upgrade_advice(), renderer)
    migrations = discover(migrations_dir)
    _print_lineages(found, [m.filename for m in migrations], tables, renderer, dry_run=dry_run)
    if dry_run:
        sys.exit(int(Exit.OK))
    result = run(
        _adopt(url, migrations, renderer, backup_dir, lock_wait, heartbeat),
        debug=debug,
        renderer=renderer,
    )
    if result is None:  # another run adopted it while this one waited for the lock
        sys.exit(int(Exit.OK))
    renderer(
        {
            "event": "summary",
            "dry_run": False,
            "direction": "up",
            "applied": [m.filename for m in migrations],
            "reverted": [],
            "applied_by_other": [],
            "already_applied": len(found.applied),
            "adoption": {
                "official_release": ADOPTABLE_RELEASE,
                "official_schema": OFFICIAL_SCHEMA,
                "rows": result.rows,
                "duration_s": round(result.duration_s, 2),
            },
        }
    )
    if not renderer.as_json:
        click.echo(
            f"Adopted the official Parsec server {ADOPTABLE_RELEASE}.x database in "
            f"{result.duration_s:.1f} s: its tables are kept, unused, in schema "
            f"`{OFFICIAL_SCHEMA}`; start parsec-server on it."
        )
    sys.exit(int(Exit.OK))


def _progress(renderer: Renderer) -> Emit:
    """The conversion's events, with a human line per table."""

    def emit(ev: dict[str, Any]) -> None:
        if renderer.as_json or ev["event"] != "adoption_step":
            renderer(ev)
            return
        source = f" <- {ev['source']}" if ev["source"] else ""
        click.echo(f"  {ev['table']}{source}: {ev['rows']} rows ({duration_ms(ev['duration_ms'])})")

    return emit


async def _backup(url: str, backup_dir: Path, renderer: Renderer) -> None:
    """The verified pre-migrate backup (as `migrate` takes before any change)."""
    from parsec_server.backup import BackupError, create_backup

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = backup_dir / f"pre-migrate-{stamp}-official-{ADOPTABLE_RELEASE}"
    output, n = base, 1
    while output.exists():
        output, n = base.with_name(f"{base.name}-{n}"), n + 1
    try:
        result = await create_backup(url, None, output)
    except (BackupError, OSError) as exc:
        raise BackupFailed(
            f"the backup before the adoption failed, nothing was changed: {exc} (fix it, or pass "
            "--no-backup)"
        ) from None
    size = int(result.metadata["database"]["bytes"])
    renderer({"event": "backup", "path": str(result.path), "bytes": size})


async def _adopt(
    url: str,
    migrations: list[Migration],
    renderer: Renderer,
    backup_dir: Path | None,
    lock_wait: float,
    heartbeat: float,
) -> AdoptionResult | None:
    conn = await connect(url, purpose="migrate-adopt")
    try:
        await lock.acquire(conn, lock_wait, heartbeat, renderer)
        try:
            found = await detect(conn)
            if found is None:
                renderer(
                    {
                        "event": "warning",
                        "message": "another migrate run adopted the database while this one "
                        "waited for the migration lock: nothing left to do",
                    }
                )
                return None
            if backup_dir is None:
                renderer(
                    {
                        "event": "warning",
                        "message": "--no-backup: NO BACKUP taken before the adoption; the "
                        "official tables stay in schema "
                        f"`{OFFICIAL_SCHEMA}`, but only your own backup restores the official "
                        "server's database as it was",
                    }
                )
            else:
                await _backup(url, backup_dir, renderer)
            if not renderer.as_json:
                click.echo(
                    f"Adopting the official Parsec server {ADOPTABLE_RELEASE}.x database "
                    "(one transaction: interrupted, it changes nothing)."
                )
                click.echo(OURS_HEADER)
            try:
                return await adopt(conn, migrations, _progress(renderer), heartbeat=heartbeat)
            except AdoptionError as exc:
                fail(Exit.ADOPTION_FAILED, f"{exc}; rolled back, nothing was changed", renderer)
            except asyncpg.PostgresError as exc:
                text = " ".join(str(exc).split())
                fail(
                    Exit.ADOPTION_FAILED,
                    f"the adoption failed ({type(exc).__name__}: {text}); rolled back, nothing "
                    "was changed",
                    renderer,
                )
        finally:
            await lock.release(conn)
    finally:
        await close(conn)


def _print_inventory(tables: list[OfficialTable], renderer: Renderer) -> None:
    """What the adoption will do with the official tables (stage 2 moves the colliding ones)."""
    colliding = [t for t in tables if t.collides]
    unserved = [t for t in tables if t.unserved and t.rows]
    renderer(
        {
            "event": "official_tables",
            "schema": OFFICIAL_SCHEMA,
            "tables": [
                {"name": t.name, "rows": t.rows, "collides": t.collides, "unserved": t.unserved}
                for t in tables
            ],
        }
    )
    if renderer.as_json:
        return
    listed = ", ".join(f"{t.name} ({t.rows_text})" for t in colliding)
    click.echo(
        f"Official tables (rows) whose names parsec-server's schema uses, to be moved to schema "
        f"`{OFFICIAL_SCHEMA}` by the adoption, never dropped: {listed or 'none'}"
    )
    if unserved:
        listed = ", ".join(f"{t.name} ({t.rows_text} rows)" for t in unserved)
        renderer(
            {
                "event": "warning",
                "message": f"official data of features parsec-server does not serve (this "
                f"release has no table for it): {listed}; the adoption keeps it, unused, in "
                f"schema `{OFFICIAL_SCHEMA}`",
            }
        )


def _print_lineages(
    found: OfficialDatabase,
    ours: list[str],
    tables: list[OfficialTable],
    renderer: Renderer,
    *,
    dry_run: bool,
) -> None:
    def header(lineage: str, table: str, text: str) -> None:
        renderer({"event": "lineage", "lineage": lineage, "table": table, "text": text})
        if not renderer.as_json:
            click.echo(text)

    header(
        "official",
        "migration",
        f"Lineage of the official Parsec server {ADOPTABLE_RELEASE}.x (table `migration`), "
        "applied by the official server:",
    )
    for name in found.applied:
        renderer(
            {"event": "migration", "name": name, "state": "already_applied", "lineage": "official"}
        )
    if not dry_run:
        return  # the real run prints our lineage as it applies it
    header(
        "parsec-server",
        "schema_migration",
        OURS_HEADER,
    )
    for name in ours:
        renderer(
            {"event": "migration", "name": name, "state": "pending", "lineage": "parsec-server"}
        )
    _print_inventory(tables, renderer)
    renderer(
        {
            "event": "summary",
            "dry_run": True,
            "direction": "up",
            "to_apply": ours,
            "to_revert": [],
            "data_loss": [],
            "already_applied": len(found.applied),
            "unknown": [],
            "pending": ours,
            "warnings": [],
            "official": {"release": ADOPTABLE_RELEASE, "applied": list(found.applied)},
            "adoption": {"official_schema": OFFICIAL_SCHEMA},
        }
    )


def official_status(url: str, *, debug: bool, renderer: Renderer) -> dict[str, object] | None:
    """For `migrate status`: the official history of an official database (None otherwise)."""
    found, _ = run(_detect(url, None), debug=debug, renderer=renderer)
    if found is None:
        return None
    if found.level is OfficialLevel.V3_9:
        note = (
            f"an official Parsec server {ADOPTABLE_RELEASE}.x database, not adopted: "
            "parsec-server's own migrations are all pending; `migrate --dry-run` shows the "
            "adoption, `migrate` does it"
        )
    else:
        note = found.upgrade_advice().removesuffix("; nothing was changed")
    return {
        "table": "migration",
        "level": found.level.value,
        "applied": list(found.applied),
        "note": note,
    }
