"""Our application's own CPU cost per request, without an HTTP server or a load generator.

    .venv/bin/python bench/inproc.py [--workloads block_read,vlob_read_batch] [--requests 3000] \
        [--profile] [--log-level info --log-format json] [--src OTHER_TREE]

Starts a throwaway PostgreSQL cluster (or uses --db-url: a server URL whose `postgres` database
can CREATE DATABASE), builds the ParsecApp in this process (tests/integration/commands/core_helpers:
real signed certificates), creates an organization, a realm, 100 vlobs and 10 blocks, then calls
the ASGI application directly (scope, receive and send made here) from 16 concurrent tasks and
prints requests/s and this process's CPU time per request: the app, asyncpg and the event loop,
but not uvicorn nor the client (bench/run.py measures those). Replies are not schema-checked
(as in production). `--block-size N` sets the size of the blocks block_create writes and
block_read reads (default 4096; e.g. 524288). `--pg-cpu` also prints PostgreSQL's CPU time per
request: utime+stime (/proc/PID/stat) of every process pg_stat_activity lists (the backends serving
the app, the event bus's LISTEN connection, the background writers), summed over the measured
phase, and the WAL bytes written per request (pg_current_wal_lsn); only meaningful for a cluster
this process may read /proc of (the throwaway one, or --db-url of one you started). `--durable`
starts the throwaway cluster with fsync and synchronous_commit on (as in production; default:
off, faster). `--sql STATEMENTS` runs these statements on the database after migrating it (e.g. drop
an index to measure its cost by elimination). `--profile` adds a cProfile table of each workload (its overhead inflates
the figures: read it for proportions).

`--callgrind` counts instead the machine instructions this process executes per request, which a
busy machine does not disturb (the CPU-time figures spread by 10-70 % between rounds when other
jobs run; instruction counts by about 1 %). Run under callgrind, without its cache simulation:

    valgrind --tool=callgrind --cache-sim=no --trace-children=no \
        .venv/bin/python bench/inproc.py --callgrind --requests 1000 [--src DIR]

The counters are zeroed before and dumped after the measured phase of each workload
(`callgrind_control`), so set-up, warm-up and PostgreSQL (another process) are not counted. Under
callgrind the process is ~50x slower: keep --requests around 1000.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# --src DIR: the server code of another source tree (before/after figures); read before any import
SRC = Path(sys.argv[sys.argv.index("--src") + 1]) if "--src" in sys.argv else REPO
sys.path.insert(0, str(REPO / "tests" / "integration" / "commands"))
sys.path.insert(0, str(SRC.absolute() / "src"))

import uvloop  # noqa: E402
from core_helpers import running_server  # noqa: E402
from test_realm import new_realm  # noqa: E402

from parsec_server.embedded_pg import EmbeddedPostgres, free_tcp_port  # noqa: E402
from parsec_server.log import configure  # noqa: E402
from parsec_server.protocol.codec import now, packb  # noqa: E402

WORKLOADS = (
    "ping",
    "organization_info",
    "certificate_get",
    "block_read",
    "block_create",
    "vlob_read_batch",
    "vlob_read_batch_100",
    "vlob_create",
    "vlob_update",
)
CONCURRENCY = 16


class Data:
    def __init__(
        self, realm: uuid.UUID, vlobs: list[uuid.UUID], blocks: list[uuid.UUID], block_size: int
    ) -> None:
        self.block_size = block_size
        self.realm = realm
        self.vlobs = vlobs
        self.versions = dict.fromkeys(vlobs, 1)
        self.blocks = blocks

    def body(self, workload: str, i: int) -> bytes:
        realm = self.realm
        if workload == "ping":
            return packb({"cmd": "ping", "ping": "bench"})
        if workload == "organization_info":
            return packb({"cmd": "organization_info"})
        if workload == "certificate_get":
            return packb(
                {
                    "cmd": "certificate_get",
                    "common_after": None,
                    "sequester_after": None,
                    "shamir_recovery_after": None,
                    "realm_after": {},
                }
            )
        if workload == "block_read":
            return packb({"cmd": "block_read", "realm_id": realm, "block_id": self.blocks[i % 10]})
        if workload == "block_create":
            return packb(
                {
                    "cmd": "block_create",
                    "realm_id": realm,
                    "block_id": uuid.uuid4(),
                    "key_index": 1,
                    "block": os.urandom(self.block_size),
                }
            )
        if workload.startswith("vlob_read_batch"):
            count = 100 if workload.endswith("_100") else 10
            vlobs = self.vlobs[:count]
            return packb({"cmd": "vlob_read_batch", "realm_id": realm, "vlobs": vlobs, "at": None})
        blob = os.urandom(512)
        if workload == "vlob_create":
            return packb(
                {
                    "cmd": "vlob_create",
                    "realm_id": realm,
                    "vlob_id": uuid.uuid4(),
                    "key_index": 1,
                    "timestamp": now(),
                    "blob": blob,
                }
            )
        if workload == "vlob_update":
            vlob_id = self.vlobs[i % CONCURRENCY]
            self.versions[vlob_id] += 1
            return packb(
                {
                    "cmd": "vlob_update",
                    "realm_id": realm,
                    "vlob_id": vlob_id,
                    "key_index": 1,
                    "timestamp": now(),
                    "version": self.versions[vlob_id],
                    "blob": blob,
                }
            )
        raise SystemExit(f"unknown workload {workload}")


def _pg_cpu_ticks(db_url: str) -> dict[str, int]:
    """utime+stime clock ticks of every PostgreSQL process pg_stat_activity lists, per kind:
    `backends` (the app's pool), `listener` (the event bus's LISTEN connection), `background`
    (WAL writer, checkpointer...). Processes that ended meanwhile are not counted: the pool's
    connections stay open during a workload."""
    rows = subprocess.run(
        [
            "psql",
            "-At",
            "-F",
            " ",
            "-d",
            db_url,
            "-c",
            "SELECT pid, CASE WHEN backend_type <> 'client backend' THEN 'background'"
            " WHEN query LIKE 'LISTEN%' OR query = 'SELECT 1' THEN 'listener'"
            " ELSE 'backends' END FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
            " UNION ALL SELECT pg_current_wal_lsn() - '0/0', 'wal'",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    ticks = dict.fromkeys(("backends", "listener", "background"), 0)
    for row in rows:
        pid, kind = row.split()
        if kind == "wal":
            ticks[kind] = int(pid)  # bytes of WAL written so far
            continue
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks[kind] += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks


def _callgrind(flag: str) -> None:
    """Zero (-z) or dump (-d) this process's callgrind counters, and wait until it is done."""
    subprocess.run(["callgrind_control", flag, str(os.getpid())], check=True, capture_output=True)


def _callgrind_last_dump() -> int:
    """Instructions counted in the newest callgrind dump of this process (the `summary:` line)."""
    dumps = sorted(
        Path.cwd().glob(f"callgrind.out.{os.getpid()}.*"), key=lambda f: int(f.suffix[1:])
    )
    for line in dumps[-1].read_text().splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no summary in {dumps[-1]}")


async def measure(
    db_url: str,
    workloads: list[str],
    requests: int,
    profile: bool,
    callgrind: bool = False,
    block_size: int = 4096,
    pg_cpu: bool = False,
) -> None:
    async with running_server(db_url) as server:
        object.__setattr__(server.app.config, "validate_replies", False)
        org = await server.bootstrap_org()
        alice = org.alice
        realm = await new_realm(alice)
        vlobs, blocks = [], []
        for _ in range(100):
            vlob_id = uuid.uuid4()
            rep = await alice.rpc(
                "vlob_create",
                realm_id=realm,
                vlob_id=vlob_id,
                key_index=1,
                timestamp=now(),
                blob=b"x" * 512,
            )
            assert rep["status"] == "ok", rep
            vlobs.append(vlob_id)
        for _ in range(10):
            block_id = uuid.uuid4()
            rep = await alice.rpc(
                "block_create",
                realm_id=realm,
                block_id=block_id,
                key_index=1,
                block=os.urandom(block_size),
            )
            assert rep["status"] == "ok", rep
            blocks.append(block_id)
        data = Data(realm, vlobs, blocks, block_size)
        app = server.app
        base_headers: list[tuple[bytes, bytes]] = []
        path = f"/authenticated/{org.organization_id}"

        async def one(body: bytes, failures: list[Any]) -> None:
            scope = {
                "type": "http",
                "method": "POST",
                "path": path,
                "query_string": b"",
                "headers": [*base_headers, (b"content-length", str(len(body)).encode())],
            }

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": body, "more_body": False}

            sent: list[dict[str, Any]] = []

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)

            await app(scope, receive, send)
            if sent[0]["status"] != 200 or b"\xa6status\xa2ok" not in sent[1]["body"][:16]:
                failures.append(sent)

        for workload in workloads:
            # signed again for each workload: the token's timestamp must stay recent (under
            # callgrind a run lasts minutes)
            base_headers[:] = [(k.lower().encode(), v.encode()) for k, v in alice.headers().items()]
            bodies = [data.body(workload, i) for i in range(requests + 20 * CONCURRENCY)]
            chunks = [bodies[k::CONCURRENCY] for k in range(CONCURRENCY)]
            failures: list[Any] = []

            async def worker(chunk: list[bytes], failures: list[Any] = failures) -> None:
                for body in chunk:
                    await one(body, failures)

            await asyncio.gather(*(worker(c[:20]) for c in chunks))  # warm-up
            chunks = [c[20:] for c in chunks]
            count = sum(len(c) for c in chunks)
            profiler = cProfile.Profile() if profile else None
            pg0 = await asyncio.to_thread(_pg_cpu_ticks, db_url) if pg_cpu else {}
            cpu0, wall0 = time.process_time(), time.perf_counter()
            if profiler:
                profiler.enable()
            if callgrind:
                _callgrind("-z")
            await asyncio.gather(*(worker(c) for c in chunks))
            if callgrind:
                _callgrind("-d")
            if profiler:
                profiler.disable()
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            pg_us = ""
            if pg_cpu:
                pg1 = await asyncio.to_thread(_pg_cpu_ticks, db_url)
                tick_us = 1e6 / os.sysconf("SC_CLK_TCK") / count
                wal = (pg1.pop("wal") - pg0["wal"]) / count
                us = {kind: tick_us * (pg1[kind] - pg0[kind]) for kind in pg1}
                parts = ", ".join(f"{kind} {value:.0f}" for kind, value in us.items())
                pg_us = f"  PostgreSQL CPU {sum(us.values()):5.0f} us/req ({parts}), WAL {wal:.0f} B/req"
            if callgrind:
                instructions = _callgrind_last_dump()
                print(
                    f"{workload:22} {instructions / count:10.0f} instructions/req  ({count} requests)"
                    + (f"  FAILED {len(failures)}: {failures[0]!r:.200}" if failures else ""),
                    flush=True,
                )
                continue
            print(
                f"{workload:22} {count / wall:8.0f} req/s  app CPU {1e6 * cpu / count:5.0f} us/req"
                + pg_us
                + (f"  FAILED {len(failures)}: {failures[0]!r:.200}" if failures else ""),
                flush=True,
            )
            if profiler:
                pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--db-url", help="postgresql://user@host:port (default: a throwaway cluster)")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument(
        "--callgrind",
        action="store_true",
        help="count instructions per request (run under valgrind)",
    )
    ap.add_argument("--block-size", type=int, default=4096, help="block size in bytes")
    ap.add_argument("--pg-cpu", action="store_true", help="print PostgreSQL's CPU per request")
    ap.add_argument("--durable", action="store_true", help="throwaway cluster with fsync on")
    ap.add_argument("--sql", help="SQL run on the database after migrating it")
    ap.add_argument("--log-level", help="configure logging as the server does (default: none)")
    ap.add_argument("--log-format", default="console")
    ap.add_argument("--src", help="take the server code from this source tree's src/")
    args = ap.parse_args()
    if args.log_level:
        configure(args.log_level, args.log_format)
    work = Path(tempfile.mkdtemp(prefix="parsec-inproc-", dir="/tmp"))
    os.chmod(work, 0o755)
    pg = None
    try:
        if args.db_url:
            server_url = args.db_url.rstrip("/")
        else:
            pg = EmbeddedPostgres(
                work / "pg", tcp_port=free_tcp_port(), fast_unsafe=not args.durable
            )
            pg.start()
            server_url = pg.url.rsplit("/", 1)[0]
        name = f"inproc_{uuid.uuid4().hex[:8]}"
        subprocess.run(
            ["psql", "-q", "-d", f"{server_url}/postgres", "-c", f"CREATE DATABASE {name}"],
            check=True,
        )
        db_url = f"{server_url}/{name}"
        # the schema of the measured tree (--src), migrated by that tree's own code
        subprocess.run(
            [
                str(REPO / ".venv" / "bin" / "python"),
                "-c",
                "from parsec_server.cli.main import main; main()",
                "migrate",
                "--db",
                db_url,
                "--no-backup",
            ],
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONPATH": str(SRC.absolute() / "src")},
        )
        if args.sql:
            subprocess.run(["psql", "-q", "-d", db_url, "-c", args.sql], check=True)
        uvloop.run(
            measure(
                db_url,
                args.workloads.split(","),
                args.requests,
                args.profile,
                args.callgrind,
                args.block_size,
                args.pg_cpu,
            )
        )
        if pg is None:
            subprocess.run(
                ["psql", "-q", "-d", f"{server_url}/postgres", "-c", f"DROP DATABASE {name}"],
                check=True,
            )
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
