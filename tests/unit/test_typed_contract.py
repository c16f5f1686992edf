"""mypy holds a handler registered with `@command` to its command's replies.

A module with a typed handler is checked by mypy (the pinned test dependency): a correct handler
passes; a wrong status, a missing field, an extra field, a reply type of another command, or a
`match` over a write refusal that forgets a case are errors.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api

SRC = Path(__file__).resolve().parents[2] / "src"

HEADER = """
from typing import assert_never

from parsec_server.commands.context import AuthenticatedClient
from parsec_server.commands.registry import command
from parsec_server.protocol.generated.authenticated import (
    VlobCreateRep, VlobCreateReq, VlobUpdateRep, VlobUpdateReq,
)
from parsec_server.storage.write_rules import Refusal
"""

GOOD = """
@command(VlobCreateReq)
async def h(client: AuthenticatedClient, req: VlobCreateReq) -> VlobCreateRep:
    if req.key_index:
        return {"status": "bad_key_index", "last_realm_certificate_timestamp": req.timestamp}
    return {"status": "ok"}

def answer(r: Refusal) -> str:
    match r:
        case Refusal.REALM_NOT_FOUND | Refusal.REALM_ARCHIVED | Refusal.REALM_DELETED:
            return "realm"
        case Refusal.AUTHOR_NOT_ALLOWED | Refusal.BAD_KEY_INDEX | Refusal.VLOB_NOT_FOUND:
            return "other"
        case Refusal.BAD_VLOB_VERSION | Refusal.TIMESTAMP_OUT_OF_BALLPARK:
            return "other"
        case Refusal.REQUIRE_GREATER_COMMON_TIMESTAMP | Refusal.REQUIRE_GREATER_REALM_TIMESTAMP:
            return "other"
        case Refusal.ALREADY_EXISTS:
            return "other"
        case _:
            assert_never(r)
"""

BAD = {
    "unknown status": """
@command(VlobCreateReq)
async def h(client: AuthenticatedClient, req: VlobCreateReq) -> VlobCreateRep:
    return {"status": "vlob_not_found"}
""",
    "missing field": """
@command(VlobCreateReq)
async def h(client: AuthenticatedClient, req: VlobCreateReq) -> VlobCreateRep:
    return {"status": "bad_key_index"}
""",
    "extra field": """
@command(VlobCreateReq)
async def h(client: AuthenticatedClient, req: VlobCreateReq) -> VlobCreateRep:
    return {"status": "ok", "detail": "x"}
""",
    "another command's reply type": """
@command(VlobCreateReq)
async def h(client: AuthenticatedClient, req: VlobCreateReq) -> VlobUpdateRep:
    return {"status": "ok"}
""",
    "non-exhaustive match": """
def answer(r: Refusal) -> str:
    match r:
        case Refusal.REALM_NOT_FOUND:
            return "realm"
        case _:
            assert_never(r)
""",
}


def _mypy(tmp_path: Path, body: str) -> tuple[int, str]:
    mod = tmp_path / "handler_under_test.py"
    mod.write_text(HEADER + body)
    out, err, status = api.run(
        [
            "--strict",
            "--no-incremental",
            "--cache-dir",
            "/dev/null",
            "--config-file",
            str(SRC.parent / "pyproject.toml"),
            str(mod),
        ]
    )
    return status, out + err


@pytest.fixture(scope="module")
def tmp_module_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("typed_contract")


def test_a_correct_handler_passes(tmp_module_dir: Path) -> None:
    status, out = _mypy(tmp_module_dir, GOOD)
    assert status == 0, out


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_wrong_handler_is_rejected(tmp_module_dir: Path, case: str) -> None:
    status, out = _mypy(
        tmp_module_dir,
        GOOD + BAD[case].replace("def h(", "def h2(").replace("def answer(", "def answer2("),
    )
    assert status == 1 and "handler_under_test.py" in out, out
