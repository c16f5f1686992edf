"""Side-by-side load test of parsec-server and the official Parsec server.

Runs in the compat venv (Python 3.12 + parsec-cloud 3.9.3, whose library builds and signs real
requests). For each server URL given, it bootstraps a fresh organization, prepares the request
bodies of each workload beforehand (so the client does no per-request crypto), then drives the
server with N keep-alive HTTP/1.1 connections for a fixed duration and counts replies with HTTP 200
and `status: ok`.

    python bench/loadgen.py --target official=http://127.0.0.1:6770 \
        --target ours=http://127.0.0.1:6771 --admin-token s3cr3t --duration 5 --connections 16

With `--cpu name=PGID` (a server's process group) and `--pg-pid PID` (the postmaster), the table
also shows the CPU time spent per request (user + system time from /proc during the measured
window, divided by the replies counted) by the server's processes (`cpu us`), by its PostgreSQL
backends (`pg us`: those connected to the database named like the target; background workers such
as the WAL writer are not counted) and by this load generator (`lg us`). Unlike req/s, these barely
move when other jobs load the machine. With `--pg-url URL` (any database of that cluster) two more
columns: `bg us`, the CPU per request of the cluster's other processes (WAL writer, checkpointer,
autovacuum; needs `--pg-pid`), `wal B`, the cluster's WAL bytes per request, and `flt`, the
server's minor page faults per request (fresh memory touched: a 512 KiB buffer in new pages is 128).

`--block-size N` (4096) sets the size of the blocks block_create writes and of the blocks the
set-up writes, which block_read (and mixed) read: e.g. `--block-size 524288 --workloads
block_create,block_read` for 512 KiB blocks. Blocks are random bytes, like encrypted ones.

With `--repeat N` every workload runs N rounds (official then ours in each round) and the table
shows the medians; the ratio is the median of the per-round ratios (their range in brackets). The
1-minute load average is printed before the runs and shown per workload (`load`: the highest seen
before one of its runs): a figure taken while other jobs loaded the machine is visible as such.

The load is bounded: each workload runs `--duration` seconds per server and round, then stops.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "compat")
)
import client as c
import parsec._parsec as p

AC = c.AC
SETUP_VLOBS = 100  # vlob_read_batch_100 reads them all
SETUP_BLOCKS = 10
# Size of the blocks block_create writes and of those the set-up writes (that block_read and mixed
# read); `--block-size`. Random bytes, like the encrypted blocks of a real client (the official
# server's block column compresses what it can: constant bytes would shrink to nothing there).
BLOCK_SIZE = 4096


@dataclass
class Target:
    name: str
    url: str
    host: str = ""
    port: int = 0
    org: c.Org | None = None
    realm_id: p.VlobID | None = None
    vlobs: list[p.VlobID] = field(default_factory=list)
    versions: dict[p.VlobID, int] = field(
        default_factory=dict
    )  # last version written, across rounds
    blocks: list[p.BlockID] = field(default_factory=list)
    checkpoint: int = 0  # the realm's checkpoint when the current run started


@dataclass
class Workload:
    name: str
    # gives an endless iterator of request bodies for one connection (index = connection number)
    bodies: Callable[[Target, int], Iterator[bytes]]
    feedback: bool = False  # a generator that receives each reply (`send`)


def _dump(req: object) -> bytes:
    return req.dump()  # type: ignore[attr-defined,no-any-return]


def _repeat(body: bytes) -> Iterator[bytes]:
    return itertools.repeat(body)


def wl_ping(t: Target, _i: int) -> Iterator[bytes]:
    return _repeat(_dump(AC.ping.Req(ping="bench")))


def wl_organization_info(t: Target, _i: int) -> Iterator[bytes]:
    return _repeat(_dump(AC.organization_info.Req()))


def _vlob_create(t: Target, blob: bytes) -> bytes:
    return _dump(
        AC.vlob_create.Req(
            realm_id=t.realm_id,
            vlob_id=p.VlobID.new(),
            key_index=1,
            timestamp=p.DateTime.now(),
            blob=blob,
        )
    )


def _vlob_update(t: Target, vlob_id: p.VlobID, blob: bytes) -> bytes:
    version = t.versions[vlob_id] + 1
    t.versions[vlob_id] = version
    return _dump(
        AC.vlob_update.Req(
            realm_id=t.realm_id,
            vlob_id=vlob_id,
            key_index=1,
            timestamp=p.DateTime.now(),
            version=version,
            blob=blob,
        )
    )


def wl_vlob_create(t: Target, _i: int) -> Iterator[bytes]:
    blob = os.urandom(512)
    while True:
        yield _vlob_create(t, blob)


def wl_vlob_update(t: Target, i: int) -> Iterator[bytes]:
    vlob_id = t.vlobs[i]  # one vlob per connection: no version conflicts
    blob = os.urandom(512)
    while True:
        yield _vlob_update(t, vlob_id, blob)


def wl_vlob_read_batch(t: Target, _i: int) -> Iterator[bytes]:
    return _repeat(_dump(AC.vlob_read_batch.Req(realm_id=t.realm_id, vlobs=t.vlobs[:10], at=None)))


def wl_vlob_read_batch_100(t: Target, _i: int) -> Iterator[bytes]:
    return _repeat(_dump(AC.vlob_read_batch.Req(realm_id=t.realm_id, vlobs=t.vlobs[:100], at=None)))


def _block_create(t: Target, data: bytes) -> bytes:
    return _dump(
        AC.block_create.Req(block_id=p.BlockID.new(), realm_id=t.realm_id, key_index=1, block=data)
    )


def wl_block_create(t: Target, _i: int) -> Iterator[bytes]:
    data = os.urandom(BLOCK_SIZE)
    while True:
        yield _block_create(t, data)


def _block_read(t: Target, i: int) -> bytes:
    return _dump(AC.block_read.Req(block_id=t.blocks[i % len(t.blocks)], realm_id=t.realm_id))


def wl_block_read(t: Target, i: int) -> Iterator[bytes]:
    return _repeat(_block_read(t, i))


def _certificate_get() -> bytes:
    return _dump(
        AC.certificate_get.Req(
            common_after=None, sequester_after=None, shamir_recovery_after=None, realm_after={}
        )
    )


def wl_certificate_get(t: Target, _i: int) -> Iterator[bytes]:
    return _repeat(_certificate_get())


def wl_vlob_poll_changes(t: Target, _i: int) -> Iterator[bytes]:
    """A client up to date polls: nothing changed since its checkpoint."""
    return _repeat(
        _dump(AC.vlob_poll_changes.Req(realm_id=t.realm_id, last_checkpoint=t.checkpoint))
    )


def wl_realm_get_keys_bundle(t: Target, _i: int) -> Iterator[bytes]:
    return _repeat(_dump(AC.realm_get_keys_bundle.Req(realm_id=t.realm_id, key_index=1)))


def wl_mixed(t: Target, i: int) -> Iterator[bytes]:
    """A client synchronising a workspace: mostly reads (poll for changes, fetch manifests, download
    blocks), some uploads (blocks, then the manifest that references them), a new file and
    certificate polls, in a cycle of 20 requests per connection. Like a real client, each
    connection polls from the checkpoint its previous poll returned (it sees the changes the other
    connections made since): this generator gets the reply of each request it yields (`send`)."""
    vlob_id = t.vlobs[i]
    blob = os.urandom(512)
    data = os.urandom(4096)
    checkpoint = t.checkpoint
    read_batch = _dump(
        AC.vlob_read_batch.Req(realm_id=t.realm_id, vlobs=t.vlobs[i : i + 10], at=None)
    )
    block_read = [_block_read(t, i + k) for k in range(4)]
    certificates = _certificate_get()
    keys = _dump(AC.realm_get_keys_bundle.Req(realm_id=t.realm_id, key_index=1))

    def poll() -> Iterator[bytes]:
        nonlocal checkpoint
        reply = yield _dump(
            AC.vlob_poll_changes.Req(realm_id=t.realm_id, last_checkpoint=checkpoint)
        )
        if reply is not None:
            rep = AC.vlob_poll_changes.Rep.load(reply)
            if isinstance(rep, AC.vlob_poll_changes.RepOk):
                checkpoint = rep.current_checkpoint

    while True:
        yield from poll()
        yield read_batch
        yield block_read[0]
        yield block_read[1]
        yield certificates
        yield from poll()
        yield read_batch
        yield block_read[2]
        yield _block_create(t, data)
        yield _block_create(t, data)
        yield _vlob_update(t, vlob_id, blob)
        yield from poll()
        yield block_read[3]
        yield read_batch
        yield keys
        yield block_read[0]
        yield _block_create(t, data)
        yield _vlob_update(t, vlob_id, blob)
        yield _vlob_create(t, blob)
        yield certificates


WORKLOADS = {
    w.name: w
    for w in [
        Workload("ping", wl_ping),
        Workload("organization_info", wl_organization_info),
        Workload("certificate_get", wl_certificate_get),
        Workload("vlob_create", wl_vlob_create),
        Workload("vlob_update", wl_vlob_update),
        Workload("vlob_read_batch", wl_vlob_read_batch),
        Workload("vlob_read_batch_100", wl_vlob_read_batch_100),
        Workload("block_create", wl_block_create),
        Workload("block_read", wl_block_read),
        Workload("vlob_poll_changes", wl_vlob_poll_changes),
        Workload("realm_get_keys_bundle", wl_realm_get_keys_bundle),
        Workload("mixed", wl_mixed, feedback=True),
    ]
}
DEFAULT_WORKLOADS = (
    "organization_info,certificate_get,vlob_create,vlob_update,vlob_read_batch,"
    "vlob_read_batch_100,block_create,block_read,mixed"
)


def expect_api_version(t: Target) -> None:
    """What the compat client checks each reply of `t` against: ours announces 5.6, 3.9.3 5.5."""
    c.SERVER_API_VERSION = "5.6" if t.name == "ours" else "5.5"


def setup(t: Target, admin_token: str, connections: int) -> None:
    expect_api_version(t)
    parts = urlsplit(t.url)
    t.host, t.port = parts.hostname or "127.0.0.1", parts.port or 80
    http = httpx.Client(base_url=t.url, timeout=30)
    admin = c.AdminClient(http, admin_token)
    t.org = c.bootstrap_org(http, admin)
    alice = t.org.alice
    t.realm_id = alice.new_realm()
    for _ in range(max(connections, SETUP_VLOBS)):
        vid = p.VlobID.new()
        rep = alice.send(
            AC.vlob_create.Req(
                realm_id=t.realm_id,
                vlob_id=vid,
                key_index=1,
                timestamp=p.DateTime.now(),
                blob=b"x" * 512,
            )
        )
        assert isinstance(rep, AC.vlob_create.RepOk), rep
        t.vlobs.append(vid)
        t.versions[vid] = 1
    for _ in range(SETUP_BLOCKS):
        bid = p.BlockID.new()
        rep = alice.send(
            AC.block_create.Req(
                block_id=bid, realm_id=t.realm_id, key_index=1, block=os.urandom(BLOCK_SIZE)
            )
        )
        assert isinstance(rep, AC.block_create.RepOk), rep
        t.blocks.append(bid)


def refresh_checkpoint(t: Target) -> None:
    """The realm's current checkpoint: `mixed` polls from there (as an up-to-date client does)."""
    assert t.org is not None
    expect_api_version(t)
    rep = t.org.alice.send(AC.vlob_poll_changes.Req(realm_id=t.realm_id, last_checkpoint=0))
    assert isinstance(rep, AC.vlob_poll_changes.RepOk), rep
    t.checkpoint = rep.current_checkpoint


class Heads:
    """Request heads by body length, rebuilt when the token changes (a real client signs a token per
    second: the token is refreshed every second here too)."""

    def __init__(self, t: Target) -> None:
        assert t.org is not None
        self.alice = t.org.alice
        self.prefix = (
            f"POST /authenticated/{t.org.organization_id} HTTP/1.1\r\nHost: {t.host}:{t.port}\r\n"
            "Api-Version: 5.5\r\nContent-Type: application/msgpack\r\n"
        )
        self.second = 0
        self.cache: dict[int, bytes] = {}
        self.auth = ""

    def get(self, length: int) -> bytes:
        second = int(time.time())
        if second != self.second:
            self.second = second
            self.auth = f"Authorization: Bearer {self.alice.token(second)}\r\n"
            self.cache.clear()
        head = self.cache.get(length)
        if head is None:
            head = self.cache[length] = (
                f"{self.prefix}{self.auth}Content-Length: {length}\r\n\r\n".encode()
            )
        return head


async def _connection(
    t: Target,
    bodies: Any,
    deadline: float,
    latencies: list[float] | None,
    errors: list[str],
    heads: Heads,
    feedback: bool = False,
) -> int:
    reader, writer = await asyncio.open_connection(t.host, t.port)
    done = 0
    perf = time.perf_counter
    mono = time.monotonic
    payload: bytes | None = None
    try:
        while mono() < deadline:
            body = bodies.send(payload) if feedback else next(bodies)
            start = perf()
            writer.write(heads.get(len(body)) + body)
            head = await reader.readuntil(b"\r\n\r\n")
            cl = head.lower().find(b"\r\ncontent-length:")
            if cl < 0:  # chunked replies are not expected for RPC
                raise RuntimeError(f"reply without content-length: {head[:200]!r}")
            length = int(head[cl + 17 : head.index(b"\r\n", cl + 2)])
            payload = await reader.readexactly(length)
            if latencies is not None:
                latencies.append(perf() - start)
            if not head.startswith(b"HTTP/1.1 200") or b"\xa6status\xa2ok" not in payload[:16]:
                status_line = head.split(b"\r\n", 1)[0].decode()
                errors.append(f"{status_line} {payload[:80]!r}")
                if len(errors) > 20:
                    break
            else:
                done += 1
    finally:
        writer.close()
    return done


async def run_workload(
    t: Target,
    w: Workload,
    duration: float,
    connections: int,
    pgid: int | None = None,
    pg_pid: int | None = None,
    pg_url: str | None = None,
) -> dict[str, float]:
    """One run of `w` against `t`. With `pg_pid`: PostgreSQL CPU per request of the target's
    backends (`pg_us`) and of the cluster's other processes (`bg_us`: WAL writer, checkpointer,
    autovacuum...; the other target's idle backends too); with `pg_url` (a database of the same
    cluster): the cluster's WAL bytes per request (`wal_b`, pg_current_wal_lsn before and after)."""
    heads = Heads(t)
    # prepare bodies ahead of the timed window (generators are lazy: they make one body at a time)
    gens = [w.bodies(t, i) for i in range(connections)]
    latencies: list[float] = []
    errors: list[str] = []
    # warm-up
    warm_deadline = time.monotonic() + min(1.0, duration / 4)
    await asyncio.gather(
        *(_connection(t, g, warm_deadline, None, errors, heads, w.feedback) for g in gens)
    )
    errors.clear()
    admin = await asyncpg.connect(pg_url) if pg_url else None
    wal0 = await admin.fetchval(_WAL_LSN) if admin else 0
    cpu0 = cpu_seconds(pgid=pgid) if pgid else 0.0
    flt0 = minor_faults(pgid) if pgid else 0
    pg0 = cpu_seconds(parent=pg_pid, database=t.name) if pg_pid else 0.0
    all0 = cpu_seconds(parent=pg_pid) if pg_pid else 0.0
    client0 = time.process_time()
    start = time.monotonic()
    deadline = start + duration
    counts = await asyncio.gather(
        *(_connection(t, g, deadline, latencies, errors, heads, w.feedback) for g in gens)
    )
    elapsed = time.monotonic() - start
    client_cpu = time.process_time() - client0
    cpu1 = cpu_seconds(pgid=pgid) if pgid else 0.0
    flt1 = minor_faults(pgid) if pgid else 0
    pg1 = cpu_seconds(parent=pg_pid, database=t.name) if pg_pid else 0.0
    all1 = cpu_seconds(parent=pg_pid) if pg_pid else 0.0
    wal1 = await admin.fetchval(_WAL_LSN) if admin else 0
    if admin:
        await admin.close()
    ok = sum(counts)
    latencies.sort()
    return {
        "server_us": 1e6 * (cpu1 - cpu0) / ok if pgid and ok else 0.0,
        "pg_us": 1e6 * (pg1 - pg0) / ok if pg_pid and ok else 0.0,
        "bg_us": 1e6 * ((all1 - all0) - (pg1 - pg0)) / ok if pg_pid and ok else 0.0,
        "wal_b": float(wal1 - wal0) / ok if admin and ok else 0.0,
        "faults": (flt1 - flt0) / ok if pgid and ok else 0.0,
        "client_us": 1e6 * client_cpu / ok if ok else 0.0,
        "ok": ok,
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "rps": ok / elapsed,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else 0.0,
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else 0.0,
    }


_WAL_LSN = "SELECT pg_current_wal_lsn() - '0/0'"


def load1() -> float:
    return os.getloadavg()[0]


_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from the 3rd (state) on


def cpu_seconds(
    pgid: int | None = None, parent: int | None = None, database: str | None = None
) -> float:
    """User + system CPU of the live processes of a process group, or of the PostgreSQL backends
    (children of the postmaster `parent`) connected to `database`."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        st = _stat(pid)
        if st is None:
            continue
        # st[1] = ppid, st[2] = pgrp, st[11] = utime, st[12] = stime
        if pgid is not None and int(st[2]) == pgid:
            total += int(st[11]) + int(st[12])
        elif parent is not None and int(st[1]) == parent:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    title = f.read()  # "postgres: <user> <database> <host>(<port>) <state>"
            except OSError:
                continue
            if database is None or f" {database} ".encode() in title:
                total += int(st[11]) + int(st[12])
    return total / _TICK


def minor_faults(pgid: int) -> int:
    """Minor page faults of the live processes of a process group so far (fresh memory touched)."""
    total = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit() and (st := _stat(pid)) is not None and int(st[2]) == pgid:
            total += int(st[7])  # minflt
    return total


def main() -> int:
    global BLOCK_SIZE
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", action="append", required=True, help="name=url")
    ap.add_argument("--admin-token", required=True)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument(
        "--repeat", type=int, default=1, help="rounds per workload (the table shows medians)"
    )
    ap.add_argument(
        "--workloads",
        default=DEFAULT_WORKLOADS,
        help=f"comma-separated, among: {','.join(WORKLOADS)}",
    )
    ap.add_argument(
        "--cpu",
        action="append",
        default=[],
        help="name=PGID: report that process group's CPU/request",
    )
    ap.add_argument(
        "--pg-pid",
        type=int,
        help="postmaster pid: report the CPU/request of the backends of the target's database",
    )
    ap.add_argument(
        "--pg-url",
        help="a database of the servers' PostgreSQL cluster: report WAL bytes per request "
        "(and, with --pg-pid, the CPU of the cluster's background processes)",
    )
    ap.add_argument(
        "--block-size",
        type=int,
        default=BLOCK_SIZE,
        help=f"bytes per block of block_create and of the blocks block_read reads ({BLOCK_SIZE})",
    )
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()
    BLOCK_SIZE = args.block_size
    pgids = {k: int(v) for k, v in (spec.split("=", 1) for spec in args.cpu)}
    unknown = [n for n in args.workloads.split(",") if n not in WORKLOADS]
    if unknown:
        ap.error(f"unknown workloads {unknown}; known: {','.join(WORKLOADS)}")
    targets = [Target(*spec.split("=", 1)) for spec in args.target]
    for t in targets:
        setup(t, args.admin_token, args.connections)
    names = [t.name for t in targets]
    pair = len(names) == 2
    cpu_cols = bool(pgids) or bool(args.pg_pid)
    wal_cols = bool(args.pg_url)
    header = f"{'workload':<20}{'load':>6}" + "".join(
        f"{n + ' req/s':>16}{'p99 ms':>9}"
        + (f"{'cpu us':>8}{'pg us':>7}{'lg us':>7}" if cpu_cols else "")
        + (f"{'bg us':>7}{'wal B':>9}{'flt':>6}" if wal_cols else "")
        for n in names
    )
    if pair:
        header += f"{'ratio ' + names[1] + '/' + names[0]:>22}"
    print(
        f"load average before the runs: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"{args.connections} connections, {args.duration:g} s per run, {args.repeat} round(s), "
        f"blocks of {args.block_size} B",
        flush=True,
    )
    print(header, flush=True)
    results: dict[str, dict[str, object]] = {}
    for name in args.workloads.split(","):
        w = WORKLOADS[name]
        rounds: list[dict[str, dict[str, float]]] = []
        loads: list[float] = []
        for _ in range(args.repeat):
            per: dict[str, dict[str, float]] = {}
            for t in targets:  # one after the other: they share the machine's 2 cores
                if name in ("mixed", "vlob_poll_changes"):
                    refresh_checkpoint(t)
                loads.append(load1())
                res = asyncio.run(
                    run_workload(
                        t,
                        w,
                        args.duration,
                        args.connections,
                        pgids.get(t.name),
                        args.pg_pid,
                        args.pg_url,
                    )
                )
                per[t.name] = {**res, "load": loads[-1]}
            rounds.append(per)
        med = {
            n: {
                k: statistics.median(r[n][k] for r in rounds)
                for k in (
                    "rps",
                    "p50_ms",
                    "p99_ms",
                    "server_us",
                    "pg_us",
                    "client_us",
                    "bg_us",
                    "wal_b",
                    "faults",
                )
            }
            for n in names
        }
        ratios = [
            r[names[1]]["rps"] / r[names[0]]["rps"] for r in rounds if pair and r[names[0]]["rps"]
        ]
        results[name] = {
            "median": med,
            "rounds": rounds,
            "ratio": statistics.median(ratios) if ratios else None,
            "ratios": ratios,
        }
        line = f"{name:<20}{max(loads):>6.1f}"
        for n in names:
            line += f"{med[n]['rps']:>16.0f}{med[n]['p99_ms']:>9.1f}"
            if cpu_cols:
                # a backend that exits during the window takes its CPU time with it: no figure
                pg_us = f"{med[n]['pg_us']:.0f}" if med[n]["pg_us"] >= 0 else "n/a"
                line += f"{med[n]['server_us']:>8.0f}{pg_us:>7}{med[n]['client_us']:>7.0f}"
            if wal_cols:
                line += f"{med[n]['bg_us']:>7.0f}{med[n]['wal_b']:>9.0f}{med[n]['faults']:>6.0f}"
        if pair:
            line += f"{statistics.median(ratios) if ratios else float('nan'):>21.2f}x"
            if len(ratios) > 1:
                line += f"  ({min(ratios):.2f}-{max(ratios):.2f})"
        print(line, flush=True)
        for r in rounds:
            for n in names:
                if r[n]["errors"]:
                    print(
                        f"  ! {n}: {r[n]['errors']:.0f} errors, first: {r[n]['first_error']}",
                        flush=True,
                    )
    if pair:
        ratios = [r["ratio"] for r in results.values() if r["ratio"]]
        if ratios:
            print(
                f"geometric mean ratio {names[1]}/{names[0]}: "
                f"{statistics.geometric_mean(ratios):.2f}x "
                "(load column: highest 1-min load average seen before a run)"
            )
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(results, f, indent=2, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
