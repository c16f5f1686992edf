"""`parsec-server run`: configuration errors, the embedded default, health and clean shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from parsec_server.embedded_pg import free_tcp_port

EXE = [sys.executable, "-m", "parsec_server.cli.main"]


def _run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PARSEC_")}
    full_env.update(env or {})
    return subprocess.run(
        [*EXE, *args], capture_output=True, text=True, env=full_env, timeout=timeout
    )


def test_version() -> None:
    res = _run("--version")
    assert res.returncode == 0
    assert res.stdout.startswith("parsec-server, version ")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--port", "notaport"], "--port"),
        (["--port", "70000"], "--port"),
        (["--db", "mysql://x"], "PostgreSQL URL"),
        (["--db", "postgresql://127.0.0.1:1/x"], "--administration-token"),
        (["--blockstore", "MOCKED"], "--blockstore"),
        (["--blockstore", "s3:onlytwo:parts"], "--blockstore"),
        (["--log-format", "xml"], "--log-format"),
        (["--server-addr", "http://x"], "--server-addr"),
        (["--server-addr", "parsec3://host:notaport"], "--server-addr"),
        (["--server-addr", "parsec3://host?no_ssl=maybe"], "--server-addr"),
    ],
)
def test_invalid_configuration_is_one_clear_line_and_exit_2(args: list[str], fragment: str) -> None:
    res = _run("run", *args)
    assert res.returncode == 2, res.stderr
    assert fragment in res.stderr
    assert "Traceback" not in res.stderr


def test_invalid_value_from_environment_is_rejected() -> None:
    res = _run("run", env={"PARSEC_PORT": "-5"})
    assert res.returncode == 2
    assert "Traceback" not in res.stderr


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    port = free_tcp_port()
    res = _run(
        "run",
        "--db",
        f"postgresql://postgres@127.0.0.1:{port}/nope",
        "--administration-token",
        "t",
        "--port",
        str(free_tcp_port()),
    )
    assert res.returncode == 6, res.stderr
    assert "cannot connect to the database" in res.stderr
    assert "Traceback" not in res.stderr


def _postgres_children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid,ppid,comm"], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines()[1:] if line.split()[1] == str(pid)]


def _start_embedded(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARSEC_")}
    return subprocess.Popen(
        [*EXE, "run", "--data-dir", str(data_dir), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_listening(proc: subprocess.Popen[str], timeout: float = 60) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise AssertionError(
                    f"server exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}"
                )
            continue
        lines.append(line.rstrip())
        if line.startswith("press Ctrl-C"):
            return lines
    raise AssertionError(f"server did not start: {lines}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_embedded_default_serves_and_stops_cleanly(sig: signal.Signals) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="parsec-embedded-", dir="/tmp"))
    os.chmod(data_dir, 0o755)
    port = free_tcp_port()
    proc = _start_embedded(data_dir, port)
    try:
        lines = _wait_listening(proc)
        assert f"parsec-server listening on http://127.0.0.1:{port}" in lines
        token_lines = [line for line in lines if line.startswith("administration token: ")]
        assert token_lines and len(token_lines[0].split(": ")[1]) == 64
        token = token_lines[0].split(": ")[1]

        landing = httpx.get(f"http://127.0.0.1:{port}/")
        assert landing.status_code == 200 and "Parsec" in landing.text
        health = httpx.get(f"http://127.0.0.1:{port}/health")
        assert health.status_code == 200
        assert health.json()["database"] == "ok"

        # Write something through the administration API, to find it again after a restart.
        r = httpx.post(
            f"http://127.0.0.1:{port}/administration/organizations",
            headers={"Authorization": f"Bearer {token}"},
            json={"organization_id": "KeepMe"},
        )
        assert r.status_code == 200, r.text

        pg_pids = _postgres_children(proc.pid)
        assert pg_pids, "the embedded PostgreSQL should be our child"
        proc.send_signal(sig)
        assert proc.wait(30) == 0
        for pid in pg_pids:
            assert not Path(f"/proc/{pid}").exists(), "PostgreSQL left running"

        # Restart: same data, same token, no migration of the existing database.
        proc = _start_embedded(data_dir, port)
        lines = _wait_listening(proc)
        assert f"administration token: {token}" in lines
        r = httpx.get(
            f"http://127.0.0.1:{port}/administration/organizations/KeepMe",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 200, r.text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run(["rm", "-rf", str(data_dir)])
