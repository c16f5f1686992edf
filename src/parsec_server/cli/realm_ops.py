"""The official server's realm operator commands, same names and meaning: `export_realm`,
`human_accesses`, `list_deletable_realms`, `delete_realm` (docs/cli.md; the export format is in
docs/realm-export.md)."""

from __future__ import annotations

import datetime
import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import click

from parsec_server.asgi.audit import cli_action
from parsec_server.cli.operator import (
    OperatorError,
    backend,
    blockstore_config,
    blockstore_option,
    confirm,
    database_options,
    delete_blocks,
    echo_json,
    leftover_error,
    organization_option,
    parse_realm_id,
    rfc3339,
    run_operator,
    write_slugs,
    yes_option,
)
from parsec_server.exit_codes import Exit

EXPORT_MAGIC = 87948  # the official server's realm export: same tables, readable by its tools
EXPORT_VERSION = 1
SNAPSHOT_LAG = datetime.timedelta(seconds=320)  # a client may still write this far in the past


async def _org_and_realm(conn: Any, organization_id: str, realm_id: uuid.UUID) -> tuple[Any, Any]:
    from parsec_server.storage import operator as ops

    org = await ops.organization(conn, organization_id)
    if org is None:
        raise OperatorError(f"organization {organization_id!r} not found", Exit.NOT_FOUND)
    realm = await ops.realm(conn, org.internal_id, realm_id)
    if realm is None:
        raise OperatorError(
            f"realm {realm_id.hex} not found in organization {organization_id!r}", Exit.NOT_FOUND
        )
    return org, realm


# --- list_deletable_realms ------------------------------------------------------------------------


@click.command(
    "list_deletable_realms",
    short_help="List realms eligible for deletion",
    help="List the realms of an organization that `delete_realm` accepts now: their deletion date "
    "has passed (archiving set to DELETION_PLANNED by an owner), or they are orphaned (every "
    "member with a role is revoked).",
)
@organization_option
@click.option("--json", "as_json", is_flag=True, help="Output as JSON")
@database_options
def list_deletable_realms_cmd(
    organization: str, as_json: bool, db: str | None, data_dir: Path | None
) -> None:
    async def main(url: str) -> list[Any]:
        from parsec_server.storage import operator as ops

        async with backend(url) as be, be.db.connection() as conn:
            org = await ops.organization(conn, organization)
            if org is None:
                raise OperatorError(f"organization {organization!r} not found", Exit.NOT_FOUND)
            return await ops.deletion_candidates(
                conn, org.internal_id, datetime.datetime.now(datetime.UTC)
            )

    candidates = run_operator(db, data_dir, main)
    if as_json:
        echo_json(
            [
                {
                    "realm_id": c.realm_id.hex,
                    "kind": c.kind,
                    ("deletion_date" if c.kind == "deletion_planned" else "orphaned_since"): (
                        rfc3339(c.since)
                    ),
                }
                for c in candidates
            ]
        )
        return
    if not candidates:
        click.echo("No realms eligible for deletion")
        return
    click.echo(f"Found {len(candidates)} deletion candidate(s):\n")
    for c in candidates:
        when = "deletion_date" if c.kind == "deletion_planned" else "orphaned_since"
        click.echo(f"  Realm {c.realm_id.hex}  kind={c.kind:<16}  {when}={rfc3339(c.since)}")


# --- delete_realm ---------------------------------------------------------------------------------


@click.command(
    "delete_realm",
    short_help="Delete a realm's metadata and blocks",
    help="Delete a realm whose deletion date has passed, or that is orphaned (see "
    "list_deletable_realms): its vlobs, its blocks (metadata in the database, data in the "
    "blockstore given by --blockstore), its keys bundles and accesses. The realm stays, marked "
    "deleted, with its certificates. Asks for confirmation (--yes in scripts); --dry-run shows "
    "what would be deleted and changes nothing.",
)
@organization_option
@click.option("--realm", "realm_hex", required=True, metavar="FROM_HEX")
@click.option(
    "--dump-realm-blocks",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also write the list of the realm's blocks (`<organization>/<block id>`, one a line) to "
    "this file, as the official server does.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show what would be deleted (and write the list); delete nothing.",
)
@yes_option
@blockstore_option
@database_options
def delete_realm_cmd(
    organization: str,
    realm_hex: str,
    dump_realm_blocks: Path | None,
    dry_run: bool,
    yes: bool,
    blockstore: tuple[str, ...],
    db: str | None,
    data_dir: Path | None,
) -> None:
    realm_id = parse_realm_id(realm_hex)
    bs = blockstore_config(blockstore)

    async def main(url: str) -> None:
        from parsec_server.storage import operator as ops

        async with backend(url, bs) as be:
            now = datetime.datetime.now(datetime.UTC)
            async with be.db.connection() as conn:
                org, realm = await _org_and_realm(conn, organization, realm_id)
                counts = await ops.realm_counts(conn, realm.internal_id)
                block_ids = await ops.realm_block_ids(conn, realm.internal_id)
                resuming = realm.status == "DELETED"
                if resuming and not block_ids:
                    raise OperatorError(
                        f"realm {realm_id.hex} was already deleted ({rfc3339(realm.deleted_on)})",
                        Exit.REFUSED,
                    )
                deletable = {
                    c.realm_id for c in await ops.deletion_candidates(conn, org.internal_id, now)
                }
                if not resuming and realm_id not in deletable:
                    if realm.status == "DELETION_PLANNED":
                        reason = (
                            f"its deletion date ({rfc3339(realm.deletion_date)}) has not passed"
                        )
                    else:
                        reason = "it is neither orphaned nor planned for deletion"
                    raise OperatorError(
                        f"realm {realm_id.hex} cannot be deleted: {reason}", Exit.REFUSED
                    )
            if dump_realm_blocks is not None:
                write_slugs(dump_realm_blocks, organization, block_ids)
                click.echo(f"Exported {len(block_ids)} block slug(s) to {dump_realm_blocks}")
            if resuming:
                summary = (
                    f"the {len(block_ids)} block(s) an interrupted deletion left of realm "
                    f"{realm_id.hex} of {organization} in {be.blockstore.describe()}"
                )
            else:
                summary = (
                    f"realm {realm_id.hex} of {organization}: {counts['vlobs']} vlob version(s), "
                    f"{counts['blocks']} block(s) ({counts['block_bytes']} bytes) in "
                    f"{be.blockstore.describe()}"
                )
            if dry_run:
                click.echo(f"Dry run: would delete {summary}; nothing deleted")
                return
            confirm(f"Delete {summary}?", yes)
            if not resuming:
                async with be.db.transaction() as conn:
                    await conn.execute(
                        "SELECT 1 FROM realm WHERE id = $1 FOR UPDATE", realm.internal_id
                    )
                    block_ids = await ops.realm_block_ids(conn, realm.internal_id)
                    await ops.delete_realm_metadata(conn, realm.internal_id, now)
            failed = await delete_blocks(be.blockstore, organization, block_ids)
            done = sorted(set(block_ids) - set(failed))
            async with be.db.transaction() as conn:
                await ops.delete_block_rows(conn, realm.internal_id, done)
            cli_action(
                "realm_delete",
                "ok" if not failed else "blocks_left",
                organization=organization,
                realm_id=realm_id.hex,
                blocks_removed=len(done),
                blocks_left=len(failed),
            )
            if failed:
                raise leftover_error(
                    f"realm {realm_id.hex} deleted from the database", organization, failed, None
                )
            click.echo(
                f"Deleted realm {realm_id.hex}: {counts['vlobs']} vlob version(s) and "
                f"{len(block_ids)} block(s) removed from the database and the blockstore"
            )

    run_operator(db, data_dir, main)


# --- human_accesses -------------------------------------------------------------------------------


def _matches(user: dict[str, Any], words: list[str]) -> bool:
    text = (
        f"{user['human_label']} <{user['human_email']}> {user['user_id'].hex} {user['user_id']}"
    ).lower()
    return all(w in text for w in words)


@click.command(
    "human_accesses",
    short_help="Get information about user&realm accesses",
    help="Who can access what in an organization: per human (name <email>), each of its users "
    "with its profile history and revocation, and per realm the roles granted and removed.",
)
@organization_option
@click.option("--filter", "user_filter", help="Filter by human handle or user ID")
@click.option("--json", "as_json", is_flag=True, help="Output as JSON")
@database_options
def human_accesses_cmd(
    organization: str, user_filter: str | None, as_json: bool, db: str | None, data_dir: Path | None
) -> None:
    async def main(url: str) -> list[dict[str, Any]]:
        from parsec_server.storage import operator as ops

        async with backend(url) as be, be.db.connection() as conn:
            org = await ops.organization(conn, organization)
            if org is None:
                raise OperatorError(f"organization {organization!r} not found", Exit.NOT_FOUND)
            return await ops.human_accesses(conn, org.internal_id)

    users = run_operator(db, data_dir, main)
    if user_filter:
        words = user_filter.lower().split()
        users = [u for u in users if _matches(u, words)]
    humans: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for u in users:
        humans.setdefault((u["human_label"], u["human_email"]), []).append(u)
    if as_json:
        echo_json(
            [
                {
                    "human_label": label,
                    "human_email": email,
                    "users": [
                        {
                            "user_id": u["user_id"].hex,
                            "current_profile": u["current_profile"],
                            "initial_profile": u["initial_profile"],
                            "created_on": rfc3339(u["created_on"]),
                            "profile_updates": [
                                {"on": rfc3339(on), "profile": p} for on, p in u["profile_updates"]
                            ],
                            "revoked_on": rfc3339(u["revoked_on"]),
                            "frozen": u["frozen"],
                            "realms": {
                                realm_id.hex: [
                                    {"on": rfc3339(on), "role": role} for on, role in history
                                ]
                                for realm_id, history in u["realms"].items()
                            },
                        }
                        for u in group
                    ],
                }
                for (label, email), group in humans.items()
            ]
        )
        return
    click.echo(f"Found {len(humans)} result(s)")
    for (label, email), group in humans.items():
        click.echo(f"Human {label} <{email}>\n")
        for u in group:
            state = "REVOKED" if u["revoked_on"] else u["current_profile"]
            frozen = ", FROZEN" if u["frozen"] else ""
            click.echo(f"  User {u['user_id'].hex} ({state}{frozen})")
            click.echo(
                f"    {rfc3339(u['created_on'])}: Created with profile {u['initial_profile']}"
            )
            for on, profile in u["profile_updates"]:
                click.echo(f"    {rfc3339(on)}: Updated to profile {profile}")
            if u["revoked_on"]:
                click.echo(f"    {rfc3339(u['revoked_on'])}: Revoked")
            click.echo()
            for realm_id, history in u["realms"].items():
                click.echo(f"    Realm {realm_id.hex}")
                for on, role in history:
                    what = "Access removed" if role is None else f"Access {role} granted"
                    click.echo(f"      {rfc3339(on)}: {what}")
                click.echo()


# --- export_realm ---------------------------------------------------------------------------------

_EXPORT_SCHEMA = f"""
CREATE TABLE info (
    magic INTEGER UNIQUE NOT NULL DEFAULT {EXPORT_MAGIC},
    version INTEGER NOT NULL DEFAULT {EXPORT_VERSION},
    organization_id VARCHAR(32) NOT NULL,
    realm_id BLOB NOT NULL,
    root_verify_key BLOB NOT NULL,
    snapshot_timestamp INTEGER NOT NULL,
    vlobs_total_bytes INTEGER NOT NULL,
    blocks_total_bytes INTEGER NOT NULL,
    certificates_export_done INTEGER NOT NULL DEFAULT 0,
    vlobs_export_done INTEGER NOT NULL DEFAULT 0,
    blocks_metadata_export_done INTEGER NOT NULL DEFAULT 0,
    blocks_data_export_done INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE common_certificate (_id INTEGER PRIMARY KEY, certificate BLOB NOT NULL);
CREATE TABLE sequester_certificate (_id INTEGER PRIMARY KEY, certificate BLOB NOT NULL);
CREATE TABLE realm_certificate (_id INTEGER PRIMARY KEY, certificate BLOB NOT NULL);
CREATE TABLE realm_keys_bundle (key_index INTEGER PRIMARY KEY, keys_bundle BLOB NOT NULL);
CREATE TABLE realm_keys_bundle_access (
    _id INTEGER PRIMARY KEY,
    user_id BLOB NOT NULL,
    key_index INTEGER NOT NULL,
    access BLOB NOT NULL
);
CREATE TABLE realm_sequester_keys_bundle_access (
    _id INTEGER PRIMARY KEY,
    sequester_service_id BLOB NOT NULL,
    key_index INTEGER NOT NULL,
    access BLOB NOT NULL
);
CREATE TABLE vlob_atom (
    sequential_id INTEGER PRIMARY KEY,
    vlob_id BLOB NOT NULL,
    version INTEGER NOT NULL,
    key_index INTEGER NOT NULL,
    blob BLOB NOT NULL,
    size INTEGER NOT NULL,
    author BLOB NOT NULL,
    timestamp INTEGER NOT NULL,
    UNIQUE(vlob_id, timestamp)
);
CREATE TABLE block (
    sequential_id INTEGER PRIMARY KEY,
    block_id BLOB NOT NULL UNIQUE,
    author BLOB NOT NULL,
    size INTEGER NOT NULL,
    key_index INTEGER NOT NULL
);
CREATE TABLE block_data (
    block INTEGER PRIMARY KEY REFERENCES block(sequential_id),
    data BLOB NOT NULL
);
"""


def _us(value: datetime.datetime) -> int:
    delta = value - datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _parse_snapshot(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> datetime.datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an RFC 3339 date") from None
    if parsed.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no time zone (end it with Z)")
    return parsed.astimezone(datetime.UTC)


def default_export_name(organization_id: str, realm_id: uuid.UUID, at: datetime.datetime) -> str:
    return f"parsec-export-{organization_id}-realm-{realm_id.hex}-{at.strftime('%Y%m%dT%H%M%SZ')}.sqlite"


@click.command(
    "export_realm",
    short_help="Export the content of a realm in order to consult it with a sequester service key",
    help="Export a realm as of --snapshot-timestamp (default: now minus 320 s, the latest moment "
    "no client can still write before) into an SQLite file: the organization's common and "
    "sequester certificates, the realm's certificates, keys bundles and accesses, every vlob "
    "version and every block with its data. OUTPUT is a file, or a directory for the default "
    "name parsec-export-ORG-realm-HEX-DATE.sqlite (default: the current directory). The format "
    "is the official server's (docs/realm-export.md); the file appears once complete.",
)
@click.argument("output", type=click.Path(path_type=Path), required=False)
@organization_option
@click.option("--realm", "realm_hex", required=True, metavar="FROM_HEX")
@click.option(
    "--snapshot-timestamp", metavar="FROM_RFC3339", callback=_parse_snapshot, expose_value=True
)
@blockstore_option
@database_options
def export_realm_cmd(
    output: Path | None,
    organization: str,
    realm_hex: str,
    snapshot_timestamp: datetime.datetime | None,
    blockstore: tuple[str, ...],
    db: str | None,
    data_dir: Path | None,
) -> None:
    realm_id = parse_realm_id(realm_hex)
    bs = blockstore_config(blockstore)
    latest = datetime.datetime.now(datetime.UTC) - SNAPSHOT_LAG
    at = snapshot_timestamp or latest
    if at > latest:
        raise click.BadParameter(
            f"must be at most {rfc3339(latest)} (now minus 320 s: clients may still write before)",
            param_hint="--snapshot-timestamp",
        )
    target = output or Path.cwd()
    if target.is_dir():
        target = target / default_export_name(organization, realm_id, at)
    if target.exists():
        raise click.BadParameter(f"{target} already exists", param_hint="OUTPUT")

    async def main(url: str) -> dict[str, int]:
        async with backend(url, bs) as be:
            return await _export(be, organization, realm_id, at, target)

    partial = target.with_name(f".{target.name}.partial")
    try:
        totals = run_operator(db, data_dir, main)
    finally:
        partial.unlink(missing_ok=True)
    click.echo(
        f"Exported realm {realm_id.hex} of {organization} as of {rfc3339(at)} to {target}: "
        f"{totals['certificates']} certificate(s), {totals['vlobs']} vlob version(s), "
        f"{totals['blocks']} block(s) ({totals['blocks_bytes']} bytes)"
    )


async def _export(
    be: Any, organization_id: str, realm_id: uuid.UUID, at: datetime.datetime, target: Path
) -> dict[str, int]:
    from parsec_server.blockstore.base import BlockNotFound
    from parsec_server.storage import operator as ops

    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    out = sqlite3.connect(partial)
    totals = {"certificates": 0, "vlobs": 0, "blocks": 0, "blocks_bytes": 0}
    try:
        out.executescript(_EXPORT_SCHEMA)
        async with be.db.transaction() as conn:  # one snapshot of the database for the whole export
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            org, realm = await _org_and_realm(conn, organization_id, realm_id)
            if not org.bootstrapped:
                raise OperatorError(
                    f"organization {organization_id!r} is not bootstrapped", Exit.REFUSED
                )
            if realm.status == "DELETED":
                raise OperatorError(f"realm {realm_id.hex} was deleted", Exit.REFUSED)
            sizes = await conn.fetchrow(
                "SELECT (SELECT coalesce(sum(size), 0) FROM vlob_atom WHERE realm = $1 "
                "AND created_on <= $2) AS vlobs, (SELECT coalesce(sum(size), 0) FROM block "
                "WHERE realm = $1 AND created_on <= $2) AS blocks",
                realm.internal_id,
                at,
            )
            out.execute(
                "INSERT INTO info (organization_id, realm_id, root_verify_key, snapshot_timestamp, "
                "vlobs_total_bytes, blocks_total_bytes) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    organization_id,
                    realm_id.bytes,
                    org.root_verify_key,
                    _us(at),
                    int(sizes["vlobs"]),
                    int(sizes["blocks"]),
                ),
            )
            for table, topic, realm_internal in (
                ("common_certificate", "common", None),
                ("sequester_certificate", "sequester", None),
                ("realm_certificate", "realm", realm.internal_id),
            ):
                certs = await ops.certificates(conn, org.internal_id, topic, at, realm_internal)
                out.executemany(
                    f"INSERT INTO {table} (_id, certificate) VALUES (?, ?)",
                    [(i, c) for i, c in enumerate(certs, 1)],
                )
                totals["certificates"] += len(certs)
            bundles, accesses, services = await ops.keys_bundles(conn, realm.internal_id, at)
            out.executemany("INSERT INTO realm_keys_bundle VALUES (?, ?)", bundles)
            out.executemany(
                "INSERT INTO realm_keys_bundle_access (user_id, key_index, access) VALUES (?, ?, ?)",
                [(u.bytes, k, a) for u, k, a in accesses],
            )
            out.executemany(
                "INSERT INTO realm_sequester_keys_bundle_access (sequester_service_id, key_index, "
                "access) VALUES (?, ?, ?)",
                [(s.bytes, k, a) for s, k, a in services],
            )
            out.execute("UPDATE info SET certificates_export_done = 1")
            async for v in ops.iter_vlobs(conn, realm.internal_id, at):
                out.execute(
                    "INSERT INTO vlob_atom VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        v["checkpoint"],
                        v["vlob_id"].bytes,
                        v["version"],
                        v["key_index"],
                        bytes(v["blob"]),
                        v["size"],
                        v["device_id"].bytes,
                        _us(v["created_on"]),
                    ),
                )
                totals["vlobs"] += 1
            out.execute("UPDATE info SET vlobs_export_done = 1")
            block_rows = await ops.blocks(conn, realm.internal_id, at)
        out.executemany(
            "INSERT INTO block VALUES (?, ?, ?, ?, ?)",
            [
                (b["id"], b["block_id"].bytes, b["device_id"].bytes, b["size"], b["key_index"])
                for b in block_rows
            ],
        )
        out.execute("UPDATE info SET blocks_metadata_export_done = 1")
        out.commit()
        for b in block_rows:
            try:
                data = await be.blockstore.read(organization_id, b["block_id"])
            except BlockNotFound:
                raise OperatorError(
                    f"block {b['block_id']} of the realm is missing from the blockstore: is "
                    "--blockstore the server's?",
                    Exit.BLOCKSTORE_FAILED,
                ) from None
            out.execute("INSERT INTO block_data VALUES (?, ?)", (b["id"], data))
            totals["blocks"] += 1
            totals["blocks_bytes"] += len(data)
        out.execute("UPDATE info SET blocks_data_export_done = 1")
        out.commit()
    finally:
        out.close()
    os.chmod(partial, 0o600)
    os.rename(partial, target)
    return totals


__all__ = [
    "delete_realm_cmd",
    "export_realm_cmd",
    "human_accesses_cmd",
    "list_deletable_realms_cmd",
]
