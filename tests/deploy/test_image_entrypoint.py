"""The image's entrypoint behaviour without Docker: the installed `parsec-server`, configured by the
environment a compose container would get (generated env files, image ENV), on a real database.

Each test runs ENTRYPOINT + the arguments Compose would give: the guide's `migrate --dry-run`, the
`migrate` job's command, the server's command; the health check is the script the image installs.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from deploy_support import DEPLOY, ContainerEnv, dockerfile_stages, load_compose, unknown_options

from parsec_server.embedded_pg import free_tcp_port
from parsec_server.storage.migrations.source import discover

pytestmark = pytest.mark.slow

_, STAGES = dockerfile_stages()
ENTRYPOINT = STAGES[-1].exec_form("ENTRYPOINT") or []
SERVICES = load_compose()["services"]
MIGRATIONS = [m.filename for m in discover(None)]


def _argv(prefix: Path, args: list[str]) -> list[str]:
    assert ENTRYPOINT == ["parsec-server"]
    return [str(prefix / "bin" / ENTRYPOINT[0]), *args]


def _service_args(service: str) -> list[str]:
    return list(SERVICES[service].get("command") or STAGES[-1].exec_form("CMD") or [])


def _table_count(url: str) -> int:
    async def go() -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM pg_tables"
                    " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
                )
            )
        finally:
            await conn.close()

    return asyncio.run(go())


def _run(
    argv: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=timeout, cwd=env["HOME"]
    )


def test_guide_dry_run_lists_pending_migrations_and_changes_nothing(
    installed_prefix: Path, container_env: ContainerEnv, empty_db_url: str
) -> None:
    env = container_env("parsec-server", prefix=installed_prefix, PARSEC_DB=empty_db_url)
    res = _run(_argv(installed_prefix, ["migrate", "--dry-run"]), env)
    assert res.returncode == 0, res.stderr
    for name in MIGRATIONS:
        assert f"{name} ✔" in res.stdout
    assert f"{len(MIGRATIONS)} to apply" in res.stdout
    assert _table_count(empty_db_url) == 0


def test_server_refuses_a_database_with_pending_migrations(
    installed_prefix: Path, container_env: ContainerEnv, empty_db_url: str
) -> None:
    """Exit code 7: what makes Compose restart `parsec-server` until the `migrate` job is done."""
    env = container_env(
        "parsec-server",
        prefix=installed_prefix,
        PARSEC_DB=empty_db_url,
        PARSEC_PORT=str(free_tcp_port()),
    )
    res = _run(_argv(installed_prefix, _service_args("parsec-server")), env, timeout=60)
    assert res.returncode == 7, res.stdout + res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "parsec-server migrate" in errors[0]
    assert "Traceback" not in res.stderr


def _healthcheck(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The image's HEALTHCHECK: the script COPY'd to /usr/local/bin/parsec-healthcheck, mode 0755,
    run with the container's environment (PARSEC_HOST is the image's 0.0.0.0 there)."""
    script = tmp_path / "parsec-healthcheck"
    shutil.copy(DEPLOY / "healthcheck.py", script)
    script.chmod(0o755)
    return subprocess.run(
        [str(script)],
        env={**env, "PARSEC_HOST": "0.0.0.0"},
        capture_output=True,
        text=True,
        timeout=30,
    )


def _wait_healthy(port: int, proc: subprocess.Popen[Any], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode} before answering")
        try:
            rep = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
            if rep.status_code == 200:
                doc: dict[str, Any] = rep.json()
                return doc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail("server did not become healthy")


def test_migrate_job_then_server_from_the_environment_alone(
    installed_prefix: Path,
    container_env: ContainerEnv,
    empty_db_url: str,
    s3_endpoint: str,
    tmp_path: Path,
) -> None:
    # The `migrate` job, with its compose command.
    job_args = _service_args("migrate")
    assert not unknown_options(job_args), (
        f"the compose job runs `parsec-server {' '.join(job_args)}`"
    )
    env = container_env("migrate", prefix=installed_prefix, PARSEC_DB=empty_db_url)
    res = _run(_argv(installed_prefix, job_args), env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"Applied {len(MIGRATIONS)} migration(s)" in res.stdout
    again = _run(_argv(installed_prefix, ["migrate", "--dry-run"]), env)
    assert again.returncode == 0 and "0 to apply" in again.stdout

    # The server, with its compose command, blocks in the (emulated) S3 bucket of the compose file.
    port = free_tcp_port()
    env = container_env(
        "parsec-server",
        prefix=installed_prefix,
        s3=s3_endpoint,
        PARSEC_DB=empty_db_url,
        PARSEC_PORT=str(port),
    )
    assert "\\:" in env["PARSEC_BLOCKSTORE"] and env["PARSEC_LOG_FORMAT"] == "json"
    log = (tmp_path / "server.out").open("w+"), (tmp_path / "server.err").open("w+")
    proc = subprocess.Popen(
        _argv(installed_prefix, _service_args("parsec-server")),
        env=env,
        cwd=env["HOME"],
        stdout=log[0],
        stderr=log[1],
        text=True,
    )
    try:
        health = _wait_healthy(port, proc)
        assert health["status"] == "ok" and health["database"] == "ok"
        hc = _healthcheck(env, tmp_path)
        assert hc.returncode == 0, hc.stderr
        assert hc.stdout.startswith("healthy")
        proc.send_signal(signal.SIGTERM)  # what `docker stop` sends (through --init)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log[1].seek(0)
    stderr = log[1].read()
    assert code == 0, stderr
    assert "Traceback" not in stderr
    json_lines = [line for line in stderr.splitlines() if line.startswith("{")]
    assert json_lines and all(isinstance(json.loads(line), dict) for line in json_lines), (
        "PARSEC_LOG_FORMAT=json"
    )
    assert env["PARSEC_ADMINISTRATION_TOKEN"] not in stderr, "the token must never be logged"

    down = _healthcheck(env, tmp_path)
    assert down.returncode == 1 and down.stderr.startswith("unhealthy")


def test_migrate_job_backs_up_before_applying(
    installed_prefix: Path, container_env: ContainerEnv, empty_db_url: str, tmp_path: Path
) -> None:
    assert not unknown_options(["migrate", "--backup-dir", "x"])
    assert len(MIGRATIONS) >= 2, "needs two migrations: one applied, one pending"
    env = container_env("migrate", prefix=installed_prefix, PARSEC_DB=empty_db_url)
    first = _run(_argv(installed_prefix, ["migrate", "--to", MIGRATIONS[0][:4]]), env)
    assert first.returncode == 0, first.stderr
    backups = Path(env["PARSEC_BACKUP_DIR"])
    before = set(backups.iterdir())
    res = _run(_argv(installed_prefix, _service_args("migrate")), env)
    assert res.returncode == 0, res.stdout + res.stderr
    made = set(backups.iterdir()) - before
    assert len(made) == 1, made
    (backup,) = made
    meta = json.loads((backup / "metadata.json").read_text())
    assert meta["schema_version"] is not None
