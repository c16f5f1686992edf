"""`parsec-server migrate status`: the migration history."""

from __future__ import annotations

import json
from pathlib import Path

import click

from parsec_server.cli.migrate.adoption import official_status
from parsec_server.cli.migrate.common import (
    Renderer,
    db_opt,
    debug_opt,
    inherit,
    json_opt,
    migrations_dir_opt,
    need_db,
    run,
)


@click.command("status", help="Show the migration history: durations, versions, repairs, pending.")
@db_opt
@json_opt
@migrations_dir_opt
@debug_opt
@click.pass_context
def status_cmd(
    ctx: click.Context, db: str | None, as_json: bool, migrations_dir: Path | None, debug: bool
) -> None:
    from parsec_server.storage.migrations import engine
    from parsec_server.storage.migrations.monitor import human_duration

    url = need_db(inherit(ctx, "db", db))
    as_json = inherit(ctx, "as_json", as_json)
    renderer = Renderer(as_json)
    report = run(
        engine.status(url, source=inherit(ctx, "migrations_dir", migrations_dir)),
        debug=inherit(ctx, "debug", debug),
        renderer=renderer,
    )
    official = official_status(url, debug=inherit(ctx, "debug", debug), renderer=renderer)
    if official is not None:
        report["official"] = official  # the official server's own history (adoption.py)
    if as_json:
        click.echo(json.dumps(report, default=str, ensure_ascii=False))
        return
    click.echo(f"Database: {report['database']}")
    if official is not None:
        applied = official["applied"]
        assert isinstance(applied, list)
        click.echo(
            f"Official Parsec server history (table `migration`): {len(applied)} official "
            f"migration(s), last {applied[-1] if applied else 'none'}: {official['note']}"
        )
    rows = [("MIGRATION", "STATE", "APPLIED ON (UTC)", "TOOK", "BY VERSION", "COMPAT", "NOTES")]
    for it in report["migrations"]:
        notes = []
        if it.get("attempts", 1) > 1:
            notes.append(f"{it['attempts']} attempts")
        notes.extend(
            f"repaired {r.get('repaired_on', '?')[:19].replace('T', ' ')} by {r.get('by')} "
            f"({r.get('old_checksum', '')[:8]}→{r.get('new_checksum', '')[:8]})"
            for r in it.get("repairs") or []
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
