"""The user and shamir handlers are registered with `@command` and typed by their command: `req` is
the generated request class and the declared reply is the command's generated reply union (so mypy
holds them to the schema, tests/unit/test_typed_contract.py)."""

from __future__ import annotations

import typing

import pytest

from parsec_server.commands import registry
from parsec_server.protocol.generated import authenticated as generated

COMMANDS = {
    "user": ["user_create", "device_create", "user_revoke", "user_update", "list_frozen_users"],
    "shamir": ["shamir_recovery_setup", "shamir_recovery_delete"],
}


def _camel(cmd: str) -> str:
    return "".join(part.title() for part in cmd.split("_"))


@pytest.mark.parametrize(
    ("module", "cmd"), [(module, cmd) for module, cmds in COMMANDS.items() for cmd in cmds]
)
def test_handler_is_typed_by_its_command(module: str, cmd: str) -> None:
    registry.load_all()
    handler = registry.HANDLERS[("authenticated", cmd)]
    assert handler.__module__ == f"parsec_server.commands.{module}"
    hints = typing.get_type_hints(handler)
    assert hints["req"] is getattr(generated, f"{_camel(cmd)}Req")
    assert hints["return"] == getattr(generated, f"{_camel(cmd)}Rep")
