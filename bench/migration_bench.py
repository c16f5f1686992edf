"""What bench/adoption.py and bench/handback.py share: their options, a throwaway PostgreSQL
cluster, the fill by direct SQL (10 organizations, vlobs of 3 versions, blocks), and our `migrate`
run with its progress lines timestamped as they come and its peak memory."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import asyncpg

ORGS = 10
MIGRATE = [sys.executable, "-m", "parsec_server.cli.main", "migrate", "--db"]


def parse_args(doc: str | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    ap.add_argument("--vlobs", type=int, default=1_000_000, help="vlob versions (default 1M)")
    ap.add_argument("--blocks", type=int, default=100_000, help="blocks (default 100k)")
    ap.add_argument("--db", help="an empty database (default: a throwaway cluster)")
    return ap.parse_args()


def cli_env() -> dict[str, str]:
    """This environment without PARSEC_* settings: `migrate` sees only the options given."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PARSEC_")}


@contextlib.contextmanager
def database(url: str | None, name: str) -> Iterator[str]:
    """`url`, or a throwaway cluster on a free loopback port (removed afterwards)."""
    if url is not None:
        yield url
        return
    from parsec_server.embedded_pg import EmbeddedPostgres, free_tcp_port

    tmp = Path(tempfile.mkdtemp(prefix=f"parsec-bench-{name}-", dir="/tmp"))
    try:
        os.chmod(tmp, 0o755)
        pg = EmbeddedPostgres(
            tmp / "pg", tcp_port=free_tcp_port(), database="bench", fast_unsafe=True
        )
        pg.start()
        try:
            yield pg.url
        finally:
            pg.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def _exec(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET statement_timeout = 0")
        await conn.execute(sql)
    finally:
        await conn.close()


def fill(
    url: str, *, organizations: str, vlobs: str, blocks: str, n_vlobs: int, n_blocks: int
) -> None:
    """Run the three fill statements (`{orgs}`, then `{per_realm}` vlobs of 3 versions and
    `{per_realm}` blocks, one realm per organization), then VACUUM ANALYZE; prints the time."""
    t0 = time.monotonic()
    asyncio.run(_exec(url, organizations.format(orgs=ORGS)))
    asyncio.run(_exec(url, vlobs.format(per_realm=max(n_vlobs // (3 * ORGS), 1))))
    asyncio.run(_exec(url, blocks.format(per_realm=max(n_blocks // ORGS, 1))))
    asyncio.run(_exec(url, "VACUUM ANALYZE"))
    print(f"filled by SQL: {time.monotonic() - t0:.1f} s", flush=True)


class Run(NamedTuple):
    exit_code: int
    seconds: float
    max_rss_kb: int


def run_migrate(url: str, *args: str, skip_line: Callable[[str], bool] = lambda line: False) -> Run:
    """Our `migrate --db url ARGS...`, its output printed line by line with the time since start
    (but the lines `skip_line` drops): its exit code, duration and peak RSS."""
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [*MIGRATE, url, *args],
        env=cli_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # progress lines as they come
        if not skip_line(line):
            print(f"  [{time.monotonic() - t0:6.1f} s] {line.rstrip()}", flush=True)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(proc.returncode, time.monotonic() - t0, usage.ru_maxrss)
