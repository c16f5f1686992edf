"""deploy/install.sh: what the image's build stage runs, run the same way into a temporary venv."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from deploy_support import DEPLOY, REPO

SCRIPT = DEPLOY / "install.sh"
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def _install(*args: str, python: str = sys.executable) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHON": python},
    )


@pytest.mark.slow
def test_installs_a_working_parsec_server(installed_prefix: Path) -> None:
    res = subprocess.run(
        [str(installed_prefix / "bin" / "parsec-server"), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0
    assert res.stdout.strip() == f"parsec-server, version {VERSION}"
    # The migration files are package data: without them `migrate` has nothing to apply.
    sql = list(
        (installed_prefix / "lib").glob(
            "python3*/site-packages/parsec_server/storage/migrations/0001_*.sql"
        )
    )
    assert sql, "migration files missing from the installed package"
    # Compiled at install time: the image's user cannot write next to the code at run time.
    (main,) = (installed_prefix / "lib").glob("python3*/site-packages/parsec_server/cli/main.py")
    assert list((main.parent / "__pycache__").glob("main.cpython-*.pyc"))


@pytest.mark.slow
def test_slim_install_drops_the_installer_and_unused_aws_models(installed_prefix: Path) -> None:
    (site,) = (installed_prefix / "lib").glob("python3*/site-packages")
    assert not (installed_prefix / "bin" / "pip").exists()
    assert not (site / "pip").exists() and not (site / "setuptools").exists()
    models = sorted(p.name for p in (site / "botocore" / "data").iterdir() if p.is_dir())
    assert models == ["s3", "sts"]
    res = _install(str(installed_prefix))
    assert res.returncode == 1 and "cannot be upgraded in place" in res.stderr


def test_refuses_an_interpreter_older_than_required(tmp_path: Path) -> None:
    fake = tmp_path / "python3"
    fake.write_text(
        "#!/bin/sh\nexit 1\n"
    )  # what `sys.exit(version < (3, 11))` gives on an old Python
    fake.chmod(0o755)
    res = _install(str(tmp_path / "venv"), python=str(fake))
    assert res.returncode == 1 and "3.11" in res.stderr
    assert not (tmp_path / "venv").exists()


def test_refuses_a_missing_source_and_a_prefix_that_is_not_a_venv(tmp_path: Path) -> None:
    res = _install(str(tmp_path / "venv"), str(tmp_path / "nowhere" / "x.whl"))
    assert res.returncode == 1 and "does not exist" in res.stderr
    assert not (tmp_path / "venv").exists()
    (tmp_path / "data").mkdir()
    res = _install(str(tmp_path / "data"))
    assert res.returncode == 1 and "not a virtual environment" in res.stderr


@pytest.mark.parametrize("args", [[], ["--bogus", "/tmp/x"], ["a", "b", "c"]])
def test_bad_usage_exits_2_with_one_usage_line(args: list[str]) -> None:
    res = _install(*args)
    assert res.returncode == 2
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 2
