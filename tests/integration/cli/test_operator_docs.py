"""Every command and subcommand `parsec-server --help` lists is documented in docs/cli.md, and every
option of the operator commands is named there or in docs/realm-export.md."""

from __future__ import annotations

from pathlib import Path

import click

from parsec_server.cli.main import cli

DOCS = Path(__file__).resolve().parents[3] / "docs"
OPERATOR = (
    "export_realm",
    "human_accesses",
    "list_deletable_realms",
    "delete_realm",
    "organization",
    "user",
    "sequester",
)


def _commands() -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []
    for name, cmd in cli.commands.items():
        out.append((name, cmd))
        if isinstance(cmd, click.Group) and name in OPERATOR:
            out += [(f"{name} {sub}", subcmd) for sub, subcmd in cmd.commands.items()]
    return out


def test_every_command_is_in_the_command_reference() -> None:
    text = (DOCS / "cli.md").read_text()
    missing = [name for name, _cmd in _commands() if f"`parsec-server {name}" not in text]
    assert not missing, f"not in docs/cli.md: {missing}"


def test_every_operator_option_is_documented() -> None:
    text = (DOCS / "cli.md").read_text() + (DOCS / "realm-export.md").read_text()
    common = {"--db", "--data-dir", "--blockstore", "--help", "--organization", "--json"}
    missing = []
    for name, cmd in _commands():
        if name.split()[0] not in OPERATOR:
            continue
        for param in cmd.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--") and opt not in common and f"`{opt}" not in text:
                    missing.append(f"{name} {opt}")
    assert not missing, f"options not documented: {missing}"


def test_official_options_are_accepted() -> None:
    """An official server's script runs unchanged: its connection, logging and debug options parse
    (here the database is unreachable: exit 6, not a usage error)."""
    from click.testing import CliRunner

    from parsec_server.embedded_pg import free_tcp_port

    db = f"postgresql://postgres@127.0.0.1:{free_tcp_port()}/nope"
    official = ["--db-min-connections", "1", "--db-max-connections", "7", "-l", "INFO"]
    official += ["-f", "CONSOLE", "-o", "/dev/null", "--debug"]
    for args in (
        ["list_deletable_realms", "--organization", "Acme", "--json"],
        ["human_accesses", "--organization", "Acme", "--filter", "bob"],
        ["delete_realm", "--organization", "Acme", "--realm", "ab" * 16, "--dry-run"],
        ["export_realm", "--organization", "Acme", "--realm", "ab" * 16],
    ):
        res = CliRunner().invoke(cli, [*args, "--db", db, *official])
        assert res.exit_code == 6, (args, res.output)
