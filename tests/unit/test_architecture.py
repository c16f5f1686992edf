"""The layers import one way: cli -> asgi -> commands -> (crypto, storage, blockstore) -> events -> protocol.

Read from the source (no import-linter dependency): every `import parsec_server.X` / `from parsec_server.X`
inside a layer, type-checking-only imports included, must target an allowed layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "parsec_server"

# Top-level helper modules any layer may use.
SHARED = {"log", "config", "exit_codes", "__init__", "__version__"}

ALLOWED: dict[str, set[str]] = {
    "protocol": {"protocol"},
    "crypto": {"crypto", "protocol"},
    "events": {"events", "protocol"},
    "storage": {"storage", "events", "protocol", "crypto", "embedded_pg"},
    "blockstore": {"blockstore", "storage"},
    "email": {"email", "protocol"},
    "webhooks": {"webhooks"},
    "commands": {
        "commands",
        "storage",
        "blockstore",
        "crypto",
        "events",
        "protocol",
        "email",
        "webhooks",
    },
    "asgi": {"asgi", "commands", "storage", "blockstore", "crypto", "events", "protocol"},
    "backup": {"backup", "storage", "blockstore", "embedded_pg"},
    "embedded_pg": set(),
    "cli": {
        "cli",
        "asgi",
        "commands",
        "storage",
        "blockstore",
        "crypto",
        "events",
        "protocol",
        "backup",
        "embedded_pg",
        "email",
    },
}


def _layer(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _targets(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "parsec_server":
                if len(parts) > 1:
                    out.append((node.lineno, parts[1]))
                elif isinstance(node, ast.ImportFrom):  # from parsec_server import x
                    out += [(node.lineno, a.name) for a in node.names]
    return out


MODULES = sorted(p for p in SRC.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down(path: Path) -> None:
    layer = _layer(path)
    if layer in SHARED:
        allowed = SHARED
    else:
        assert layer in ALLOWED, (
            f"{layer}: new top-level module or package, give it a place in ALLOWED"
        )
        allowed = ALLOWED[layer] | SHARED
    bad = [
        f"line {ln}: imports parsec_server.{t}"
        for ln, t in _targets(ast.parse(path.read_text()))
        if t not in allowed
    ]
    assert not bad, f"{path.relative_to(SRC)} ({layer}) " + "; ".join(bad)


def _contract_layers() -> list[set[str]]:
    """The layers of the import-linter contract in pyproject.toml (checked by `lint-imports` in
    scripts/test.sh), top first; each a set of top-level package names."""
    import tomllib

    doc = tomllib.loads((SRC.parents[1] / "pyproject.toml").read_text())
    (contract,) = doc["tool"]["importlinter"]["contracts"]
    return [
        {name.strip().removeprefix("parsec_server.") for name in layer.split("|")}
        for layer in contract["layers"]
    ]


def test_contract_agrees_with_allowed() -> None:
    """The import-linter contract and ALLOWED say the same: no layer may import a layer above it
    (nor a sibling on its own line), and every package of the contract has a place in ALLOWED."""
    layers = _contract_layers()
    assert {p for layer in layers for p in layer} <= set(ALLOWED)
    for i, layer in enumerate(layers):
        forbidden = set().union(*layers[:i]) | set()
        for pkg in layer:
            siblings = layer - {pkg}
            assert not ALLOWED[pkg] & (forbidden | siblings), (pkg, ALLOWED[pkg] & forbidden)


def test_import_linter_contract_kept() -> None:
    """The import-linter contract holds on the source (the same check as the test.sh gate)."""
    import shutil
    import subprocess
    import sys

    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe is not None, "import-linter is a test dependency (pyproject.toml test extras)"
    proc = subprocess.run(
        [exe, "--no-cache"], cwd=SRC.parents[1], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
