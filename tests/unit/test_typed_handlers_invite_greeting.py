"""The invitation and greeting handlers are registered with `@command` and typed by their command:
`req` is the generated request class and the declared reply is the command's generated reply union
(so mypy holds them to the schema)."""

from __future__ import annotations

import typing
from types import ModuleType

import pytest

from parsec_server.commands import registry
from parsec_server.protocol.generated import authenticated, invited

COMMANDS: dict[str, list[tuple[ModuleType, str]]] = {
    "invite": [
        (authenticated, "invite_new_user"),
        (authenticated, "invite_new_device"),
        (authenticated, "invite_new_shamir_recovery"),
        (authenticated, "invite_list"),
        (authenticated, "invite_cancel"),
        (authenticated, "invite_complete"),
        (invited, "invite_info"),
        (invited, "invite_shamir_recovery_reveal"),
    ],
    "greeting": [
        (authenticated, "invite_greeter_start_greeting_attempt"),
        (authenticated, "invite_greeter_step"),
        (authenticated, "invite_greeter_cancel_greeting_attempt"),
        (invited, "invite_claimer_start_greeting_attempt"),
        (invited, "invite_claimer_step"),
        (invited, "invite_claimer_cancel_greeting_attempt"),
    ],
}


def _camel(cmd: str) -> str:
    return "".join(part.title() for part in cmd.split("_"))


@pytest.mark.parametrize(
    ("module", "family", "cmd"),
    [(module, family, cmd) for module, cmds in COMMANDS.items() for family, cmd in cmds],
    ids=lambda v: v.__name__.rsplit(".", 1)[-1] if isinstance(v, ModuleType) else str(v),
)
def test_handler_is_typed_by_its_command(module: str, family: ModuleType, cmd: str) -> None:
    registry.load_all()
    handler = registry.HANDLERS[(family.FAMILY, cmd)]
    assert handler.__module__ == f"parsec_server.commands.{module}"
    hints = typing.get_type_hints(handler)
    assert hints["req"] is getattr(family, f"{_camel(cmd)}Req")
    assert hints["return"] == getattr(family, f"{_camel(cmd)}Rep")
