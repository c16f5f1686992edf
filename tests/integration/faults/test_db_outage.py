"""Database outages (issue 11 point 2): while PostgreSQL is down, protocol requests get 503 with
`Retry-After` (never a 500 with a traceback), the outage is logged once when it starts and once when it
ends (with the number of requests refused); a read-only database makes `/health` say writes fail and
writes get 503; `run` with the database down at start is one line and exit code 6."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "events"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "commands"))

from sse_support import ADMIN_TOKEN, EXE, ServerProcess, http_server, open_events, wait_ready

from parsec_server.asgi.rpc import OutageLog
from parsec_server.embedded_pg import free_tcp_port
from parsec_server.exit_codes import Exit
from parsec_server.protocol.codec import now, packb
from parsec_server.storage.db import (
    OUT_OF_RESOURCES,
    READ_ONLY,
    UNAVAILABLE_ERRORS,
    UNREACHABLE,
    unavailable_kind,
)

pytestmark = pytest.mark.timeout(120)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PARSEC_")}


def _args(db_url: str, port: int) -> list[str]:
    return [
        *EXE,
        "run",
        "--db",
        db_url,
        "--blockstore",
        "POSTGRESQL",
        "--administration-token",
        ADMIN_TOKEN,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--server-addr",
        f"parsec3://127.0.0.1:{port}?no_ssl=true",
    ]


@pytest.fixture
def server(own_db_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    port = free_tcp_port()
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            _args(own_db_url, port), stdout=log, stderr=subprocess.STDOUT, env=_env()
        )
    srv = ServerProcess(proc, port, log_path)
    try:
        wait_ready(srv)
        yield srv
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def _full_log(server: ServerProcess) -> str:
    return server.log_path.read_text(errors="replace")


async def _vlob_create(alice: Any, realm_id: uuid.UUID) -> httpx.Response:
    body = packb(
        {
            "cmd": "vlob_create",
            "realm_id": realm_id,
            "vlob_id": uuid.uuid4(),
            "key_index": 1,
            "timestamp": now(),
            "blob": b"x",
        }
    )
    return await alice.post(body)  # type: ignore[no-any-return]


async def _ping(alice: Any) -> httpx.Response:
    return await alice.post(packb({"cmd": "ping", "ping": "p"}))  # type: ignore[no-any-return]


async def test_outage_answers_503_and_is_logged_once(own_pg: Any, server: ServerProcess) -> None:
    async with http_server(server) as s:
        org = await s.bootstrap_org()
        alice = org.alice
        realm_id = uuid.uuid4()
        assert (await _ping(alice)).status_code == 200
        own_pg.stop()
        try:
            statuses = []
            for _ in range(12):
                r = await _vlob_create(alice, realm_id)
                statuses.append(r.status_code)
                if r.status_code == 503:
                    assert int(r.headers["retry-after"]) > 0
                    assert r.headers["api-version"] == "5.6"
            r = await _ping(alice)
            statuses.append(r.status_code)
            health = await s.http.get("/health")
            assert health.status_code == 503
            assert health.json()["status"] == "unavailable"
            # an event stream cannot open deaf: 503 too
            with pytest.raises(AssertionError, match="HTTP 503"):
                async with open_events(alice):
                    pass
        finally:
            own_pg.start()
        assert set(statuses) == {503}, statuses
        deadline = time.monotonic() + 10
        while (await _ping(alice)).status_code != 200:
            assert time.monotonic() < deadline, _full_log(server)[-3000:]
            await asyncio.sleep(0.05)
        assert (await s.http.get("/health")).status_code == 200
    text = _full_log(server)
    assert "Traceback" not in text, text[-3000:]
    assert text.count("database_outage_started") == 1, text[-3000:]
    assert text.count("database_outage_ended") == 1, text[-3000:]
    ended = next(line for line in text.splitlines() if "database_outage_ended" in line)
    assert "refused=14" in ended or "refused=13" in ended, ended  # + the refused event stream


async def test_read_only_database_health_degraded_and_writes_503(
    own_pg: Any, server: ServerProcess, own_db_url: str
) -> None:
    async with http_server(server) as s:
        org = await s.bootstrap_org()
        alice = org.alice
        conn = await asyncpg.connect(own_db_url)
        try:
            await conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
            await conn.execute("SELECT pg_reload_conf()")
            await asyncio.sleep(0.2)
            health = await s.http.get("/health")
            assert health.status_code == 503, health.text
            doc = health.json()
            assert (doc["status"], doc["writes"], doc["cause"]) == (
                "degraded",
                "failing",
                READ_ONLY,
            )
            r = await _vlob_create(alice, uuid.uuid4())
            assert r.status_code == 503 and int(r.headers["retry-after"]) > 0, r
            assert (await _ping(alice)).status_code == 200  # reads still work
        finally:
            await conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
            await conn.execute("SELECT pg_reload_conf()")
            await conn.close()
        await asyncio.sleep(0.2)
        health = await s.http.get("/health")
        assert health.status_code == 200 and health.json()["writes"] == "ok", health.text
    text = _full_log(server)
    assert "Traceback" not in text and "unhandled_error" not in text, text[-3000:]
    assert "database_outage_started cause=read_only" in text, text[-3000:]


def test_outage_errors_are_classified() -> None:
    """Disk full (53100) and the rest of class 53 map like a read-only database: writes fail."""
    disk_full = asyncpg.DiskFullError("could not extend file: No space left on device")
    assert isinstance(disk_full, UNAVAILABLE_ERRORS)
    assert unavailable_kind(disk_full) == OUT_OF_RESOURCES
    assert unavailable_kind(asyncpg.ReadOnlySQLTransactionError("ro")) == READ_ONLY
    assert unavailable_kind(ConnectionRefusedError()) == UNREACHABLE
    assert unavailable_kind(asyncpg.CannotConnectNowError("starting up")) == UNREACHABLE
    assert not isinstance(asyncpg.UniqueViolationError("dup"), UNAVAILABLE_ERRORS)
    outage = OutageLog()
    outage.refused_one(disk_full)
    outage.refused_one(disk_full)
    assert outage.writes_failing() == OUT_OF_RESOURCES and outage.refused == 2
    outage.served()  # a read served: writes still failing, the outage stays open
    assert outage.cause == OUT_OF_RESOURCES
    outage.write_failed_at = time.monotonic() - 3600
    outage.served()
    assert outage.cause is None and outage.writes_failing() is None


def test_run_with_database_down_at_start() -> None:
    dead = free_tcp_port()
    port = free_tcp_port()
    started = time.monotonic()
    res = subprocess.run(
        _args(f"postgresql://postgres@127.0.0.1:{dead}/parsec", port),
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert res.returncode == Exit.CANNOT_CONNECT, (res.returncode, res.stderr)
    out = res.stderr + res.stdout
    errors = [line for line in out.splitlines() if "cannot connect to the database" in line]
    assert len(errors) == 1, out
    assert "Traceback" not in res.stderr + res.stdout
    assert time.monotonic() - started < 30
