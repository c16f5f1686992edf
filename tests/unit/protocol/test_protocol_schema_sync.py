"""The committed generated modules are what tools/gen_protocol.py makes from the JSON5 schemas."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from protocol_vectors import load, untag

from parsec_server.protocol.generated import FAMILIES
from parsec_server.protocol.registry import decode_req
from parsec_server.protocol.schema import check_value, nested_from_json

ROOT = Path(__file__).resolve().parents[3]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_protocol", ROOT / "tools" / "gen_protocol.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_protocol", module)
    spec.loader.exec_module(module)
    return module


def _schema_dir() -> Path:
    for candidate in (
        ROOT.parent / "shared" / "parsec-spec" / "schema",
        Path("/work/shared/parsec-spec/schema"),
    ):
        if (candidate / "protocol").is_dir():
            return candidate
    pytest.skip("JSON5 schemas not available (../shared absent)")


def test_generated_files_match_schemas() -> None:
    gen = _generator()
    files = gen.generate(_schema_dir())
    assert files, "nothing generated"
    for path, text in files.items():
        assert path.exists(), f"{path} missing: run tools/gen_protocol.py"
        assert path.read_text(encoding="utf-8") == text, (
            f"{path} is stale: run tools/gen_protocol.py"
        )


def test_json5_reader() -> None:
    gen = _generator()
    text = '{ // comment\n "a": "http://x", /* block */ "b": [1, 2,],\n}'
    assert gen.load_json5(text) == {"a": "http://x", "b": [1, 2]}


@pytest.mark.parametrize("vector", load("requests.json"), ids=lambda v: f"{v['family']}-{v['cmd']}")
def test_decoded_values_fit_the_generic_checker(vector: dict) -> None:  # type: ignore[type-arg]
    """The generated decoders and schema.check_value() apply the same type rules."""
    family, cmd = vector["family"], vector["cmd"]
    module = FAMILIES[family]
    nested = {n["name"]: nested_from_json(n) for n in module.NESTED.get(cmd, [])}
    req = decode_req(family, bytes.fromhex(vector["hex"]))
    schema_types = _req_field_types(family, cmd)
    for name in req.FIELDS:
        check_value(schema_types[name], getattr(req, name), nested, name)
    assert untag(vector["fields"]).keys() == set(req.FIELDS)


def _req_field_types(family: str, cmd: str) -> dict[str, str]:
    gen = _generator()
    for c in gen.load_family(_schema_dir(), family):
        if c.cmd == cmd:
            return {f.name: f.type for f in c.req_fields}
    raise AssertionError(cmd)
