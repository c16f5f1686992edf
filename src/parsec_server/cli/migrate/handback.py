"""`parsec-server migrate --to official-3.9`: hand a parsec-server database back to the official
Parsec server 3.9.x (docs/switching-from-official.md, "Rollback"). The conversion itself is
storage/adoption/handback.py; here: the checks, the lock, the verified backup, the output.

The dry run prints the official lineage the hand-back writes (the official guide's format), the
rows each official table would receive, what the official schema cannot hold (each on a
`warning:` line), and exits with the code the real run would: 10 when something would be lost
without --allow-data-loss.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from parsec_server.cli.migrate.common import Renderer, fail, run
from parsec_server.exit_codes import Exit
from parsec_server.storage.adoption import OfficialLevel, detect
from parsec_server.storage.adoption.handback import (
    OFFICIAL_TARGET,
    HandbackPlan,
    HandbackResult,
    handback,
    plan,
    refusal,
)
from parsec_server.storage.adoption.handback_schema import OFFICIAL_MIGRATION_NAMES_3_9
from parsec_server.storage.migrations import engine, lock
from parsec_server.storage.migrations.connection import close, connect
from parsec_server.storage.migrations.errors import BackupFailed, MigrationFailed

OFFICIAL_FILES = tuple(
    f"{n:04d}_{name}.sql" for n, name in enumerate(OFFICIAL_MIGRATION_NAMES_3_9, 1)
)


def is_handback_target(value: str | None) -> bool:
    return value is not None and value.strip().lower() == OFFICIAL_TARGET


class HandbackRenderer(Renderer):
    def _on_handback_table(self, ev: dict[str, Any]) -> None:
        if ev["state"] == "copying":
            self.err(f"  … {ev['table']}: copying ({ev['estimate']} rows)")
        elif ev["state"] == "progress":
            done = f"{ev['rows']} of {ev['estimate']} rows" if "rows" in ev else "still copying"
            self.err(f"  … {ev['table']}: {done} ({ev['elapsed_s']:.0f} s)")
        else:
            ms = ev["duration_ms"]
            took = f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"
            what = "re-added and validated" if ev["table"] == "foreign keys" else "rows"
            self.out(f"{ev['table']}: {ev['rows']} {what} ({took})")

    def _on_summary(self, ev: dict[str, Any]) -> None:
        if ev.get("dry_run") and "to_apply" in ev:
            super()._on_summary(ev)


@dataclass(frozen=True, slots=True)
class _Found:
    already_official: bool
    plan: HandbackPlan | None
    version: str | None


async def _inspect(url: str, migrations_dir: Path | None, emit: Renderer) -> _Found:
    """Read-only: where the database stands, and the plan when it is ours."""
    conn = await connect(url, purpose="migrate-handback", read_only=True)
    try:
        async with conn.transaction(readonly=True, isolation="repeatable_read"):
            official = await detect(conn)
            if official is not None:
                if official.level is not OfficialLevel.V3_9:
                    fail(Exit.OFFICIAL_LEVEL, official.upgrade_advice(), emit)
                return _Found(True, None, None)
            version = await engine.current_version(conn)
            if version is None:
                raise MigrationFailed(
                    "the database holds no parsec-server schema (no `schema_migration` table): "
                    "there is nothing to hand back; nothing was changed"
                )
            for warning in await engine.check_for_serving(conn, source=migrations_dir):
                emit({"event": "warning", "message": warning})
            return _Found(False, await plan(conn), version)
    finally:
        await close(conn)


async def _apply(
    url: str,
    *,
    allow_data_loss: bool,
    lock_wait: float,
    lock_timeout: float,
    heartbeat: float,
    emit: Renderer,
) -> HandbackResult | None:
    conn = await connect(url, purpose="migrate-handback")
    try:
        await lock.acquire(conn, lock_wait, heartbeat, emit)
        try:
            if await detect(conn) is not None:
                return None  # another run handed it back while this one waited
            return await handback(
                conn,
                allow_data_loss=allow_data_loss,
                emit=emit,
                lock_timeout_s=lock_timeout,
                heartbeat_s=heartbeat,
            )
        finally:
            await lock.release(conn)
    finally:
        await close(conn)


def _print_plan(found: _Found, renderer: Renderer, *, dry_run: bool) -> None:
    assert found.plan is not None
    the_plan = found.plan
    text = (
        f"Lineage of the official Parsec server 3.9.x (table `migration`), written by the "
        f"hand-back from parsec-server's schema (table `schema_migration`, at {found.version}):"
    )
    renderer({"event": "lineage", "lineage": "official", "table": "migration", "text": text})
    if not renderer.as_json:
        click.echo(text)
    for name in OFFICIAL_FILES:
        renderer({"event": "migration", "name": name, "state": "pending", "lineage": "official"})
    shown = [c for c in the_plan.copies if " " not in c.table]  # not the certifiers' UPDATE
    copies = [{"table": c.table, "rows": c.rows} for c in shown]
    renderer({"event": "handback_plan", "tables": copies})
    if not renderer.as_json:
        listed = ", ".join(f"{c.table} ({c.rows})" for c in shown)
        click.echo(f"Rows to copy into the official tables: {listed}")
    for item in the_plan.unrepresentable:
        renderer(
            {
                "event": "warning",
                "message": f"not representable in the official 3.9.x schema: {item.text}",
                "unrepresentable": {"what": item.what, "rows": item.rows},
            }
        )
    if the_plan.old_official_copy:
        renderer(
            {
                "event": "warning",
                "message": "schema `parsec_official` (the official tables as they were when "
                "parsec-server adopted this database) is out of date: the hand-back renames it "
                "`parsec_official_superseded` and copies today's data instead",
            }
        )
    if dry_run:
        renderer(
            {
                "event": "summary",
                "dry_run": True,
                "direction": "handback",
                "to_apply": list(OFFICIAL_FILES),
                "to_revert": [],
                "data_loss": [u.what for u in the_plan.unrepresentable],
                "already_applied": 0,
                "unknown": [],
                "pending": list(OFFICIAL_FILES),
                "warnings": [],
            }
        )


def _backup(url: str, backup_dir: Path, version: str | None, renderer: Renderer) -> None:
    from parsec_server.backup import BackupError, create_backup

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = backup_dir / f"pre-handback-{stamp}-{version}"
    output, n = base, 1
    while output.exists():
        output, n = base.with_name(f"{base.name}-{n}"), n + 1
    try:
        result = asyncio.run(create_backup(url, None, output))
    except (BackupError, OSError) as exc:
        raise BackupFailed(
            f"the backup before the hand-back failed, nothing was changed: {exc} (fix it, or "
            "pass --no-backup)"
        ) from None
    size = int(result.metadata["database"]["bytes"])
    renderer({"event": "backup", "path": str(result.path), "bytes": size})


def handback_cmd(
    url: str,
    *,
    dry_run: bool,
    allow_data_loss: bool,
    backup_dir: Path,
    no_backup: bool,
    lock_wait: float,
    lock_timeout: float,
    heartbeat: float,
    migrations_dir: Path | None,
    as_json: bool,
    debug: bool,
) -> None:
    renderer = HandbackRenderer(as_json)
    found = run(_inspect(url, migrations_dir, renderer), debug=debug, renderer=renderer)
    if found.already_official:
        message = (
            "the database is already at the official Parsec server 3.9.x level (handed back "
            "earlier): nothing to do"
        )
        renderer({"event": "summary", "dry_run": dry_run, "direction": "handback", "done": []})
        if not as_json:
            click.echo(message)
        return
    _print_plan(found, renderer, dry_run=dry_run)
    assert found.plan is not None
    if found.plan.unrepresentable and not allow_data_loss:
        fail(Exit.DATA_LOSS_REFUSED, refusal(found.plan.unrepresentable), renderer)
    if dry_run:
        return
    if no_backup:
        renderer(
            {
                "event": "warning",
                "message": "--no-backup: NO BACKUP taken before the hand-back",
            }
        )
    else:
        try:
            _backup(url, backup_dir, found.version, renderer)
        except BackupFailed as exc:
            fail(Exit.BACKUP_FAILED, exc.message, renderer)
    result = run(
        _apply(
            url,
            allow_data_loss=allow_data_loss,
            lock_wait=lock_wait,
            lock_timeout=lock_timeout,
            heartbeat=heartbeat,
            emit=renderer,
        ),
        debug=debug,
        renderer=renderer,
    )
    if result is None:
        text = "another run handed the database back while this one waited: nothing to do"
        renderer({"event": "summary", "dry_run": False, "direction": "handback", "done": []})
    else:
        extra = (
            f"; the old official copy is now schema `{result.superseded}`"
            if result.superseded
            else ""
        )
        text = (
            f"Handed back: the database is at the official Parsec server 3.9.x level "
            f"({len(OFFICIAL_FILES)} official migrations recorded); parsec-server's tables are "
            f"kept, unused, in schema `{result.moved_to}`{extra}."
        )
        renderer(
            {
                "event": "summary",
                "dry_run": False,
                "direction": "handback",
                "done": list(OFFICIAL_FILES),
                "rows": result.rows,
                "moved_to": result.moved_to,
                "superseded": result.superseded,
            }
        )
    if not as_json:
        click.echo(text)
