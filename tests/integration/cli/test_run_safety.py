"""`parsec-server run` as a new operator meets it: a port in use, a data directory another server
holds, and no temporary directory left behind by a failed start."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from parsec_server.embedded_pg import free_tcp_port, sweep_stale_socket_dirs

EXE = [sys.executable, "-m", "parsec_server.cli.main"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PARSEC_")}


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EXE, *args], capture_output=True, text=True, env={**_env(), **env}, timeout=60
    )


def _socket_dirs() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("parsec-pg-*"))


def test_port_in_use_is_one_error_line_and_exit_12(db_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = _run("run", "--db", db_url, "--port", str(port), PARSEC_ADMINISTRATION_TOKEN="t")
    assert res.returncode == 12, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ") and "already in use" in lines[0], lines
    assert str(port) in lines[0]


def test_port_in_use_with_the_embedded_default_starts_nothing(tmp_path: Path) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="parsec-safety-", dir="/tmp"))
    os.chmod(data_dir, 0o755)
    try:
        before = _socket_dirs()
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            res = _run("run", "--data-dir", str(data_dir), "--port", str(port))
        assert res.returncode == 12, res.stderr
        assert res.stderr.startswith("error: port "), res.stderr
        assert not (data_dir / "pgdata").exists(), "nothing should start before the port is ours"
        assert _socket_dirs() <= before
    finally:
        subprocess.run(["rm", "-rf", str(data_dir)], check=False)


def _wait_listening(proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("press Ctrl-C"):
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}")
    raise AssertionError("server did not start")


def test_second_run_on_the_same_data_dir_names_the_holder() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="parsec-safety-", dir="/tmp"))
    os.chmod(data_dir, 0o755)
    first = subprocess.Popen(
        [*EXE, "run", "--data-dir", str(data_dir), "--port", str(free_tcp_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_env(),
    )
    try:
        _wait_listening(first)
        before = _socket_dirs()
        second = _run("run", "--data-dir", str(data_dir), "--port", str(free_tcp_port()))
        assert second.returncode == 11, second.stderr
        first_line = second.stderr.splitlines()[0]
        assert "another parsec-server" in first_line and f"pid {first.pid}" in first_line
        assert str(data_dir) in first_line
        assert "Traceback" not in second.stderr
        assert _socket_dirs() <= before, "the failed start left a temporary directory"
        # The first server is untouched.
        assert first.poll() is None
        first.send_signal(signal.SIGINT)
        assert first.wait(30) == 0
        # Released at exit: the next start works.
        third = subprocess.Popen(
            [*EXE, "run", "--data-dir", str(data_dir), "--port", str(free_tcp_port())],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=_env(),
        )
        try:
            _wait_listening(third)
        finally:
            third.send_signal(signal.SIGINT)
            assert third.wait(30) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        subprocess.run(["rm", "-rf", str(data_dir)], check=False)


def test_stale_empty_socket_directories_are_swept() -> None:
    stale = Path(tempfile.mkdtemp(prefix="parsec-pg-"))
    young = Path(tempfile.mkdtemp(prefix="parsec-pg-"))
    busy = Path(tempfile.mkdtemp(prefix="parsec-pg-"))
    (busy / ".s.PGSQL.5432.lock").write_text("1\n")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    os.utime(busy, (old, old))
    try:
        removed = sweep_stale_socket_dirs()
        assert stale in removed and not stale.exists()
        assert young.exists() and busy.exists()
    finally:
        for d in (stale, young, busy):
            subprocess.run(["rm", "-rf", str(d)], check=False)
