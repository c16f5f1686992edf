"""Helpers of the killed-operation tests (test_killed_*.py): spawn a `parsec-server` command, find
its child processes, kill it with SIGKILL, hold locks from a test session.

No fixtures here (tests/integration/faults/conftest.py belongs to the outage tests).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

CLI = [sys.executable, "-m", "parsec_server.cli.main"]


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("PARSEC_")}
    e["PYTHONUNBUFFERED"] = "1"
    return e


def run(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env())


def spawn(*args: str, log_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, *args],
        stdout=(log_dir / "stdout").open("w"),
        stderr=(log_dir / "stderr").open("w"),
        text=True,
        env=env(),
    )


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def descendants(pid: int) -> dict[int, str]:
    """Live descendants of `pid`: {pid: command name}."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        st = _stat(int(entry.name))
        if st is None or st[0] in ("Z", "X"):
            continue
        parents[int(entry.name)] = st[1]
        try:
            names[int(entry.name)] = (entry / "comm").read_text().strip()
        except OSError:
            names[int(entry.name)] = "?"
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        p = frontier.pop()
        for child, parent in parents.items():
            if parent == p and child not in found:
                found[child] = names[child]
                frontier.append(child)
    return found


def wait_until(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def kill9(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def survivors(children: dict[int, str], grace: float = 5.0) -> dict[int, str]:
    """Which of `children` are still alive `grace` seconds after their parent was killed (polled:
    returns as soon as all are gone)."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        left = {p: n for p, n in children.items() if alive(p)}
        if not left:
            return {}
        time.sleep(0.05)
    return {p: n for p, n in children.items() if alive(p)}


def terminate(children: dict[int, str]) -> None:
    """Test cleanup: nothing is left running, whatever the outcome."""
    for p in children:
        if alive(p):
            os.kill(p, signal.SIGKILL)


def query(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
            return rows
        finally:
            await conn.close()

    return asyncio.run(go())


def value(url: str, sql: str, *args: Any) -> Any:
    rows = query(url, sql, *args)
    return rows[0][0] if rows else None


def execute(url: str, sql: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


class Session:
    """A session of the test's own, holding locks in an open transaction until closed."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.conn: asyncpg.Connection = self.loop.run_until_complete(asyncpg.connect(url))

    def execute(self, sql: str) -> None:
        self.loop.run_until_complete(self.conn.execute(sql))

    def close(self) -> None:
        self.loop.run_until_complete(self.conn.close())
        self.loop.close()


def sessions(url: str, application_name: str) -> list[asyncpg.Record]:
    return query(
        url,
        "SELECT pid, state, wait_event_type, query FROM pg_stat_activity"
        " WHERE application_name LIKE $1 AND pid <> pg_backend_pid()",
        application_name,
    )
