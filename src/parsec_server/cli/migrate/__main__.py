"""`python -m parsec_server.cli.migrate ...` (tests, bring-up): the same as `parsec-server migrate`."""

from parsec_server.cli.migrate import migrate_cmd

migrate_cmd(prog_name="parsec-server migrate")
