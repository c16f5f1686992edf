"""Scale-out (issue 17 point 4): 1, 2 and 4 `parsec-server run` processes on one PostgreSQL.

    .venv-compat/bin/python bench/scaleout.py [--processes 1,2,4] [--duration 3] [--connections 16]
        [--streams 4] [--workloads vlob_update,vlob_read_batch,block_create,block_read]
        [--pgbouncer session|transaction] [--src OTHER_TREE] [--json out.json]

The deployment of docs/scaling.md on one machine: one throwaway PostgreSQL cluster, an S3 object
store (moto's server on loopback, from .venv), and for each N a fresh database, migrated, served by
N `parsec-server run` processes (each its own process group, --blockstore s3:..., logging at
WARNING) on ports of 127.0.0.1. The load generator is bench/loadgen.py's (prepared bodies, lean
keep-alive HTTP/1.1 connections): `--connections` connections in all, connection i to process
i mod N (round robin per connection, what a load balancer without sticky sessions does).

Per N and workload: req/s, p50/p99, server CPU per request (utime + stime of the N process groups
during the window / replies), PostgreSQL CPU per request (the backends of that database), the
number of connections PostgreSQL has open to that database (pg_stat_activity: the most seen while
sampling every 50 ms, and at rest before the run), and what those backends waited on
(pg_stat_activity.wait_event sampled every 50 ms: share of the samples of active backends, and
ungranted pg_locks). All vlob writes go to one realm: the case where a lock convoy would show.

Then `sse`: `--streams` event streams open on every process (as alice's second device, so that
alice's writes are events for them) while alice's vlob_update requests go through all the processes
(round robin per connection) for `--duration` seconds. Every stream must receive every write, or
be told `missed_events` (events delivered / expected per stream; "not delivered" counts the missing
ones, "silently lost" those of streams never told `missed_events`: must be 0). A stream the server
ends is reopened with `Last-Event-ID`, as a client does. Delivery latency is from
the moment the write request was sent to the moment a stream read the event (p50/p99 over every
stream and event).

`--pgbouncer MODE` puts PgBouncer (the system's `pgbouncer` binary, e.g. Debian's package) in
front of PostgreSQL, in that pool mode: the processes connect through it (their LISTEN connection
too: parsec-server has a single --db URL). docs/scaling.md says what works.

Bounded: each run lasts `--duration` seconds (+ a 0.75 s warm-up, + at most 10 s for the streams to
drain); everything started is stopped at the end. On the 2-core machine the processes, PostgreSQL
and the load generator share the cores: the point is correctness and cost per request under N
processes, not a speed-up.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
# the compat client checks the api-version of every reply: ours answers 5.6
os.environ["PARSEC_COMPAT_TARGET"] = "ours"
sys.path.insert(0, str(REPO / "src"))
import loadgen as lg  # noqa: E402  (also puts tests/compat on sys.path: the client library)
from loadgen import AC, Heads, Target, c  # noqa: E402

from parsec_server.embedded_pg import EmbeddedPostgres, free_tcp_port  # noqa: E402  (stdlib only)

TOKEN = "bench-admin-token"
BUCKET = "parsec-scaleout"
S3_KEY, S3_SECRET, S3_REGION = "bench-key", "bench-secret", "us-east-1"
WORKLOADS = "vlob_update,vlob_read_batch,block_create,block_read"
SAMPLE_EVERY = 0.05


# --- processes ----------------------------------------------------------------------------------


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args!r} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer in {timeout} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def start_pgbouncer(
    work: Path, pg: EmbeddedPostgres, mode: str
) -> tuple[subprocess.Popen[bytes], int]:
    exe = shutil.which("pgbouncer")
    if exe is None:
        raise SystemExit("pgbouncer not found (Debian: apt-get install pgbouncer)")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    version = tuple(int(x) for x in out.split()[1].split(".")[:2])  # "PgBouncer 1.18.0"
    print(f"{out.splitlines()[0]}, pool_mode = {mode}", flush=True)
    port = free_tcp_port()
    user = pg.url.split("//", 1)[1].split("@", 1)[0].split(":", 1)[0]
    (work / "userlist.txt").write_text(f'"{user}" ""\n')
    ini = work / "pgbouncer.ini"
    ini.write_text(
        "[databases]\n"
        f"* = host=127.0.0.1 port={pg.tcp_port}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {work / 'userlist.txt'}\n"
        f"pool_mode = {mode}\nmax_client_conn = 500\ndefault_pool_size = 40\n"
        # our connections set these in their startup packet (storage/db.py SERVER_SETTINGS)
        "ignore_startup_parameters = plan_cache_mode,statement_timeout\n"
        # prepared statements in transaction mode: PgBouncer >= 1.21 (older ones refuse the key)
        + ("max_prepared_statements = 1024\n" if version >= (1, 21) else "")
        + f"logfile = {work / 'pgbouncer.log'}\n"
    )
    argv = [exe, str(ini)]
    if os.geteuid() == 0:
        argv = [exe, "-u", "postgres", str(ini)]
        shutil.chown(work, "postgres")
        for f in work.glob("pgbouncer*"):
            shutil.chown(f, "postgres")
        shutil.chown(work / "userlist.txt", "postgres")
    proc = subprocess.Popen(
        argv,
        stdout=open(work / "pgbouncer.out", "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", str(port)], capture_output=True)
        if r.returncode == 0:
            return proc, port
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise SystemExit(f"pgbouncer did not start: {(work / 'pgbouncer.out').read_text()[-500:]}")


# --- sampling PostgreSQL --------------------------------------------------------------------------


@dataclasses.dataclass
class Samples:
    n: int = 0
    max_conns: int = 0
    active: int = 0  # active backend-samples
    waits: Counter[str] = dataclasses.field(default_factory=Counter)
    ungranted: Counter[str] = dataclasses.field(default_factory=Counter)


def sample(admin_url: str, database: str, out: Samples, stop_at: threading.Event) -> None:
    """Runs in a thread of its own (its own event loop): the load generator's loop is busy."""

    async def loop() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            while not stop_at.is_set():
                rows = await conn.fetch(
                    "SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
                    "WHERE datname = $1 AND backend_type = 'client backend'",
                    database,
                )
                locks = await conn.fetch(
                    "SELECT l.locktype, l.mode FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                    "WHERE NOT l.granted AND a.datname = $1",
                    database,
                )
                out.n += 1
                out.max_conns = max(out.max_conns, len(rows))
                for r in rows:
                    if r["state"] == "active":
                        out.active += 1
                        ev = r["wait_event"]
                        out.waits[f"{r['wait_event_type']}:{ev}" if ev else "CPU"] += 1
                for r in locks:
                    out.ungranted[f"{r['locktype']}/{r['mode']}"] += 1
                await asyncio.sleep(SAMPLE_EVERY)
        finally:
            await conn.close()

    asyncio.run(loop())


async def count_conns(admin_url: str, database: str) -> dict[str, int]:
    conn = await asyncpg.connect(admin_url)
    try:
        rows = await conn.fetch(
            "SELECT CASE WHEN query LIKE 'LISTEN %' THEN 'listen' ELSE state END AS kind, count(*) "
            "FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend' "
            "GROUP BY 1",
            database,
        )
    finally:
        await conn.close()
    return {r["kind"] or "?": r["count"] for r in rows}


# --- load -----------------------------------------------------------------------------------------


async def run_spread(
    targets: list[Target],
    w: lg.Workload,
    duration: float,
    connections: int,
    pgids: list[int],
    pg_pid: int | None,
    database: str,
    admin_url: str,
    idle_pgids: tuple[int, ...] = (),
) -> dict[str, Any]:
    """bench/loadgen.run_workload, connection i on targets[i % N]; plus pg_stat_activity samples."""
    heads = [Heads(t) for t in targets]
    gens = [w.bodies(targets[0], i) for i in range(connections)]
    latencies: list[float] = []
    errors: list[str] = []
    n = len(targets)
    warm = time.monotonic() + min(0.75, duration / 4)
    await asyncio.gather(
        *(
            lg._connection(targets[i % n], g, warm, None, errors, heads[i % n], w.feedback)
            for i, g in enumerate(gens)
        )
    )
    errors.clear()
    samples = Samples()
    stop_at = threading.Event()
    sampler = threading.Thread(target=sample, args=(admin_url, database, samples, stop_at))
    sampler.start()
    cpu0 = sum(lg.cpu_seconds(pgid=g) for g in pgids)
    idle0 = sum(lg.cpu_seconds(pgid=g) for g in idle_pgids)
    pg0 = lg.cpu_seconds(parent=pg_pid, database=database) if pg_pid else 0.0
    start = time.monotonic()
    counts = await asyncio.gather(
        *(
            lg._connection(targets[i % n], g, start + duration, latencies, errors, heads[i % n])
            for i, g in enumerate(gens)
        )
    )
    elapsed = time.monotonic() - start
    cpu1 = sum(lg.cpu_seconds(pgid=g) for g in pgids)
    idle1 = sum(lg.cpu_seconds(pgid=g) for g in idle_pgids)
    pg1 = lg.cpu_seconds(parent=pg_pid, database=database) if pg_pid else 0.0
    stop_at.set()
    sampler.join()
    ok = sum(counts)
    latencies.sort()
    return {
        "ok": ok,
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "rps": ok / elapsed,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else 0.0,
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else 0.0,
        "server_us": 1e6 * (cpu1 - cpu0) / ok if ok else 0.0,
        # per request served by the others, per idle process (events received, nothing served)
        "idle_us": 1e6 * (idle1 - idle0) / ok / len(idle_pgids) if ok and idle_pgids else 0.0,
        "pg_us": 1e6 * (pg1 - pg0) / ok if ok and pg_pid else 0.0,
        "max_conns": samples.max_conns,
        "waits": _shares(samples.waits, samples.active),
        "ungranted_locks": dict(samples.ungranted),
        "samples": samples.n,
        "active_samples": samples.active,
    }


def _shares(counter: Counter[str], total: int) -> dict[str, float]:
    return {k: round(100 * v / total, 1) for k, v in counter.most_common()} if total else {}


async def read_stream(
    t: Target,
    device: c.AuthenticatedClient,
    got: dict[tuple[str, int], float],
    opened: asyncio.Event,
    stats: Counter[str],
) -> None:
    """One client's event stream: records when each vlob event arrives (key: vlob id hex, version).
    Like a client, it reconnects (to the same process) with `Last-Event-ID` when the server ends
    the stream (the server ends a stream whose queue overflows: the client resumes from its last
    event, replayed from the process's cache, or gets `missed_events` and resynchronises)."""
    url = f"http://{t.host}:{t.port}/authenticated/{t.org.organization_id}/events"  # type: ignore[union-attr]
    last_id: str | None = None
    perf = time.perf_counter
    async with httpx.AsyncClient(timeout=httpx.Timeout(60, connect=10)) as http:
        while True:
            headers = {
                "Authorization": f"Bearer {device.token()}",
                "Api-Version": "5.5",
                "Accept": "text/event-stream",
            }
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            async with http.stream("GET", url, headers=headers) as resp:
                if resp.status_code != 200:
                    raise RuntimeError(f"events: HTTP {resp.status_code}")
                async for line in resp.aiter_lines():
                    if line.startswith("id:"):
                        last_id = line[3:].strip()
                    elif line.startswith("event:") and "missed_events" in line:
                        stats["missed_events"] += 1
                    elif line.startswith("data:") and line[5:].strip():  # missed_events: "data:"
                        rep = AC.events_listen.Rep.load(base64.b64decode(line[5:].strip()))
                        unit = getattr(rep, "unit", None)
                        if isinstance(unit, AC.events_listen.APIEventVlob):
                            got[(unit.vlob_id.hex, unit.version)] = perf()
                        elif isinstance(unit, AC.events_listen.APIEventOrganizationConfig):
                            opened.set()
            stats["reconnects"] += 1


async def run_sse(
    targets: list[Target],
    streamer: c.AuthenticatedClient,
    per_process: int,
    duration: float,
    connections: int,
) -> dict[str, Any]:
    n = len(targets)
    t0 = targets[0]
    stats = [Counter[str]() for _ in range(per_process * n)]  # per stream
    streams: list[dict[tuple[str, int], float]] = []
    tasks = []
    opened: list[asyncio.Event] = []
    for k in range(per_process * n):
        got: dict[tuple[str, int], float] = {}
        ev = asyncio.Event()
        streams.append(got)
        opened.append(ev)
        tasks.append(
            asyncio.create_task(read_stream(targets[k % n], streamer, got, ev, stats[k]))  # type: ignore[arg-type]
        )
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in opened)), 30)
    sent: dict[tuple[str, int], float] = {}

    def writes(i: int) -> Any:
        vlob_id = t0.vlobs[i]
        blob = os.urandom(512)
        while True:
            body = lg._vlob_update(t0, vlob_id, blob)
            sent[(vlob_id.hex, t0.versions[vlob_id])] = time.perf_counter()
            yield body

    heads = [Heads(t) for t in targets]
    errors: list[str] = []
    deadline = time.monotonic() + duration
    counts = await asyncio.gather(
        *(
            lg._connection(targets[i % n], writes(i), deadline, None, errors, heads[i % n])
            for i in range(connections)
        )
    )
    written = sum(counts)
    expected = set(sent) if not errors else None  # with errors: only what the replies confirmed
    drain = time.monotonic() + 10
    # the streams fill their dicts as events arrive: poll them (a stream told `missed_events` may
    # never get them all)
    while time.monotonic() < drain and any(  # noqa: ASYNC110
        len(s) < written and not st["missed_events"] for s, st in zip(streams, stats, strict=True)
    ):
        await asyncio.sleep(0.05)
    # a stream task that failed (not cancelled) is a broken client: say so
    failed = [
        repr(t.exception()) for t in tasks if t.done() and not t.cancelled() and t.exception()
    ]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if failed:
        raise RuntimeError(f"{len(failed)} event stream(s) failed, first: {failed[0]}")
    delivered = [len(s.keys() & (expected or s.keys())) for s in streams]
    lat = sorted(1000 * (at - sent[k]) for s in streams for k, at in s.items() if k in sent)
    return {
        "streams": len(streams),
        "writes": written,
        "write_errors": len(errors),
        "first_error": errors[0] if errors else "",
        "delivered_min": min(delivered),
        "delivered_max": max(delivered),
        # not delivered, in all; and on streams never told `missed_events` (a silent loss)
        "undelivered": sum(max(0, written - d) for d in delivered),
        "lost": sum(
            max(0, written - d)
            for d, st in zip(delivered, stats, strict=True)
            if not st["missed_events"]
        ),
        "missed_events_frames": sum(st["missed_events"] for st in stats),
        "streams_told_missed": sum(1 for st in stats if st["missed_events"]),
        "reconnects": sum(st["reconnects"] for st in stats),
        "lat_p50_ms": statistics.median(lat) if lat else 0.0,
        "lat_p99_ms": lat[int(len(lat) * 0.99)] if lat else 0.0,
    }


# --- one N ----------------------------------------------------------------------------------------


def run_n(
    n: int,
    args: argparse.Namespace,
    pg: EmbeddedPostgres,
    db_base: str,
    s3_endpoint: str,
    work: Path,
) -> dict[str, Any]:
    database = f"scaleout_n{n}"
    subprocess.run(["psql", "-q", "-d", pg.url, "-c", f"CREATE DATABASE {database}"], check=True)
    if args.pgbouncer:
        # PgBouncer drops what our connections set in their startup packet (ignore_startup_parameters
        # above): the same settings on the database instead (docs/scaling.md)
        for setting in ("plan_cache_mode = force_generic_plan", "statement_timeout = '60s'"):
            subprocess.run(
                ["psql", "-q", "-d", pg.url, "-c", f"ALTER DATABASE {database} SET {setting}"],
                check=True,
            )
    url = f"{db_base}/{database}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARSEC_")}
    if args.src:  # the server code of another source tree (before/after figures)
        env["PYTHONPATH"] = str(Path(args.src).absolute() / "src")
    ours = str(REPO / ".venv" / "bin" / "parsec-server")
    subprocess.run(
        [ours, "migrate", "--db", pg.url_for(database), "--no-backup"],
        check=True,
        capture_output=True,
        env=env,
    )
    endpoint = s3_endpoint.replace(":", "\\:")
    blockstore = f"s3:{endpoint}:{S3_REGION}:{BUCKET}:{S3_KEY}:{S3_SECRET}"
    procs: list[subprocess.Popen[bytes]] = []
    targets: list[Target] = []
    try:
        for k in range(n + args.idle_processes):
            port = free_tcp_port()
            procs.append(
                subprocess.Popen(
                    [
                        ours,
                        "run",
                        "--db",
                        url,
                        "--blockstore",
                        blockstore,
                        "--administration-token",
                        TOKEN,
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--server-addr",
                        f"parsec3://127.0.0.1:{port}?no_ssl=true",
                        "--log-level",
                        "warning",
                    ],
                    stdout=open(work / f"n{n}-p{k}.log", "wb"),
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            )
            wait_http(f"http://127.0.0.1:{port}/health", procs[-1])
            targets.append(Target(f"p{k}", f"http://127.0.0.1:{port}"))
        lg.setup(targets[0], TOKEN, args.connections)
        # the same organization, realm, vlobs and version counters, another process
        for k in range(1, n):
            targets[k] = dataclasses.replace(
                targets[0],
                name=f"p{k}",
                url=targets[k].url,
                port=int(targets[k].url.rsplit(":", 1)[1]),
            )
        admin_url = pg.url
        at_rest = asyncio.run(count_conns(admin_url, database))
        pgids = [proc.pid for proc in procs[:n]]
        idle_pgids = tuple(proc.pid for proc in procs[n:])
        del targets[n:]  # the idle processes serve nothing (their LISTEN connection hears all)
        results: dict[str, Any] = {"conns_at_rest": at_rest}
        print(
            f"N={n}: PostgreSQL connections to {database} at rest (after setup): "
            + ", ".join(f"{k} {v}" for k, v in sorted(at_rest.items()))
            + f" = {sum(at_rest.values())}",
            flush=True,
        )
        for name in filter(None, args.workloads.split(",")):
            res = asyncio.run(
                run_spread(
                    targets,
                    lg.WORKLOADS[name],
                    args.duration,
                    args.connections,
                    pgids,
                    pg.pid,
                    database,
                    admin_url,
                    idle_pgids,
                )
            )
            results[name] = res
            top = ", ".join(f"{k} {v:g}%" for k, v in list(res["waits"].items())[:4])
            print(
                f"N={n} {name:<16}{res['rps']:>8.0f} req/s  p50 {res['p50_ms']:6.2f} ms  "
                f"p99 {res['p99_ms']:6.1f} ms  server {res['server_us']:5.0f} us/req  "
                f"pg {res['pg_us']:4.0f} us/req  "
                + (f"idle {res['idle_us']:4.0f} us/req  " if args.idle_processes else "")
                + f"conns max {res['max_conns']:>3}  "
                f"waits ({res['active_samples']} active in {res['samples']} samples): {top}"
                + (f"  ungranted locks: {res['ungranted_locks']}" if res["ungranted_locks"] else "")
                + (f"  ! {res['errors']} errors: {res['first_error']}" if res["errors"] else ""),
                flush=True,
            )
        if args.streams:
            streamer = targets[0].org.alice.create_device("streams")  # type: ignore[union-attr]
            sse = asyncio.run(
                run_sse(targets, streamer, args.streams, args.duration, args.connections)
            )
            results["sse"] = sse
            print(
                f"N={n} sse: {sse['streams']} streams ({args.streams} per process), "
                f"{sse['writes']} writes through {n} process(es); delivered per stream "
                f"{sse['delivered_min']}..{sse['delivered_max']} of {sse['writes']}, "
                f"not delivered {sse['undelivered']}, silently lost {sse['lost']}; "
                f"{sse['reconnects']} stream ends, {sse['missed_events_frames']} missed_events "
                f"on {sse['streams_told_missed']} stream(s); "
                f"latency p50 {sse['lat_p50_ms']:.1f} ms p99 {sse['lat_p99_ms']:.1f} ms"
                + (
                    f"  ! {sse['write_errors']} write errors: {sse['first_error']}"
                    if sse["write_errors"]
                    else ""
                ),
                flush=True,
            )
        return results
    finally:
        for proc in procs:
            stop(proc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--processes", default="1,2,4", help="comma-separated numbers of processes")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per run")
    ap.add_argument("--connections", type=int, default=16, help="load connections in all")
    ap.add_argument("--streams", type=int, default=4, help="event streams per process (0: none)")
    ap.add_argument("--workloads", default=WORKLOADS, help=f"among {','.join(lg.WORKLOADS)}")
    ap.add_argument(
        "--idle-processes",
        type=int,
        default=0,
        help="more processes that serve no request: their CPU per request served by the others "
        "(`idle us`, per idle process) is what receiving every event costs a process",
    )
    ap.add_argument("--pgbouncer", choices=["session", "transaction"])
    ap.add_argument(
        "--src",
        help="run the servers from another source tree (its src/ first on PYTHONPATH), e.g. "
        "`git archive <commit> src | tar -x -C DIR`",
    )
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()
    unknown = [w for w in args.workloads.split(",") if w and w not in lg.WORKLOADS]
    if unknown:
        ap.error(f"unknown workloads {unknown}")
    args.workloads = ",".join(w for w in args.workloads.split(",") if w)
    moto = REPO / ".venv" / "bin" / "moto_server"
    if not moto.exists():
        raise SystemExit(f"{moto} not found (scripts/bootstrap.sh --test installs moto)")
    print(
        f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
        f"({os.cpu_count()} CPUs); {args.connections} connections, {args.duration:g} s per run",
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix="parsec-scaleout-", dir="/tmp"))
    os.chmod(work, 0o755)
    pg = EmbeddedPostgres(
        work / "pg", tcp_port=free_tcp_port(), database="postgres", fast_unsafe=True
    )
    s3_port = free_tcp_port()
    s3 = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(s3_port)],
        stdout=open(work / "moto.log", "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    bouncer: subprocess.Popen[bytes] | None = None
    results: dict[str, Any] = {}
    try:
        s3_endpoint = f"http://127.0.0.1:{s3_port}"
        wait_http(s3_endpoint, s3)
        httpx.put(f"{s3_endpoint}/{BUCKET}").raise_for_status()
        pg.start()
        db_base = pg.url.rsplit("/", 1)[0]
        if args.pgbouncer:
            (work / "bouncer").mkdir()
            bouncer, port = start_pgbouncer(work / "bouncer", pg, args.pgbouncer)
            db_base = db_base.replace(f":{pg.tcp_port}", f":{port}")
            print(f"through PgBouncer ({args.pgbouncer} pooling) on port {port}", flush=True)
        for n in (int(x) for x in args.processes.split(",")):
            results[str(n)] = run_n(n, args, pg, db_base, s3_endpoint, work)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(results, indent=2, default=str))
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        return 0
    except (SystemExit, Exception):
        for log in sorted(work.rglob("*.log")):
            print(f"--- last lines of {log.name}:")
            print("\n".join(log.read_text(errors="replace").splitlines()[-15:]))
        raise
    finally:
        if bouncer is not None:
            stop(bouncer)
        stop(s3)
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
