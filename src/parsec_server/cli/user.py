"""`parsec-server user list | freeze | unfreeze`: the administration API's user operations from
the command line, with the same back end (commands/organization.py)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import click

from parsec_server.asgi.audit import cli_action
from parsec_server.cli.operator import (
    OperatorError,
    backend,
    database_options,
    echo_json,
    organization_option,
    run_operator,
)
from parsec_server.exit_codes import Exit


@click.group("user", help="List users, freeze and unfreeze them.")
def user_group() -> None:
    pass


@user_group.command(
    "list",
    help="List the non-revoked users of an organization (as GET "
    "/administration/organizations/ORG/users).",
)
@organization_option
@click.option("--json", "as_json", is_flag=True, help="Output as JSON")
@database_options
def list_cmd(organization: str, as_json: bool, db: str | None, data_dir: Path | None) -> None:
    async def main(url: str) -> list[dict[str, Any]]:
        from parsec_server.commands import organization as org_cmds

        async with backend(url) as be:
            users = await org_cmds.list_users(be, organization)
        if users is None:
            raise OperatorError(
                f"organization {organization!r} not found (or not bootstrapped)", Exit.NOT_FOUND
            )
        return users

    users = run_operator(db, data_dir, main)
    if as_json:
        echo_json(users)
        return
    for u in users:
        frozen = "  FROZEN" if u["frozen"] else ""
        click.echo(f"{u['user_id']}  {u['user_name']} <{u['user_email']}>{frozen}")


def _freeze_command(frozen: bool) -> click.Command:
    verb = "freeze" if frozen else "unfreeze"

    @click.command(
        verb,
        help=(
            "Freeze a user: the server refuses its devices' connections until it is unfrozen "
            "(as POST /administration/organizations/ORG/users/freeze)."
            if frozen
            else "Unfreeze a frozen user: its devices may connect again."
        ),
    )
    @organization_option
    @click.option("--user-id", metavar="HEX", help="The user's id.")
    @click.option("--email", help="The email of the user's current (non-revoked) account.")
    @click.option("--json", "as_json", is_flag=True, help="Output as JSON")
    @database_options
    def cmd(
        organization: str,
        user_id: str | None,
        email: str | None,
        as_json: bool,
        db: str | None,
        data_dir: Path | None,
    ) -> None:
        if (user_id is None) == (email is None):
            raise click.UsageError("give exactly one of --user-id and --email")
        uid = None
        if user_id is not None:
            try:
                uid = uuid.UUID(user_id)
            except ValueError:
                raise click.BadParameter(
                    f"{user_id!r} is not a user id", param_hint="--user-id"
                ) from None

        async def main(url: str) -> dict[str, Any]:
            from parsec_server.commands import organization as org_cmds

            async with backend(url) as be:
                outcome = await org_cmds.freeze_user(
                    be, organization, frozen, user_id=uid, email=email
                )
            action = "user_freeze" if frozen else "user_unfreeze"
            if isinstance(outcome, str):  # the administration API's 404 detail
                cli_action(action, "not_found", organization=organization)
                code = Exit.REFUSED if "revoked" in outcome else Exit.NOT_FOUND
                raise OperatorError(f"{outcome} ({organization})", code)
            cli_action(action, organization=organization, user_id=str(outcome.get("user_id")))
            return outcome

        user = run_operator(db, data_dir, main)
        if as_json:
            echo_json(user)
        else:
            state = "frozen" if frozen else "unfrozen"
            click.echo(f"{user['user_id']} {user['user_name']} <{user['user_email']}>: {state}")

    return cmd


user_group.add_command(_freeze_command(True))
user_group.add_command(_freeze_command(False))

__all__ = ["user_group"]
