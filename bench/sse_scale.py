"""Event streams at scale (issue 17 point 1): thousands of SSE streams open while vlobs are written.

    .venv-compat/bin/python bench/sse_scale.py [--servers ours,official] [--streams 500,1000,2000]
        [--rates 5,10,20] [--seconds 5] [--writers 2] [--devices 4] [--keepalive 5] [--idle 10]
        [--blob-size 512] [--src OTHER_TREE] [--json out.json]

For each server (ours: `.venv/bin/parsec-server run`; the official one: parsec-cloud 3.9.3's
`.venv-compat/bin/parsec run`), one after the other, ONE server process on a throwaway PostgreSQL
cluster (fsync off; one database per server), logging at WARNING, `--sse-keepalive` set to
`--keepalive` for both. Set-up with the official client library (bench/loadgen.py `setup`: an
organization, alice, one realm, vlobs), then `--devices` more devices of alice: the streams are
theirs, round robin (alice's own device writes; a VLOB event goes to every stream of the realm's
members except the writing device's, so each stream gets every write and does the same work on the
server whichever device it belongs to: the device only changes the authentication at opening).

For each number of streams in `--streams` (cumulative: the streams of the previous step stay open):
1. opens the streams (GET /authenticated/<org>/events, `--open-concurrency` at a time) with a lean
   client: one asyncio Protocol per stream that only stamps and stores what it reads (the HTTP
   chunks are decoded and the events parsed after each phase, outside the measured windows);
   prints how long opening took, the server's CPU per stream opened, its RSS (VmRSS of its process
   group) before and after, and the RSS per stream;
2. idle phase (`--idle` seconds, all streams open, nothing written): the server's and PostgreSQL's
   CPU (% of one core) and the keep-alives received per stream;
3. for each rate in `--rates` (writes/s): alice's vlob_update requests at that rate for `--seconds`
   seconds from `--writers` keep-alive connections (one vlob each), then up to `--drain` seconds
   for the events to arrive. Per phase: writes, deliveries received / expected (every stream
   should get every write), streams ended by the server, streams told `missed_events`, events
   silently lost (missing on a stream that was neither ended nor told missed_events: must be 0),
   delivery latency p50/p99/max from the moment the write request was sent and p50/p99 from the
   moment its reply was read (negative: the event came before the reply), the server's CPU per
   write and per delivered event (and the kernel's share of it), PostgreSQL's CPU per write (the
   backends of the server's database, its LISTEN connection included), the server's RSS after the
   phase, and this load generator's own CPU (% of one core: near 100 %, the client bounds the
   figures).
A final table puts both servers side by side.

The fd limit: 2 sockets per stream on this machine (client and server ends), the soft limit is
raised here for the load generator (resource.setrlimit); our server raises its own soft limit up to
--max-connections + 128 (default 4096 connections per process), the official one runs with the
limit it inherits. Bounded: about (idle + rates x (seconds + drain)) per streams step and server,
~3-4 min with the defaults; everything started is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
import loadgen as lg  # noqa: E402  (also puts tests/compat on sys.path: the client library)
from loadgen import AC, Heads, Target, c  # noqa: E402
from scaleout import stop, wait_http  # noqa: E402

sys.path.insert(0, str(REPO / "src"))
from parsec_server.embedded_pg import EmbeddedPostgres, free_tcp_port  # noqa: E402  (stdlib only)

TOKEN = "bench-admin-token"


# --- server processes ------------------------------------------------------------------------------


def start_server(
    name: str, pg: EmbeddedPostgres, work: Path, keepalive: int, src: str | None
) -> tuple[subprocess.Popen[bytes], int]:
    subprocess.run(["psql", "-q", "-d", pg.url, "-c", f"CREATE DATABASE {name}"], check=True)
    url, port = pg.url_for(name), free_tcp_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARSEC_")}
    common = ["--administration-token", TOKEN, "--host", "127.0.0.1", "--port", str(port)]
    common += ["--sse-keepalive", str(keepalive)]
    if name == "official":
        exe = str(REPO / ".venv-compat" / "bin" / "parsec")
        subprocess.run([exe, "migrate", "--db", url], check=True, capture_output=True, env=env)
        argv = [exe, "run", "--db", url, "--blockstore", "POSTGRESQL", *common]
        argv += ["--fake-account-password-algorithm-seed", "F4k3", "--email-host", "MOCKED"]
        argv += ["--server-addr", f"parsec3://127.0.0.1:{port}?no_ssl=true"]
        argv += ["--log-level", "WARNING"]
    else:
        if src:
            env["PYTHONPATH"] = str(Path(src).absolute() / "src")
        exe = str(REPO / ".venv" / "bin" / "parsec-server")
        subprocess.run(
            [exe, "migrate", "--db", url, "--no-backup"], check=True, capture_output=True, env=env
        )
        argv = [exe, "run", "--db", url, *common, "--log-level", "warning"]
    proc = subprocess.Popen(
        argv,
        stdout=open(work / f"{name}.log", "wb"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    wait_http(f"http://127.0.0.1:{port}/", proc)
    return proc, port


def rss_kib(pgid: int) -> int:
    """VmRSS of the live processes of a process group, KiB."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.getpgid(int(pid)) != pgid:
                continue
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total


# --- the lean stream client ------------------------------------------------------------------------


class StreamProto(asyncio.Protocol):
    """One event stream: writes its GET, then only stamps and keeps what arrives (parsed later)."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.reads: list[tuple[float, bytes]] = []
        self.head = b""  # until the first event has arrived
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.ended_at: float | None = None  # the server closed it
        self.ids = 0  # `id:` lines seen (events), a cheap live count for the drain
        self.missed = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.reads.append((time.perf_counter(), data))
        self.ids += data.count(b"\nid:")
        if b"missed_events" in data:
            self.missed += 1
        if not self.opened.done():
            self.head += data
            if not self.head.startswith(b"HTTP/1.1 200"):
                if b"\r\n" in self.head:
                    self.opened.set_exception(RuntimeError(self.head[:200].decode("latin-1")))
                return
            end = self.head.find(b"\r\n\r\n")
            if end >= 0 and b"\n\n" in self.head[end + 4 :]:
                self.opened.set_result(None)
                self.head = b""

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended_at = time.perf_counter()
        if not self.opened.done():
            self.opened.set_exception(RuntimeError(f"closed before the first event: {exc}"))


class SseParser:
    """Incremental HTTP/1.1 response (chunked or not) + SSE parser: `feed` returns the events whose
    last byte arrived in that read, as (arrival time, {field: value})."""

    def __init__(self) -> None:
        self.buf = b""
        self.headers_done = False
        self.chunked = False
        self.chunk_left = -1  # -1: a size line is next; -2: the CRLF after a chunk
        self.body = b""

    def feed(self, t: float, data: bytes) -> list[tuple[float, dict[str, str]]]:
        self.buf += data
        if not self.headers_done:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return []
            head = self.buf[:end].lower()
            self.chunked = b"transfer-encoding: chunked" in head
            self.buf = self.buf[end + 4 :]
            self.headers_done = True
        if not self.chunked:
            self.body += self.buf
            self.buf = b""
        else:
            parts = []
            buf, pos = self.buf, 0
            while True:
                if self.chunk_left == -1:
                    eol = buf.find(b"\r\n", pos)
                    if eol < 0:
                        break
                    size = int(buf[pos:eol].split(b";")[0], 16)
                    pos = eol + 2
                    self.chunk_left = size if size else -3  # -3: the last chunk
                    if size == 0:
                        break
                elif self.chunk_left == -2:
                    if len(buf) - pos < 2:
                        break
                    pos += 2
                    self.chunk_left = -1
                elif self.chunk_left == -3:
                    break
                else:
                    n = min(self.chunk_left, len(buf) - pos)
                    if n == 0:
                        break
                    parts.append(buf[pos : pos + n])
                    pos += n
                    self.chunk_left -= n
                    if self.chunk_left == 0:
                        self.chunk_left = -2
            self.buf = buf[pos:]
            self.body += b"".join(parts)
        events = []
        while True:
            end = self.body.find(b"\n\n")
            if end < 0:
                break
            block, self.body = self.body[:end], self.body[end + 2 :]
            fields: dict[str, str] = {}
            for line in block.decode().split("\n"):
                name, _, value = line.partition(":")
                fields[name] = value
            events.append((t, fields))
        return events


@dataclasses.dataclass
class Stream:
    proto: StreamProto
    parser: SseParser = dataclasses.field(default_factory=SseParser)
    got: dict[tuple[str, int], float] = dataclasses.field(default_factory=dict)
    missed: int = 0
    keepalives: int = 0
    others: int = 0

    def parse(self, vlob_of: dict[str, tuple[str, int] | None]) -> None:
        """Parse what arrived since the last call (outside the measured windows)."""
        reads, self.proto.reads = self.proto.reads, []
        for t, data in reads:
            for at, ev in self.parser.feed(t, data):
                kind = ev.get("event")
                if kind == "keepalive":
                    self.keepalives += 1
                elif kind == "missed_events":
                    self.missed += 1
                elif ev.get("data"):
                    raw = ev["data"]
                    key = vlob_of.get(raw, ())
                    if key == ():
                        rep = AC.events_listen.Rep.load(base64.b64decode(raw))
                        unit = getattr(rep, "unit", None)
                        key = (
                            (unit.vlob_id.hex, unit.version)
                            if isinstance(unit, AC.events_listen.APIEventVlob)
                            else None
                        )
                        vlob_of[raw] = key
                    if key is None:
                        self.others += 1
                    else:
                        self.got.setdefault(key, at)  # type: ignore[arg-type]


def stream_request(t: Target, device: c.AuthenticatedClient, token: str) -> bytes:
    assert t.org is not None
    return (
        f"GET /authenticated/{t.org.organization_id}/events HTTP/1.1\r\n"
        f"Host: {t.host}:{t.port}\r\nApi-Version: 5.5\r\nAccept: text/event-stream\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    ).encode()


async def open_streams(
    t: Target, devices: list[c.AuthenticatedClient], count: int, first: int, concurrency: int
) -> list[Stream]:
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(concurrency)
    tokens: dict[int, tuple[int, str]] = {}

    def request(k: int) -> bytes:
        d = devices[k % len(devices)]
        second = int(time.time())
        cached = tokens.get(k % len(devices))
        if cached is None or cached[0] != second:
            cached = tokens[k % len(devices)] = (second, d.token(second))
        return stream_request(t, d, cached[1])

    async def one(k: int) -> Stream:
        async with sem:
            _, proto = await loop.create_connection(lambda: StreamProto(request(k)), t.host, t.port)
            await asyncio.wait_for(proto.opened, 60)
            return Stream(proto)

    return list(await asyncio.gather(*(one(first + k) for k in range(count))))


# --- writes at a bounded rate ----------------------------------------------------------------------


async def write_at_rate(
    t: Target, rate: float, seconds: float, writers: int, blob: bytes
) -> tuple[dict[tuple[str, int], float], dict[tuple[str, int], float], list[str]]:
    sent: dict[tuple[str, int], float] = {}
    replied: dict[tuple[str, int], float] = {}
    errors: list[str] = []
    heads = Heads(t)
    start = time.monotonic() + 0.05
    deadline = start + seconds
    perf = time.perf_counter

    async def writer(j: int) -> None:
        vlob_id = t.vlobs[j]
        reader, w = await asyncio.open_connection(t.host, t.port)
        k = 0
        try:
            while True:
                due = start + (k * writers + j) / rate
                if due >= deadline:
                    break
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                body = lg._vlob_update(t, vlob_id, blob)
                key = (vlob_id.hex, t.versions[vlob_id])
                sent[key] = perf()
                w.write(heads.get(len(body)) + body)
                head = await reader.readuntil(b"\r\n\r\n")
                cl = head.lower().find(b"\r\ncontent-length:")
                length = int(head[cl + 17 : head.index(b"\r\n", cl + 2)])
                payload = await reader.readexactly(length)
                replied[key] = perf()
                if not head.startswith(b"HTTP/1.1 200") or b"\xa6status\xa2ok" not in payload[:16]:
                    status_line = head.split(b"\r\n", 1)[0].decode()
                    errors.append(f"{status_line} {payload[:80]!r}")
                    del sent[key]
                k += 1
        finally:
            w.close()

    await asyncio.gather(*(writer(j) for j in range(writers)))
    return sent, replied, errors


# --- measures --------------------------------------------------------------------------------------


class Cpu:
    """CPU seconds of the server's process group, of its database's PostgreSQL backends, of us."""

    def __init__(self, pgid: int, pg_pid: int | None, database: str) -> None:
        self.pgid, self.pg_pid, self.database = pgid, pg_pid, database

    def read(self) -> tuple[float, float, float, float, float]:
        return (
            lg.cpu_seconds(pgid=self.pgid),
            lg.cpu_seconds(parent=self.pg_pid, database=self.database) if self.pg_pid else 0.0,
            time.process_time(),
            time.monotonic(),
            self.system_seconds(),
        )

    def system_seconds(self) -> float:
        """The kernel's share (stime) of the server's CPU: socket writes, TCP on loopback."""
        total = 0
        for pid in os.listdir("/proc"):
            st = lg._stat(pid) if pid.isdigit() else None
            if st is not None and int(st[2]) == self.pgid:
                total += int(st[12])
        return total / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def diff(a: tuple[float, ...], b: tuple[float, ...]) -> dict[str, float]:
        return {
            "server": b[0] - a[0],
            "pg": b[1] - a[1],
            "client": b[2] - a[2],
            "wall": b[3] - a[3],
            "server_sys": b[4] - a[4],
        }


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


async def run_server(
    name: str, t: Target, pgid: int, cpu: Cpu, args: argparse.Namespace
) -> dict[str, Any]:
    assert t.org is not None
    devices = [t.org.alice.create_device(f"streams{k}") for k in range(args.devices)]
    streams: list[Stream] = []
    vlob_of: dict[str, tuple[str, int] | None] = {}
    blob = os.urandom(args.blob_size)
    out: dict[str, Any] = {}
    try:
        for count in args.streams:
            step: dict[str, Any] = {}
            out[str(count)] = step
            new = count - len(streams)
            rss0 = rss_kib(pgid)
            c0 = cpu.read()
            streams += await open_streams(t, devices, new, len(streams), args.open_concurrency)
            c1 = cpu.read()
            await asyncio.sleep(0.5)
            rss1 = rss_kib(pgid)
            d = Cpu.diff(c0, c1)
            step["open"] = {
                "opened": new,
                "seconds": d["wall"],
                "server_us_per_stream": 1e6 * d["server"] / new,
                "pg_us_per_stream": 1e6 * d["pg"] / new,
                "rss_before_mib": rss0 / 1024,
                "rss_after_mib": rss1 / 1024,
                "rss_per_stream_kib": (rss1 - rss0) / new,
            }
            o = step["open"]
            print(
                f"{name} {count} streams: opened {new} in {o['seconds']:.2f} s "
                f"(server {o['server_us_per_stream']:.0f} us/stream, pg {o['pg_us_per_stream']:.0f}); "
                f"RSS {o['rss_before_mib']:.1f} -> {o['rss_after_mib']:.1f} MiB "
                f"({o['rss_per_stream_kib']:.1f} KiB/stream)",
                flush=True,
            )
            for s in streams:
                s.parse(vlob_of)
            ka0 = sum(s.keepalives for s in streams)
            c0 = cpu.read()
            await asyncio.sleep(args.idle)
            d = Cpu.diff(c0, cpu.read())
            for s in streams:
                s.parse(vlob_of)
            ka = sum(s.keepalives for s in streams) - ka0
            step["idle"] = {
                "seconds": d["wall"],
                "server_pct": 100 * d["server"] / d["wall"],
                "pg_pct": 100 * d["pg"] / d["wall"],
                "keepalives_per_stream": ka / len(streams),
                "server_us_per_keepalive": 1e6 * d["server"] / ka if ka else float("nan"),
                "rss_mib": rss_kib(pgid) / 1024,
            }
            i = step["idle"]
            print(
                f"{name} {count} streams idle {i['seconds']:.0f} s: server {i['server_pct']:.1f} % "
                f"of a core, pg {i['pg_pct']:.1f} %, {i['keepalives_per_stream']:.1f} keepalives "
                f"per stream ({i['server_us_per_keepalive']:.0f} us each)",
                flush=True,
            )
            for rate in args.rates:
                step[f"rate{rate:g}"] = await phase(
                    name, t, streams, vlob_of, rate, blob, cpu, pgid, args
                )
    finally:
        for s in streams:
            if s.proto.transport is not None:
                s.proto.transport.close()
    return out


async def phase(
    name: str,
    t: Target,
    streams: list[Stream],
    vlob_of: dict[str, tuple[str, int] | None],
    rate: float,
    blob: bytes,
    cpu: Cpu,
    pgid: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    live = [s for s in streams if s.proto.ended_at is None]
    ids0 = [s.proto.ids for s in live]
    c0 = cpu.read()
    sent, replied, errors = await write_at_rate(t, rate, args.seconds, args.writers, blob)
    c_writes = cpu.read()
    writes = len(sent)
    drain = time.monotonic() + args.drain
    while time.monotonic() < drain and any(  # noqa: ASYNC110
        s.proto.ids - i0 < writes and not s.proto.missed and s.proto.ended_at is None
        for s, i0 in zip(live, ids0, strict=True)
    ):
        await asyncio.sleep(0.02)
    c1 = cpu.read()
    rss = rss_kib(pgid)
    for s in live:
        s.parse(vlob_of)
    lat_sent: list[float] = []
    lat_reply: list[float] = []
    delivered = ended = told = lost = 0
    for s in live:
        mine = [(k, at) for k, at in s.got.items() if k in sent]
        delivered += len(mine)
        for k, at in mine:
            lat_sent.append(1000 * (at - sent[k]))
            lat_reply.append(1000 * (at - replied[k]))
        missing = writes - len(mine)
        if s.proto.ended_at is not None:
            ended += 1
        elif s.missed:
            told += 1
        else:
            lost += missing
        for k in list(s.got):  # this phase's events are accounted for
            if k in sent:
                del s.got[k]
    lat_sent.sort()
    lat_reply.sort()
    expected = writes * len(live)
    dw = Cpu.diff(c0, c_writes)
    d = Cpu.diff(c0, c1)
    res = {
        "rate": rate,
        "streams": len(live),
        "writes": writes,
        "write_errors": len(errors),
        "first_error": errors[0] if errors else "",
        "writes_per_s": writes / dw["wall"],
        "delivered": delivered,
        "expected": expected,
        "ended_by_server": ended,
        "told_missed_events": told,
        "silently_lost": lost,
        "lat_p50_ms": pct(lat_sent, 0.5),
        "lat_p99_ms": pct(lat_sent, 0.99),
        "lat_max_ms": lat_sent[-1] if lat_sent else float("nan"),
        "lat_reply_p50_ms": pct(lat_reply, 0.5),
        "lat_reply_p99_ms": pct(lat_reply, 0.99),
        "server_us_per_write": 1e6 * d["server"] / writes if writes else float("nan"),
        "server_us_per_delivery": 1e6 * d["server"] / delivered if delivered else float("nan"),
        "pg_us_per_write": 1e6 * d["pg"] / writes if writes else float("nan"),
        "server_pct": 100 * d["server"] / d["wall"],
        "server_sys_share": 100 * d["server_sys"] / d["server"] if d["server"] else float("nan"),
        "client_pct": 100 * d["client"] / d["wall"],
        "seconds": d["wall"],
        "rss_mib": rss / 1024,
    }
    print(
        f"{name} {len(live)} streams {rate:g} w/s: {writes} writes ({res['writes_per_s']:.1f}/s), "
        f"delivered {delivered}/{expected}, ended {ended}, missed_events {told}, lost {lost}; "
        f"latency p50 {res['lat_p50_ms']:.1f} p99 {res['lat_p99_ms']:.1f} max "
        f"{res['lat_max_ms']:.0f} ms (from reply p50 {res['lat_reply_p50_ms']:.1f} "
        f"p99 {res['lat_reply_p99_ms']:.1f}); server {res['server_us_per_write']:.0f} us/write "
        f"({res['server_us_per_delivery']:.1f}/delivery, {res['server_pct']:.0f} % of a core over "
        f"{d['wall']:.1f} s, {res['server_sys_share']:.0f} % of it in the kernel), "
        f"pg {res['pg_us_per_write']:.0f} us/write; RSS {res['rss_mib']:.1f} MiB; "
        f"load generator {res['client_pct']:.0f} % of a core"
        + (f"  ! {len(errors)} write errors: {errors[0]}" if errors else ""),
        flush=True,
    )
    return res


# --- main ------------------------------------------------------------------------------------------


def raise_fd_limit(streams: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = streams + 256
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    print(f"open file limit (soft) of the load generator and the servers it starts: {soft}")
    if soft < need:
        raise SystemExit(f"{streams} streams need {need} open files; the hard limit is {hard}")


def summary(results: dict[str, Any]) -> None:
    names = list(results)
    print("\nside by side (per streams x rate):")
    head = f"{'streams':>7} {'w/s':>5}"
    for n in names:
        head += f" | {n:>9} deliv  p50/p99/max ms  srv us/w  us/ev  pg us/w  RSS MiB  lg %"
    print(head)
    keys = [(s, r) for s, step in results[names[0]].items() for r in step if r.startswith("rate")]
    for s, r in keys:
        line = f"{s:>7} {r[4:]:>5}"
        for n in names:
            x = results[n].get(s, {}).get(r)
            if x is None:
                line += " | " + "n/a".rjust(70)
                continue
            line += (
                f" | {x['delivered']:>8}/{x['expected']:<7}"
                f"{x['lat_p50_ms']:6.1f}/{x['lat_p99_ms']:6.1f}/{x['lat_max_ms']:5.0f}"
                f"{x['server_us_per_write']:>9.0f}{x['server_us_per_delivery']:>7.1f}"
                f"{x['pg_us_per_write']:>8.0f}{x['rss_mib']:>9.1f}{x['client_pct']:>6.0f}"
            )
        print(line)
    print(
        f"\n{'streams':>7} | "
        + " | ".join(f"{n}: open s, KiB RSS/stream, idle % core" for n in names)
    )
    for s in results[names[0]]:
        parts = []
        for n in names:
            x = results[n].get(s)
            if x is None:
                parts.append("n/a")
                continue
            parts.append(
                f"{x['open']['seconds']:.2f} s, {x['open']['rss_per_stream_kib']:.1f} KiB, "
                f"{x['idle']['server_pct']:.1f} %"
            )
        print(f"{s:>7} | " + " | ".join(parts))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--servers", default="ours,official", help="ours,official | ours | official")
    ap.add_argument("--streams", default="500,1000,2000", help="cumulative numbers of streams")
    ap.add_argument("--rates", default="5,10,20", help="writes per second, one phase each")
    ap.add_argument("--seconds", type=float, default=5.0, help="seconds of writes per phase")
    ap.add_argument("--drain", type=float, default=10.0, help="seconds at most for the events")
    ap.add_argument("--writers", type=int, default=2, help="writing connections (one vlob each)")
    ap.add_argument("--devices", type=int, default=4, help="devices of alice the streams use")
    ap.add_argument("--keepalive", type=int, default=5, help="--sse-keepalive of both servers")
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of the idle phase")
    ap.add_argument("--blob-size", type=int, default=512, help="bytes of each written blob")
    ap.add_argument("--open-concurrency", type=int, default=50, help="streams opening at once")
    ap.add_argument("--src", help="run our server from another source tree (its src/)")
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()
    args.streams = [int(x) for x in args.streams.split(",")]
    args.rates = [float(x) for x in args.rates.split(",")]
    if args.streams != sorted(args.streams):
        ap.error("--streams must grow (the streams of a step stay open for the next)")
    raise_fd_limit(max(args.streams) + args.writers)
    print(
        f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
        f"({os.cpu_count()} CPUs)",
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix="parsec-sse-", dir="/tmp"))
    os.chmod(work, 0o755)
    pg = EmbeddedPostgres(
        work / "pg", tcp_port=free_tcp_port(), database="postgres", fast_unsafe=True
    )
    results: dict[str, Any] = {}
    try:
        pg.start()
        for name in args.servers.split(","):
            proc, port = start_server(name, pg, work, args.keepalive, args.src)
            try:
                t = Target(name, f"http://127.0.0.1:{port}")
                lg.setup(t, TOKEN, args.writers)
                cpu = Cpu(proc.pid, pg.pid, name)
                results[name] = asyncio.run(run_server(name, t, proc.pid, cpu, args))
            finally:
                stop(proc)
            troubles = [
                x
                for step in results.get(name, {}).values()
                for x in step.values()
                if "rate" in x and (x["ended_by_server"] or x["write_errors"])
            ]
            if troubles:  # what the server said when it ended streams or refused writes
                log = (work / f"{name}.log").read_text(errors="replace").splitlines()
                print(f"--- {name}: last lines of its log:\n" + "\n".join(log[-20:]), flush=True)
            print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        summary(results)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(results, indent=2, default=str))
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        return 0
    except (SystemExit, Exception):
        for log in sorted(work.glob("*.log")):
            print(f"--- last lines of {log.name}:")
            print("\n".join(log.read_text(errors="replace").splitlines()[-15:]))
        raise
    finally:
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
