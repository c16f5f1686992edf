"""`parsec-server migrate` on a database of the official Parsec server (docs/switching-from-official.md).

Runs before the engine: the engine would take the official tables for squatters of its own
migrations. Reads only. An official database at a level this release does not adopt (older or
newer 3.x, 2.x) is refused with what to upgrade first (exit 17); an official 3.9.x database gets
the two lineages in the official guide's format on --dry-run, then, this release not converting
yet, the refusal (exit 18). Nothing is changed in either case.
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from parsec_server.cli.migrate.common import Renderer, fail, run
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
from parsec_server.storage.migrations.connection import close, connect
from parsec_server.storage.migrations.source import discover, reference_schema_path

UNAVAILABLE = (
    f"this is an official Parsec server {ADOPTABLE_RELEASE}.x database: this parsec-server release "
    "only detects it and cannot convert it yet (see docs/switching-from-official.md); keep the "
    "official server running on it; nothing was changed"
)


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


def _our_tables(migrations_dir: Path | None) -> frozenset[str]:
    """Table names of parsec-server's reference schema (schema.sql of the migrations folder)."""
    try:
        text = Path(reference_schema_path(migrations_dir)).read_text()
    except OSError:
        return frozenset()
    return frozenset(re.findall(r"^CREATE TABLE (?:public\.)?(\w+)", text, flags=re.MULTILINE))


def refuse_official(
    url: str, *, dry_run: bool, migrations_dir: Path | None, renderer: Renderer, debug: bool
) -> None:
    """Return when the database is not an official server's; otherwise print and exit."""
    ours = _our_tables(migrations_dir) if dry_run else None
    found, tables = run(_detect(url, ours), debug=debug, renderer=renderer)
    if found is None:
        return
    if found.level is not OfficialLevel.V3_9:
        fail(Exit.OFFICIAL_LEVEL, found.upgrade_advice(), renderer)
    if dry_run:
        _print_lineages(found, [m.filename for m in discover(migrations_dir)], tables, renderer)
    fail(Exit.ADOPTION_UNAVAILABLE, UNAVAILABLE, renderer)


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
                "message": f"official data of features parsec-server does not serve (accounts "
                f"and vaults, TOTP, asynchronous enrollment): {listed}; the adoption would keep "
                f"it, unused, in schema `{OFFICIAL_SCHEMA}`",
            }
        )


def _print_lineages(
    found: OfficialDatabase, ours: list[str], tables: list[OfficialTable], renderer: Renderer
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
    header(
        "parsec-server",
        "schema_migration",
        "Lineage of parsec-server (table `schema_migration`), applied by the adoption:",
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
            "refused": {"exit_code": int(Exit.ADOPTION_UNAVAILABLE), "message": UNAVAILABLE},
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
            "adoption (not available in this release)"
        )
    else:
        note = found.upgrade_advice().removesuffix("; nothing was changed")
    return {
        "table": "migration",
        "level": found.level.value,
        "applied": list(found.applied),
        "note": note,
    }
