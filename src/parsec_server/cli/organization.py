"""`parsec-server organization list | create | delete`: what operators do through the
administration API, from the command line, with the same back end (commands/organization.py), plus
the deletion of organizations (the official server has none)."""

from __future__ import annotations

import datetime
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
    rfc3339,
    run_operator,
    yes_option,
)
from parsec_server.exit_codes import Exit


@click.group("organization", help="List, create and delete organizations.")
def organization_group() -> None:
    pass


@organization_group.command("list", help="List the organizations of the database.")
@click.option("--json", "as_json", is_flag=True, help="Output as JSON")
@database_options
def list_cmd(as_json: bool, db: str | None, data_dir: Path | None) -> None:
    async def main(url: str) -> list[dict[str, Any]]:
        from parsec_server.storage import operator as ops

        async with backend(url) as be, be.db.connection() as conn:
            return await ops.list_organizations(conn)

    orgs = run_operator(db, data_dir, main)
    if as_json:
        echo_json(
            [
                {
                    **o,
                    "created_on": rfc3339(o["created_on"]),
                    "expired_on": rfc3339(o["expired_on"]),
                }
                for o in orgs
            ]
        )
        return
    if not orgs:
        click.echo("No organizations")
        return
    for o in orgs:
        state = "expired" if o["is_expired"] else "active"
        if not o["is_bootstrapped"]:
            state += ", not bootstrapped"
        click.echo(
            f"{o['organization_id']}  ({state})  created {rfc3339(o['created_on'])}, "
            f"{o['active_users']} active user(s), {o['realms']} realm(s)"
        )


@organization_group.command(
    "create",
    help="Create an organization (or replace a not yet bootstrapped one) and print its bootstrap "
    "URL, as POST /administration/organizations does. Settings left out take the built-in "
    "defaults (those of a server run without --organization-initial-* options).",
)
@click.argument("organization_id")
@click.option(
    "--server-addr",
    envvar="PARSEC_SERVER_ADDR",
    show_envvar=True,
    required=True,
    metavar="URL",
    help="The server's public address, parsec3://host[:port][?no_ssl=true] (as `run`'s).",
)
@click.option("--active-users-limit", type=click.IntRange(min=0), help="Default: no limit.")
@click.option(
    "--user-profile-outsider-allowed/--no-user-profile-outsider-allowed",
    default=None,
    help="Default: allowed.",
)
@click.option(
    "--minimum-archiving-period",
    "archiving_period",
    type=click.IntRange(min=0),
    metavar="SECONDS",
    help="realm_minimum_archiving_period_before_deletion (default: 30 days).",
)
@click.option("--json", "as_json", is_flag=True, help="Output as JSON")
@database_options
def create_cmd(
    organization_id: str,
    server_addr: str,
    active_users_limit: int | None,
    user_profile_outsider_allowed: bool | None,
    archiving_period: int | None,
    as_json: bool,
    db: str | None,
    data_dir: Path | None,
) -> None:
    from parsec_server.protocol import addr
    from parsec_server.protocol.ids import is_valid_organization_id

    if not is_valid_organization_id(organization_id):
        raise click.BadParameter(
            f"{organization_id!r} is not a valid organization id (1-32 letters, digits, - or _)",
            param_hint="ORGANIZATION_ID",
        )
    try:
        server = addr.ServerAddr.parse(server_addr)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--server-addr") from None
    settings: dict[str, Any] = {}
    if active_users_limit is not None:
        settings["active_users_limit"] = active_users_limit
    if user_profile_outsider_allowed is not None:
        settings["user_profile_outsider_allowed"] = user_profile_outsider_allowed
    if archiving_period is not None:
        settings["realm_minimum_archiving_period_before_deletion"] = archiving_period

    async def main(url: str) -> bytes:
        from parsec_server.commands import organization as org_cmds

        async with backend(url, server_addr=server_addr) as be:
            token = await org_cmds.create_organization(be, organization_id, settings)
        cli_action(
            "organization_create",
            "ok" if token is not None else "already_exists",
            organization=organization_id,
            settings=settings,
        )
        if token is None:
            raise OperatorError(
                f"organization {organization_id!r} already exists (and is bootstrapped)",
                Exit.REFUSED,
            )
        return token

    token = run_operator(db, data_dir, main)
    url = addr.bootstrap_organization_url(server, organization_id, token)
    if as_json:
        echo_json(
            {
                "organization_id": organization_id,
                "bootstrap_url": url,
                "bootstrap_url_as_http_redirection": addr.bootstrap_organization_url(
                    server, organization_id, token, http_redirection=True
                ),
            }
        )
    else:
        click.echo(url)


async def _store_objects(store: Any, organization_id: str) -> list[uuid.UUID]:
    return [block_id async for _org, block_id in store.iter_blocks(organization_id)]


@organization_group.command(
    "delete",
    help="Delete organizations and all their data: users, devices, realms, vlobs, certificates, "
    "invitations in the database, and their blocks in the blockstore given by --blockstore (give "
    "the server's). Name them, or select the expired ones with --expired-older-than. Asks for "
    "confirmation (--yes in scripts); --dry-run shows what would be deleted and changes nothing. "
    "Running servers end the organization's sessions at once.",
)
@click.argument("organization_ids", nargs=-1, metavar="[ORGANIZATION_ID]...")
@click.option(
    "--expired-older-than",
    type=click.IntRange(min=0),
    metavar="DAYS",
    help="Also delete every organization expired at least DAYS days ago.",
)
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; delete nothing.")
@yes_option
@blockstore_option
@database_options
def delete_cmd(
    organization_ids: tuple[str, ...],
    expired_older_than: int | None,
    dry_run: bool,
    yes: bool,
    blockstore: tuple[str, ...],
    db: str | None,
    data_dir: Path | None,
) -> None:
    if not organization_ids and expired_older_than is None:
        raise click.UsageError("name the organizations to delete, or give --expired-older-than")
    bs = blockstore_config(blockstore)

    async def main(url: str) -> None:
        from parsec_server.events import types as event_types
        from parsec_server.events.bus import publish
        from parsec_server.storage import operator as ops

        now = datetime.datetime.now(datetime.UTC)
        async with backend(url, bs) as be:
            names = list(dict.fromkeys(organization_ids))
            async with be.db.connection() as conn:
                if expired_older_than is not None:
                    cutoff = now - datetime.timedelta(days=expired_older_than)
                    for name in await ops.expired_organizations(conn, cutoff):
                        if name not in names:
                            names.append(name)
                plan: list[tuple[str, Any, dict[str, int], list[uuid.UUID]]] = []
                for name in names:
                    org = await ops.organization(conn, name)
                    objects = await _store_objects(be.blockstore, name)
                    if org is None:
                        if not objects:
                            raise OperatorError(f"organization {name!r} not found", Exit.NOT_FOUND)
                        plan.append((name, None, {}, objects))  # the rest of an interrupted run
                        continue
                    counts = await ops.organization_counts(conn, org.internal_id)
                    known = await ops.organization_block_ids(conn, org.internal_id)
                    plan.append((name, org, counts, sorted(set(objects) | set(known))))
            if not plan:
                click.echo("No organizations to delete")
                return
            for name, org, counts, block_ids in plan:
                if org is None:
                    click.echo(
                        f"{name}: not in the database; {len(block_ids)} block(s) left in the blockstore"
                    )
                    continue
                state = f"expired {rfc3339(org.expired_on)}" if org.is_expired else "NOT expired"
                click.echo(
                    f"{name} ({state}): {counts['users']} user(s), {counts['devices']} device(s), "
                    f"{counts['realms']} realm(s), {counts['vlobs']} vlob version(s), "
                    f"{len(block_ids)} block(s) in {be.blockstore.describe()}"
                )
            if dry_run:
                click.echo(
                    f"Dry run: {len(plan)} organization(s) would be deleted; nothing deleted"
                )
                return
            confirm(
                f"Delete {len(plan)} organization(s) and all their data? This cannot be undone", yes
            )
            for name, org, _counts, block_ids in plan:
                if org is not None:
                    async with be.db.transaction() as conn:
                        # Servers drop their cached view and end the organization's event streams.
                        await publish(conn, event_types.internal(name, "ORGANIZATION_EXPIRED"))
                        await publish(conn, event_types.internal(name, "ORGANIZATION_UPDATED"))
                        await ops.delete_organization(conn, org.internal_id)
                failed = await delete_blocks(be.blockstore, name, block_ids)
                cli_action(
                    "organization_delete",
                    "ok" if not failed else "blocks_left",
                    organization=name,
                    blocks_removed=len(block_ids) - len(failed),
                    blocks_left=len(failed),
                )
                if failed:
                    raise leftover_error(
                        f"organization {name!r} deleted from the database", name, failed, None
                    )
                click.echo(f"Deleted organization {name} ({len(block_ids)} block(s) removed)")

    run_operator(db, data_dir, main)


__all__ = ["organization_group"]
