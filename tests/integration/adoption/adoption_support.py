"""What the adoption (official -> ours) and hand-back (ours -> official) tests share: our CLI and
the official 3.9.3 server from .venv-compat as subprocesses, servers on loopback stopped with their
process group, the client-library drivers (adoption_driver.py, handback_driver.py), and SQL on a
test database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from parsec_server.embedded_pg import free_tcp_port

REPO = Path(__file__).resolve().parents[3]
COMPAT_BIN = REPO / ".venv-compat" / "bin"
CLI = [sys.executable, "-m", "parsec_server.cli.main"]

# Every relation outside the catalogs, with its kind: what a refused or killed migration must leave
# exactly as it was.
RELATIONS = (
    "SELECT n.nspname::text, c.relname::text, c.relkind::text FROM pg_class c"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
    " AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1, 2"
)
# The tables only, by schema.
TABLES = (
    "SELECT n.nspname::text, c.relname::text FROM pg_class c"
    " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r'"
    " AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
)


def need_compat() -> None:
    if not (COMPAT_BIN / "parsec").exists():
        pytest.skip("no .venv-compat (the official parsec-cloud 3.9.3 server)")


def cli_env() -> dict[str, str]:
    """This environment without PARSEC_* settings (PARSEC_BACKUP_DIR kept): the commands see only
    the options a test gives."""
    keep = ("PARSEC_BACKUP_DIR",)
    return {k: v for k, v in os.environ.items() if not k.startswith("PARSEC_") or k in keep}


def migrate(url: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Our `parsec-server migrate --db url ARGS...`."""
    return subprocess.run(
        [*CLI, "migrate", "--db", url, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(),
    )


def official_migrate(url: str) -> None:
    """The official 3.9.3 `parsec migrate` on `url` (a database made by the official server)."""
    need_compat()
    subprocess.run(
        [str(COMPAT_BIN / "parsec"), "migrate", "--db", url],
        check=True,
        capture_output=True,
        timeout=120,
        env=cli_env(),
    )


def run_driver(
    driver: Path, action: str, server: str, token: str, state: Path, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """A client-library driver (the .venv-compat python): `driver action server token state`."""
    return subprocess.run(
        [str(COMPAT_BIN / "python"), str(driver), action, server, token, str(state)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(),
    )


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    """The rows of one statement."""

    async def go() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(url)
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    return asyncio.run(go())


def execute(url: str, sql: str) -> None:
    """Statements separated by `;`, no result."""

    async def go() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


# --- servers --------------------------------------------------------------------------------------


def _wait_http(port: int, proc: subprocess.Popen[Any], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            return
        except OSError as exc:
            if getattr(exc, "code", None) is not None:  # an HTTP error status: it answers
                return
            time.sleep(0.2)
    raise AssertionError(f"server did not start: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def _server(cmd: list[str], port: int, log: Path) -> Iterator[str]:
    """Run `cmd` (output in `log`) until it answers HTTP on `port`: its URL; then stop its process
    group (SIGTERM, SIGKILL after 30 s)."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=cli_env(), start_new_session=True
        )
    try:
        _wait_http(port, proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def official_server(
    url: str,
    log: Path,
    token: str,
    blockstore: Sequence[str] = ("--blockstore", "POSTGRESQL"),
) -> contextlib.AbstractContextManager[str]:
    """The official 3.9.3 server on `url` (127.0.0.1, a free port): its URL while it runs."""
    port = free_tcp_port()
    cmd = [
        str(COMPAT_BIN / "parsec"),
        "run",
        "--debug",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--db",
        url,
        *blockstore,
        "--administration-token",
        token,
        "--fake-account-password-algorithm-seed",
        "F4k3",
        "--email-host",
        "MOCKED",
        "--server-addr",
        f"parsec3://127.0.0.1:{port}?no_ssl=true",
    ]
    return _server(cmd, port, log)


def our_server(
    url: str, log: Path, token: str, blockstore: Sequence[str] = ()
) -> contextlib.AbstractContextManager[str]:
    """`parsec-server run` on `url` (127.0.0.1, a free port): its URL while it runs."""
    port = free_tcp_port()
    cmd = [*CLI, "run", "--db", url, *blockstore, "--administration-token", token]
    return _server([*cmd, "--host", "127.0.0.1", "--port", str(port)], port, log)
