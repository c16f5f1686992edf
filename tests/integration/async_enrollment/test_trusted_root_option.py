"""`parsec-server run --trusted-x509-root-dir` / PARSEC_TRUSTED_X509_ROOT_DIR: every file under the
directories must be a PEM certificate, else one line and exit 2 before anything starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pki_support import Pki

EXE = [sys.executable, "-m", "parsec_server.cli.main"]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PARSEC_")}
    full_env.update(env or {})
    return subprocess.run([*EXE, *args], capture_output=True, text=True, env=full_env, timeout=60)


def test_a_file_that_is_not_a_certificate_stops_run(tmp_path: Path, pki: Pki) -> None:
    roots = pki.write_root_dir(tmp_path / "roots")
    (roots / "nested" / "notes.txt").write_text("not a certificate\n")
    # A port that is surely taken would fail later: the option is checked before anything starts.
    res = _run("run", "--trusted-x509-root-dir", str(roots))
    assert res.returncode == 2, res.stderr
    assert "--trusted-x509-root-dir" in res.stderr and "notes.txt" in res.stderr
    assert "Traceback" not in res.stderr
    assert len([line for line in res.stderr.splitlines() if line.startswith("Error")]) == 1

    res = _run("run", env={"PARSEC_TRUSTED_X509_ROOT_DIR": str(tmp_path / "missing")})
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr


def test_the_option_is_in_help() -> None:
    res = _run("run", "--help")
    assert res.returncode == 0
    assert "--trusted-x509-root-dir" in res.stdout and "PARSEC_TRUSTED_X509_ROOT_DIR" in res.stdout
