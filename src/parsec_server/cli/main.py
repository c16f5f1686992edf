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
    from parsec_server.cli.run import run_cmd

    for cmd in (run_cmd, migrate_cmd, backup_cmd, restore_cmd):
        cli.add_command(cmd)


_register()


def main() -> None:
    cli(prog_name="parsec-server")


if __name__ == "__main__":
    main()
