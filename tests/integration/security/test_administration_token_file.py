"""The administration token out of the process command line (issue 11, 6):
--administration-token-file / PARSEC_ADMINISTRATION_TOKEN_FILE, and a warning when the token is
given on the command line (not when it comes from the environment or a file)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
from sse_support import ADMIN_TOKEN, EXE, ServerProcess

WARNING = "administration_token_on_command_line"


def _admin_ok(server: ServerProcess, token: str) -> bool:
    r = httpx.get(
        f"{server.url}/administration/organizations/Nope",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    return r.status_code == 404  # known token, unknown organization (403 for a bad token)


def test_token_from_a_file_is_not_in_the_command_line(
    spawn_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    secret = tmp_path / "admin-token"
    secret.write_text("file-secret-0123456789\n")
    secret.chmod(0o600)
    server = spawn_server(token_args=("--administration-token-file", str(secret)))
    cmdline = Path(f"/proc/{server.proc.pid}/cmdline").read_bytes()
    assert b"file-secret" not in cmdline
    assert _admin_ok(server, "file-secret-0123456789")
    assert not _admin_ok(server, ADMIN_TOKEN)
    assert WARNING not in server.log()


def test_token_file_from_the_environment(
    spawn_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    secret = tmp_path / "admin-token"
    secret.write_text("env-file-secret\n")
    server = spawn_server(token_args=(), env={"PARSEC_ADMINISTRATION_TOKEN_FILE": str(secret)})
    assert _admin_ok(server, "env-file-secret")
    assert WARNING not in server.log()


def test_token_on_the_command_line_warns(spawn_server: Callable[..., ServerProcess]) -> None:
    server = spawn_server()
    assert _admin_ok(server, ADMIN_TOKEN)
    assert WARNING in server.log()


def test_token_from_the_environment_does_not_warn(
    spawn_server: Callable[..., ServerProcess],
) -> None:
    server = spawn_server(token_args=(), env={"PARSEC_ADMINISTRATION_TOKEN": "env-secret"})
    assert _admin_ok(server, "env-secret")
    assert WARNING not in server.log()


def _run(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARSEC_")}
    return subprocess.run(
        [*EXE, "run", "--db", db_url, "--port", "0", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_unreadable_empty_or_doubled_token_is_a_usage_error(db_url: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for args in (
        ("--administration-token-file", str(tmp_path / "missing")),
        ("--administration-token-file", str(empty)),
        ("--administration-token-file", str(empty), "--administration-token", "x"),
    ):
        res = _run(db_url, *args)
        assert res.returncode == 2, (args, res.stderr)
        assert "Traceback" not in res.stderr and "administration-token" in res.stderr, res.stderr
