"""Our `export_realm` file has the official server's layout: the same tables, columns, types,
constraints, magic number and version as the schema of the official 3.9.3 exporter (read from the
official package in .venv-compat; skipped when that venv is absent)."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from parsec_server.cli import realm_ops

COMPAT_PYTHON = Path(__file__).resolve().parents[3] / ".venv-compat" / "bin" / "python"


def _official() -> tuple[str, int, int]:
    if not COMPAT_PYTHON.exists():
        pytest.skip("no .venv-compat (the official parsec-cloud package)")
    code = (
        "import parsec.realm_export as m; import sys; "
        "sys.stdout.write(f'{m.OUTPUT_DB_MAGIC_NUMBER}\\n{m.OUTPUT_DB_VERSION}\\n'); "
        "sys.stdout.write(m.OUTPUT_DB_INIT_QUERY)"
    )
    res = subprocess.run(
        [str(COMPAT_PYTHON), "-c", code], capture_output=True, text=True, timeout=60
    )
    if res.returncode != 0:
        pytest.skip(f"the official package cannot be imported: {res.stderr.strip()[-200:]}")
    magic, version, schema = res.stdout.split("\n", 2)
    return schema, int(magic), int(version)


def _layout(schema: str) -> dict[str, object]:
    con = sqlite3.connect(":memory:")
    con.executescript(schema)
    tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    layout: dict[str, object] = {}
    for t in sorted(tables):
        columns = [
            (name, type_.upper(), notnull, pk)
            for _cid, name, type_, notnull, _default, pk in con.execute(f"PRAGMA table_info({t})")
        ]
        uniques = sorted(
            tuple(r[2] for r in con.execute(f"PRAGMA index_info('{idx[1]}')"))
            for idx in con.execute(f"PRAGMA index_list({t})")
            if idx[2]
        )
        fks = sorted((r[2], r[3], r[4]) for r in con.execute(f"PRAGMA foreign_key_list({t})"))
        layout[t] = (columns, uniques, fks)
    con.close()
    return layout


def test_export_layout_is_the_official_one() -> None:
    schema, magic, version = _official()
    assert (realm_ops.EXPORT_MAGIC, realm_ops.EXPORT_VERSION) == (magic, version)
    assert _layout(realm_ops._EXPORT_SCHEMA) == _layout(schema)
