"""`parsec-server migrate` and its subcommands, one module each: apply.py (the command itself),
status.py, repair.py, lint.py, dump_schema.py, verify.py, drop_official.py; common.py holds the
options, the rendering of the engine's events and the mapping of engine errors to exit codes."""

from __future__ import annotations

from parsec_server.cli.migrate.apply import migrate_cmd
from parsec_server.cli.migrate.common import exit_code_for
from parsec_server.cli.migrate.drop_official import drop_official_cmd
from parsec_server.cli.migrate.dump_schema import dump_schema_cmd
from parsec_server.cli.migrate.lint import lint_cmd
from parsec_server.cli.migrate.repair import repair_cmd
from parsec_server.cli.migrate.status import status_cmd
from parsec_server.cli.migrate.verify import verify_cmd

for _cmd in (status_cmd, repair_cmd, lint_cmd, dump_schema_cmd, verify_cmd, drop_official_cmd):
    migrate_cmd.add_command(_cmd)

__all__ = ["exit_code_for", "migrate_cmd"]
