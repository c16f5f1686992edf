"""Data scale over HTTP (issue 17 point 1): ours and the official server, one process each, on the
databases of bench/scale.py, driven by a lean HTTP client.

    .venv/bin/python bench/scale_http.py [--sizes small,100x,large] [--targets ours,official]
        [--workloads a,b] [--duration 2] [--rounds 2] [--connections 16] [--json out.json]

For each size, a fresh database is migrated by our `parsec-server migrate` and built by
bench/scale.py's builder (`scale.build`, `scale.SIZES`: the big organization through the
application, real keys; the rest by set-based SQL). For the official server, a copy is made
(`CREATE DATABASE ... TEMPLATE`) and handed back to the official schema by our own
`parsec-server migrate --to official-3.9 --no-backup` (timed). Then every database is served by
ONE server process of its own, all started at once (ours: `parsec-server run`, logging at warning,
PostgreSQL blockstore; the official: `.venv-compat/bin/parsec run`, logging at WARNING, PostgreSQL
blockstore), and the rounds alternate: for each round, each workload, each size, each server, one
measured run while the other servers sit idle. Alternating spreads the machine's noise over sizes
and servers alike; the table shows the medians of the rounds.

The workloads are bench/scale.py's (alice's requests on the big organization, the bodies built by
`scale.request`; the administration statistics with the administration token). The client is
this process: 16 keep-alive HTTP/1.1 connections on raw asyncio streams (uvloop), request heads
re-signed once a second (alice's authentication token, as a client does), bodies prepared
beforehand (a cycle of 64 per connection) except vlob_update's (versions in order on each
connection's vlob, a fresh timestamp each). A reply counts when it is HTTP 200 and, for RPC,
`status: ok`. Each run: one request alone (`alone`, also the first warm-up; if it takes more than
`--request-timeout`, 10 s, the workload is out of reach for that server at that size: `timeout`,
not run again), a 0.5 s warm-up on every connection (skipped for requests of 50 ms or more), then
`--duration` seconds; requests in flight at the deadline are awaited and counted (the window ends
with the last reply).

Per size, workload and server it prints req/s, p50/p99 latency (ms), CPU µs per request of the
server process (`srv`: /proc of its process group), of its PostgreSQL backends (`pg`: children of
the postmaster connected to the served database, as bench/loadgen.py's --pg-pid), and of this
client (`cli`: if `cli` x req/s nears 1e6, the client bounds the workload), and the ratio of
req/s ours/official (median of the rounds' ratios, their range); the 1-minute load average before
each run; the build and hand-back times and the servers' RSS. Then, with two sizes or more, the
growth from the first size to the last per workload and server: the median (and range) of the
per-round ratios of CPU per request (server + PostgreSQL) and of p99. `--json` writes every round.

Needs `.venv` (our server, the builder's imports) and `.venv-compat/bin/parsec` (the official
server 3.9.3: `scripts/compat-venv.sh .venv-compat`). One throwaway PostgreSQL cluster
(`fsync=off`), removed at the end. A full run (3 sizes, both servers, 2 rounds of 2 s) takes
about 12 minutes here.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
import scale  # noqa: E402  (puts src/ and tests/integration/commands on sys.path)
import uvloop  # noqa: E402
from core_helpers import ADMIN_TOKEN, running_server  # noqa: E402

from parsec_server.embedded_pg import EmbeddedPostgres, free_tcp_port  # noqa: E402

OURS = REPO / ".venv" / "bin" / "parsec-server"
OFFICIAL = REPO / ".venv-compat" / "bin" / "parsec"
CYCLE = 64  # bodies prepared per connection (cycled), for the workloads whose bodies can repeat


# --- the client ------------------------------------------------------------------------------------


class Heads:
    """Request heads: alice's RPC POST head per body length, signed again each second (a client
    signs a token per second), or the administration GET head."""

    def __init__(self, big: scale.Big, port: int) -> None:
        self.alice = big.alice
        self.host = f"127.0.0.1:{port}"
        self.rpc_prefix = (
            f"POST /authenticated/{big.organization_id} HTTP/1.1\r\nHost: {self.host}\r\n"
            "Api-Version: 5.5\r\nContent-Type: application/msgpack\r\n"
        )
        self.second = 0
        self.auth = ""
        self.cache: dict[int, bytes] = {}

    def rpc(self, length: int) -> bytes:
        second = int(time.time())
        if second != self.second:
            self.second = second
            self.auth = f"Authorization: {self.alice.headers()['Authorization']}\r\n"
            self.cache.clear()
        head = self.cache.get(length)
        if head is None:
            head = self.cache[length] = (
                f"{self.rpc_prefix}{self.auth}Content-Length: {length}\r\n\r\n".encode()
            )
        return head

    def admin(self, path: str) -> bytes:
        return (
            f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {ADMIN_TOKEN}\r\n\r\n"
        ).encode()


def bodies(big: scale.Big, workload: str, conn: int, connections: int) -> Iterator[scale.Request]:
    """Connection `conn`'s requests: scale.request(big, workload, conn + connections * n)."""
    if workload == "vlob_update":  # versions in order on the connection's own vlob
        n = 0
        while True:
            yield scale.request(big, workload, conn + connections * n)
            n += 1
    reqs = [scale.request(big, workload, conn + connections * n) for n in range(CYCLE)]
    while True:
        yield from reqs


async def _read_reply(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lower = head.lower()
    cl = lower.find(b"\r\ncontent-length:")
    if cl >= 0:
        length = int(head[cl + 17 : head.index(b"\r\n", cl + 2)])
        return head, await reader.readexactly(length)
    if b"\r\ntransfer-encoding: chunked" not in lower:
        raise RuntimeError(f"reply without a length: {head[:200]!r}")
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        parts.append(await reader.readexactly(size + 2))
        if size == 0:
            return head, b"".join(p[:-2] for p in parts)


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    timeout: bool = False


async def _connection(
    port: int,
    heads: Heads,
    reqs: Iterator[scale.Request],
    deadline: float,
    out: Outcome | None,
    errors: list[str],
    request_timeout: float,
) -> int:
    """Requests one after the other until `deadline` (at least one): the number of good replies."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = 0
    perf = time.perf_counter
    try:
        while True:
            req = next(reqs)
            head = heads.rpc(len(req.body)) if req.method == "POST" else heads.admin(req.path)
            start = perf()
            writer.write(head + req.body)
            try:
                rep_head, payload = await asyncio.wait_for(_read_reply(reader), request_timeout)
            except TimeoutError:
                if out is not None:
                    out.timeout = True
                errors.append(f"no reply within {request_timeout:.3g} s")
                break
            if out is not None:
                out.latencies.append(perf() - start)
            ok = rep_head.startswith(b"HTTP/1.1 200") and (
                req.method != "POST" or b"\xa6status\xa2ok" in payload[:16]
            )
            if ok:
                done += 1
            else:
                status_line = rep_head.split(b"\r\n", 1)[0].decode()
                errors.append(f"{status_line} {payload[:80]!r}")
                if len(errors) > 20:
                    break
            if time.monotonic() >= deadline:
                break
    finally:
        writer.close()
    return done


# --- CPU from /proc ---------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: str) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # from the 3rd field (state) on


def cpu_seconds(pgid: int | None = None, postmaster: int | None = None, db: str = "") -> float:
    """User + system CPU of a process group, or of the postmaster's children connected to `db`
    (their title: "postgres: USER DATABASE HOST(PORT) STATE")."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        st = _stat(pid)
        if st is None:
            continue
        if pgid is not None and int(st[2]) == pgid:
            total += int(st[11]) + int(st[12])
        elif postmaster is not None and int(st[1]) == postmaster:
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").split()
            except OSError:
                continue
            if title[2:3] == [db.encode()]:
                total += int(st[11]) + int(st[12])
    return total / _TICK


def settle(server_pgid: int, postmaster: int, db: str, limit: float = 120.0) -> None:
    """Wait (at most `limit` s) until the server and its backends use under 5 % of a core."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = cpu_seconds(pgid=server_pgid) + cpu_seconds(postmaster=postmaster, db=db)
        time.sleep(0.5)
        after = cpu_seconds(pgid=server_pgid) + cpu_seconds(postmaster=postmaster, db=db)
        if after - before < 0.025:
            return


def rss_mb(pgid: int) -> float:
    total = 0
    for pid in os.listdir("/proc"):
        st = _stat(pid) if pid.isdigit() else None
        if st is not None and int(st[2]) == pgid:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


async def run_workload(
    big: scale.Big,
    workload: str,
    port: int,
    server_pgid: int,
    postmaster: int,
    db: str,
    duration: float,
    connections: int,
    request_timeout: float,
) -> dict[str, Any]:
    """One request alone first (over `request_timeout`: out of reach, not measured), then a
    warm-up (0.5 s on every connection; none for a request of 50 ms or more: the one request was
    the warm-up), then the measured window. A request of the window may wait behind the others
    (one server process): it may take `2 * connections` times the request alone."""
    heads = Heads(big, port)
    gens = [bodies(big, workload, k, connections) for k in range(connections)]
    first, first_errors = Outcome(), list[str]()
    await _connection(port, heads, gens[0], 0.0, first, first_errors, request_timeout)
    if first.timeout:
        return {"timeout": True, "first_error": first_errors[0], "alone_s": None, "load": 0.0}
    alone_s = first.latencies[0]
    window_timeout = max(request_timeout, 2 * connections * alone_s)
    if alone_s < 0.05:
        warm, warm_errors = Outcome(), list[str]()
        deadline = time.monotonic() + 0.5
        await asyncio.gather(
            *(
                _connection(port, heads, g, deadline, warm, warm_errors, window_timeout)
                for g in gens
            )
        )
    out = Outcome()
    srv0, pg0 = cpu_seconds(pgid=server_pgid), cpu_seconds(postmaster=postmaster, db=db)
    cli0, start = time.process_time(), time.monotonic()
    deadline = start + duration
    counts = await asyncio.gather(
        *(_connection(port, heads, g, deadline, out, out.errors, window_timeout) for g in gens)
    )
    elapsed = time.monotonic() - start
    cli = time.process_time() - cli0
    srv, pg = cpu_seconds(pgid=server_pgid) - srv0, cpu_seconds(postmaster=postmaster, db=db) - pg0
    ok = sum(counts)
    lat = sorted(out.latencies)
    return {
        "timeout": out.timeout,
        "alone_s": alone_s,
        "ok": ok,
        "errors": len(out.errors),
        "first_error": out.errors[0] if out.errors else (first_errors[0] if first_errors else ""),
        "seconds": elapsed,
        "rps": ok / elapsed,
        "p50_ms": 1000 * statistics.median(lat) if lat else 0.0,
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else 0.0,
        "server_us": 1e6 * srv / ok if ok else 0.0,
        "pg_us": 1e6 * pg / ok if ok else 0.0,
        "client_us": 1e6 * cli / ok if ok else 0.0,
    }


# --- servers and databases -------------------------------------------------------------------------


def cli_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PARSEC_")}


def psql(server_url: str, sql: str) -> None:
    env = {**os.environ, "PGOPTIONS": "-c client_min_messages=warning"}
    subprocess.run(["psql", "-q", "-d", f"{server_url}/postgres", "-c", sql], check=True, env=env)


def start_server(target: str, db_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    if target == "ours":
        argv = [str(OURS), "run", "--db", db_url, "--administration-token", ADMIN_TOKEN]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    else:
        argv = [str(OFFICIAL), "run", "--db", db_url, "--blockstore", "POSTGRESQL"]
        argv += ["--administration-token", ADMIN_TOKEN]
        argv += ["--fake-account-password-algorithm-seed", "F4k3", "--email-host", "MOCKED"]
        argv += ["--server-addr", f"parsec3://127.0.0.1:{port}?no_ssl=true"]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "WARNING"]
    proc = subprocess.Popen(
        argv,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        env=cli_env(),
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{target} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with __import__("socket").create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            time.sleep(0.2)
    stop_server(proc)
    raise RuntimeError(f"{target} did not start in 120 s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def build(db_url: str, size: scale.Size) -> scale.Big:
    async with running_server(db_url) as server:
        object.__setattr__(server.app.config, "validate_replies", False)
        return await scale.build(db_url, size, server)


@dataclass
class Served:
    """One server on one size's database, and alice's view of that database."""

    size: str
    target: str
    big: scale.Big
    db_url: str
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    rounds: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def db(self) -> str:
        return self.db_url.rsplit("/", 1)[1]


def measure(s: Served, workload: str, postmaster: int, args: argparse.Namespace) -> None:
    """One round of `workload` on `s`; a workload that timed out is not run again."""
    assert s.proc is not None
    done = s.rounds.setdefault(workload, [])
    if done and done[-1]["timeout"]:
        return
    settle(s.proc.pid, postmaster, s.db)
    load = os.getloadavg()[0]
    res = uvloop.run(
        run_workload(
            s.big,
            workload,
            s.port,
            s.proc.pid,
            postmaster,
            s.db,
            args.duration,
            args.connections,
            args.request_timeout,
        )
    )
    res["load"] = load
    done.append(res)
    label = f"  {s.size:6} {s.target:8} {workload:26}"
    if res["timeout"]:
        # the server still works on the requests abandoned: wait for it
        alone_s = res["alone_s"]
        print(
            f"{label} timeout: {res['first_error']}; one request alone: "
            + (f"{alone_s:.2f} s" if alone_s is not None else f"> {args.request_timeout:g} s"),
            flush=True,
        )
        settle(s.proc.pid, postmaster, s.db)
        return
    err = f"  ! {res['errors']} errors, first: {res['first_error']}" if res["errors"] else ""
    print(
        f"{label} {res['rps']:7.0f} req/s  p50 {res['p50_ms']:7.1f}  p99 {res['p99_ms']:7.1f} ms"
        f"  srv {res['server_us']:6.0f}  pg {res['pg_us']:6.0f}  cli {res['client_us']:5.0f}"
        f" us/req  alone {1000 * res['alone_s']:6.1f} ms  load {load:.1f}{err}",
        flush=True,
    )


def median_of(all_rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the rounds that did not time out (a timeout if they all did)."""
    rounds = [r for r in all_rounds if not r["timeout"]]
    if not rounds:
        return all_rounds[-1]
    keys = ("rps", "p50_ms", "p99_ms", "server_us", "pg_us", "client_us", "load")
    med: dict[str, Any] = {k: statistics.median(r[k] for r in rounds) for k in keys}
    med["load"] = max(r["load"] for r in rounds)
    med["errors"] = sum(r["errors"] for r in rounds)
    med["timeout"] = False
    med["rounds_timed_out"] = len(all_rounds) - len(rounds)
    return med


def handback(db_url: str) -> tuple[int, float, str]:
    t0 = time.monotonic()
    run = subprocess.run(
        [str(OURS), "migrate", "--db", db_url, "--to", "official-3.9", "--no-backup"],
        capture_output=True,
        text=True,
        env=cli_env(),
    )
    return run.returncode, time.monotonic() - t0, run.stdout + run.stderr


def prepare(
    size_name: str, server_url: str, tag: str, args: argparse.Namespace, info: dict[str, Any]
) -> list[Served]:
    """Build the size's database, copy it and hand the copy back: the databases to serve."""
    size = scale.SIZES[size_name]
    ours_db, official_db = f"scale_{size_name}_{tag}".lower(), f"official_{size_name}_{tag}".lower()
    info["size"] = size._asdict()
    psql(server_url, f"CREATE DATABASE {ours_db}")
    subprocess.run(
        [str(OURS), "migrate", "--db", f"{server_url}/{ours_db}", "--no-backup"],
        check=True,
        capture_output=True,
        env=cli_env(),
    )
    print(f"size {size_name}: {size}", flush=True)
    t0 = time.monotonic()
    big = uvloop.run(build(f"{server_url}/{ours_db}", size))
    info["build_s"] = time.monotonic() - t0
    served = []
    if "ours" in args.targets:
        served.append(Served(size_name, "ours", big, f"{server_url}/{ours_db}"))
    if "official" in args.targets:
        t0 = time.monotonic()
        psql(server_url, f"CREATE DATABASE {official_db} TEMPLATE {ours_db}")
        info["copy_s"] = time.monotonic() - t0
        code, seconds, output = handback(f"{server_url}/{official_db}")
        info["handback_s"], info["handback_exit"] = seconds, code
        print(
            f"  copied in {info['copy_s']:.1f} s, handed back to official-3.9 in {seconds:.1f} s"
            f" (exit {code})",
            flush=True,
        )
        if code != 0:
            info["handback_output"] = output[-4000:]
            print("  hand-back failed:\n" + output[-4000:], flush=True)
        else:  # its own versions: vlob_update writes to each database apart
            official_big = dataclasses.replace(big, versions=dict(big.versions))
            served.append(
                Served(size_name, "official", official_big, f"{server_url}/{official_db}")
            )
    return served


# --- report ----------------------------------------------------------------------------------------


def _cell(res: dict[str, Any] | None) -> str:
    if res is None:
        return f"{'-':>8}{'':>8}{'':>8}{'':>7}{'':>7}{'':>6}"
    if res["timeout"]:
        a = res.get("alone_s")
        alone_text = f"alone {a:.2f} s" if a is not None else "alone > timeout"
        return f"{'timeout':>8}{alone_text:>36}"
    return (
        f"{res['rps']:>8.0f}{res['p50_ms']:>8.1f}{res['p99_ms']:>8.1f}"
        f"{res['server_us']:>7.0f}{res['pg_us']:>7.0f}{res['client_us']:>6.0f}"
    )


def table(served: list[Served], sizes: list[str], workloads: list[str]) -> str:
    cols = f"{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'srv us':>7}{'pg us':>7}{'cli':>6}"
    lines = [
        f"{'':6} {'':26}{'ours':^44} |{'official':^44} |",
        f"{'size':6} {'workload':26}{cols} |{cols} | ratio",
    ]
    by = {(s.size, s.target): s for s in served}
    for size_name in sizes:
        for w in workloads:
            res = {}
            for target in ("ours", "official"):
                s = by.get((size_name, target))
                rounds = s.rounds.get(w) if s is not None else None
                res[target] = median_of(rounds) if rounds else None
            ratio = ""
            ratios = _ratios(by.get((size_name, "ours")), by.get((size_name, "official")), w)
            if ratios:
                ratio = f"{statistics.median(ratios):6.2f}x"
                if len(ratios) > 1:
                    ratio += f" ({min(ratios):.2f}-{max(ratios):.2f})"
            lines.append(
                f"{size_name:6} {w:26}{_cell(res['ours'])} |{_cell(res['official'])} | {ratio}"
            )
    return "\n".join(lines)


def _ratios(ours: Served | None, official: Served | None, workload: str) -> list[float]:
    """req/s ours/official of each round where both answered."""
    if ours is None or official is None:
        return []
    pairs = zip(ours.rounds.get(workload, []), official.rounds.get(workload, []), strict=False)
    return [
        a["rps"] / b["rps"]
        for a, b in pairs
        if not a["timeout"] and not b["timeout"] and b["rps"] > 0
    ]


def source_tree() -> str:
    """The commit our server runs from, and the files of src/ changed since (if any)."""

    def git(*argv: str) -> str:
        run = subprocess.run(["git", "-C", str(REPO), *argv], capture_output=True, text=True)
        return run.stdout.rstrip()

    changed = git("status", "--porcelain", "--", "src").splitlines()
    return f"commit {git('rev-parse', '--short', 'HEAD')}" + (
        f", uncommitted in src/: {' '.join(line[3:] for line in changed)}" if changed else ""
    )


def growth(served: list[Served], sizes: list[str], workloads: list[str]) -> str:
    """Per workload and server: how the last size's CPU per request (server + PostgreSQL) and p99
    compare with the first size's, as the median (and range) of the per-round ratios (sizes
    alternate within a round: each ratio compares runs minutes apart at most)."""
    first, last = sizes[0], sizes[-1]
    by = {(s.size, s.target): s for s in served}
    lines = [f"{last}/{first} per round, median (range): CPU = srv + pg us per request"]
    for target in ("ours", "official"):
        a_srv, b_srv = by.get((first, target)), by.get((last, target))
        if a_srv is None or b_srv is None:
            continue
        for w in workloads:
            pairs = [
                (a, b)
                for a, b in zip(a_srv.rounds.get(w, []), b_srv.rounds.get(w, []), strict=False)
                if not a["timeout"] and not b["timeout"] and a["ok"] and b["ok"]
            ]
            if not pairs:
                continue
            cells = []
            for name, key in (("CPU", lambda r: r["server_us"] + r["pg_us"]), ("p99", None)):
                get = key or (lambda r: r["p99_ms"])
                ratios = sorted(get(b) / get(a) for a, b in pairs if get(a) > 0)
                if ratios:
                    med = statistics.median(ratios)
                    cells.append(f"{name} {med:7.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})")
            lines.append(f"  {target:8} {w:26} " + "  ".join(cells))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", default="small,100x,large", help=f"among {','.join(scale.SIZES)}")
    ap.add_argument("--targets", default="ours,official")
    ap.add_argument("--workloads", default=",".join(scale.WORKLOADS))
    ap.add_argument("--duration", type=float, default=2.0, help="seconds per workload and server")
    ap.add_argument("--rounds", type=int, default=2, help="the table shows medians")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--request-timeout", type=float, default=10.0)
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()
    args.workloads = args.workloads.split(",")
    args.targets = args.targets.split(",")
    sizes = args.sizes.split(",")
    for w in args.workloads:
        if w not in scale.WORKLOADS:
            ap.error(f"unknown workload {w!r} (known: {', '.join(scale.WORKLOADS)})")
    for size_name in sizes:
        if size_name not in scale.SIZES:
            ap.error(f"unknown size {size_name!r} (known: {', '.join(scale.SIZES)})")
    for t in args.targets:
        if t not in ("ours", "official"):
            ap.error(f"unknown target {t!r}")
    for exe in (OURS, OFFICIAL):
        if not exe.exists():
            raise SystemExit(f"{exe} not found (scripts/bootstrap.sh, scripts/compat-venv.sh)")
    loads = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average at start: {loads} ({os.cpu_count()} CPUs)", flush=True)
    tree = source_tree()
    print(f"our server: {tree}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="parsec-scale-http-", dir="/tmp"))
    os.chmod(work, 0o755)
    pg = EmbeddedPostgres(work / "pg", tcp_port=free_tcp_port(), fast_unsafe=True)
    infos: dict[str, dict[str, Any]] = {size_name: {} for size_name in sizes}
    served: list[Served] = []
    t_start = time.monotonic()
    try:
        pg.start()
        assert pg.pid is not None
        server_url = pg.url.rsplit("/", 1)[0]
        tag = uuid.uuid4().hex[:8]
        for size_name in sizes:
            served += prepare(size_name, server_url, tag, args, infos[size_name])
        for s in served:  # all at once, idle but one: the rounds alternate sizes and servers
            s.port = free_tcp_port()
            s.proc = start_server(s.target, s.db_url, s.port, work / f"{s.target}-{s.size}.log")
        print(f"{len(served)} servers up; rounds of {args.duration:g} s", flush=True)
        for n in range(args.rounds):
            print(f"round {n + 1}/{args.rounds}", flush=True)
            for workload in args.workloads:
                for s in served:
                    measure(s, workload, pg.pid, args)
        for s in served:
            assert s.proc is not None
            infos[s.size][f"{s.target}_rss_mb"] = rss_mb(s.proc.pid)
    finally:
        for s in served:
            if s.proc is not None:
                stop_server(s.proc)
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    end_loads = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"\n{args.connections} connections, {args.duration:g} s per workload, server and round,"
        f" medians of {args.rounds} rounds; srv/pg/cli: CPU us per request of the server process,"
        " its PostgreSQL backends, this client; ratio: req/s ours/official (median of the rounds'"
        " ratios, their range)\n"
    )
    print(table(served, sizes, args.workloads))
    if len(sizes) > 1:
        print("\n" + growth(served, sizes, args.workloads))
    for size_name, info in infos.items():
        rss = ", ".join(f"{k[:-7]} {v:.0f} MB" for k, v in info.items() if k.endswith("_rss_mb"))
        print(
            f"{size_name}: built in {info.get('build_s', 0):.1f} s"
            + (f", handed back in {info['handback_s']:.1f} s" if "handback_s" in info else "")
            + f"; servers' RSS after the rounds: {rss}"
        )
    print(
        f"load average at end: {end_loads}; whole run {time.monotonic() - t_start:.0f} s",
        flush=True,
    )
    if args.json_out:
        meta = {"load_start": loads, "load_end": end_loads, "args": vars(args), "tree": tree}
        out = {
            "meta": meta,
            "sizes": infos,
            "results": {
                f"{s.size}/{s.target}": {
                    w: {"median": median_of(r), "rounds": r} for w, r in s.rounds.items() if r
                }
                for s in served
            },
        }
        Path(args.json_out).write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
