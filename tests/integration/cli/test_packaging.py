"""Installing parsec-server prints no setuptools deprecation warning (the licence is an SPDX
expression, PEP 639), and the built package still declares its licence."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_license_is_an_spdx_expression() -> None:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "AGPL-3.0-or-later"
    (setuptools,) = [r for r in meta["build-system"]["requires"] if r.startswith("setuptools")]
    assert setuptools.replace(" ", "") == "setuptools>=77"  # the first to accept the string form


def test_building_the_package_prints_no_deprecation_warning(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    output = res.stdout + res.stderr
    assert "Deprecat" not in output and "project.license" not in output, output
    (wheel,) = tmp_path.glob("parsec_server-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = zf.read(name).decode()
    assert "License-Expression: AGPL-3.0-or-later" in metadata
