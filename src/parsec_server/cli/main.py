"""`parsec-server` command line entry point."""

from __future__ import annotations

import click

from parsec_server import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="parsec-server")
def cli() -> None:
    """parsec-server: a Parsec v3 server (API 5.x).

    Start it with `parsec-server run` (embedded PostgreSQL when no --db is given).
    """


def _register() -> None:
    from parsec_server.cli.backup import backup_cmd, restore_cmd
    from parsec_server.cli.migrate import migrate_cmd
    from parsec_server.cli.organization import organization_group
    from parsec_server.cli.realm_ops import (
        delete_realm_cmd,
        export_realm_cmd,
        human_accesses_cmd,
        list_deletable_realms_cmd,
    )
    from parsec_server.cli.run import run_cmd
    from parsec_server.cli.sequester import sequester_group
    from parsec_server.cli.user import user_group

    for cmd in (run_cmd, migrate_cmd, backup_cmd, restore_cmd):
        cli.add_command(cmd)
    # The official server's operator commands (same names), then ours.
    for cmd in (export_realm_cmd, human_accesses_cmd, list_deletable_realms_cmd, delete_realm_cmd):
        cli.add_command(cmd)
    cli.add_command(organization_group)
    cli.add_command(user_group)
    cli.add_command(sequester_group)  # the official server's `sequester` commands


_register()


def main() -> None:
    cli(prog_name="parsec-server")


if __name__ == "__main__":
    main()
