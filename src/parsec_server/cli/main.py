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
    from parsec_server.cli import run as run_mod

    cli.add_command(run_mod.run_cmd)
    try:
        from parsec_server.cli import migrate as migrate_mod
    except ImportError:  # pragma: no cover - during bring-up
        pass
    else:
        cli.add_command(migrate_mod.migrate_cmd)
    try:
        from parsec_server.cli import backup as backup_mod
    except ImportError:  # pragma: no cover - during bring-up
        pass
    else:
        cli.add_command(backup_mod.backup_cmd)
        cli.add_command(backup_mod.restore_cmd)


_register()


def main() -> None:
    cli(prog_name="parsec-server")


if __name__ == "__main__":
    main()
