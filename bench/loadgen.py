"""Side-by-side load test of parsec-server and the official Parsec server.

Runs in the compat venv (Python 3.12 + parsec-cloud 3.9.3, whose library builds and signs real requests).
For each server URL given, it bootstraps a fresh organization, prepares the request bodies of each workload
beforehand (so the client does no per-request crypto), then drives the server with N keep-alive HTTP/1.1
connections for a fixed duration and counts replies with HTTP 200 and `status: ok`.

    python bench/loadgen.py --target official=http://127.0.0.1:6770 --target ours=http://127.0.0.1:6771 \
        --admin-token s3cr3t --duration 5 --connections 16

The load is bounded: each workload runs `--duration` seconds per server and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "compat"))
import client as c  # noqa: E402
import parsec._parsec as p  # noqa: E402

AC = c.AC


@dataclass
class Target:
    name: str
    url: str
    host: str = ""
    port: int = 0
    org: c.Org | None = None
    realm_id: p.VlobID | None = None
    vlobs: list[p.VlobID] = field(default_factory=list)
    blocks: list[p.BlockID] = field(default_factory=list)


@dataclass
class Workload:
    name: str
    # gives an endless iterator of request bodies for one connection (index = connection number)
    bodies: Callable[[Target, int], Iterator[bytes]]


def _dump(req: object) -> bytes:
    return req.dump()  # type: ignore[attr-defined,no-any-return]


def wl_ping(t: Target, _i: int) -> Iterator[bytes]:
    body = _dump(AC.ping.Req(ping="bench"))
    while True:
        yield body


def wl_organization_info(t: Target, _i: int) -> Iterator[bytes]:
    body = _dump(AC.organization_info.Req())
    while True:
        yield body


def wl_vlob_create(t: Target, _i: int) -> Iterator[bytes]:
    blob = os.urandom(512)
    while True:
        yield _dump(AC.vlob_create.Req(realm_id=t.realm_id, vlob_id=p.VlobID.new(), key_index=1,
                                       timestamp=p.DateTime.now(), blob=blob))


def wl_vlob_update(t: Target, i: int) -> Iterator[bytes]:
    vlob_id = t.vlobs[i]
    blob = os.urandom(512)
    version = 1
    while True:
        version += 1
        yield _dump(AC.vlob_update.Req(realm_id=t.realm_id, vlob_id=vlob_id, key_index=1,
                                       timestamp=p.DateTime.now(), version=version, blob=blob))


def wl_vlob_read_batch(t: Target, _i: int) -> Iterator[bytes]:
    body = _dump(AC.vlob_read_batch.Req(realm_id=t.realm_id, vlobs=t.vlobs[:10], at=None))
    while True:
        yield body


def wl_block_create(t: Target, _i: int) -> Iterator[bytes]:
    data = os.urandom(4096)
    while True:
        yield _dump(AC.block_create.Req(block_id=p.BlockID.new(), realm_id=t.realm_id, key_index=1, block=data))


def wl_block_read(t: Target, i: int) -> Iterator[bytes]:
    body = _dump(AC.block_read.Req(block_id=t.blocks[i % len(t.blocks)], realm_id=t.realm_id))
    while True:
        yield body


def wl_certificate_get(t: Target, _i: int) -> Iterator[bytes]:
    body = _dump(AC.certificate_get.Req(common_after=None, sequester_after=None, shamir_recovery_after=None,
                                        realm_after={}))
    while True:
        yield body


WORKLOADS = {w.name: w for w in [
    Workload("ping", wl_ping),
    Workload("organization_info", wl_organization_info),
    Workload("certificate_get", wl_certificate_get),
    Workload("vlob_create", wl_vlob_create),
    Workload("vlob_update", wl_vlob_update),
    Workload("vlob_read_batch", wl_vlob_read_batch),
    Workload("block_create", wl_block_create),
    Workload("block_read", wl_block_read),
]}


def setup(t: Target, admin_token: str, connections: int) -> None:
    parts = urlsplit(t.url)
    t.host, t.port = parts.hostname or "127.0.0.1", parts.port or 80
    http = httpx.Client(base_url=t.url, timeout=30)
    admin = c.AdminClient(http, admin_token)
    t.org = c.bootstrap_org(http, admin)
    alice = t.org.alice
    t.realm_id = alice.new_realm()
    for _ in range(max(connections, 10)):
        vid = p.VlobID.new()
        rep = alice.send(AC.vlob_create.Req(realm_id=t.realm_id, vlob_id=vid, key_index=1,
                                            timestamp=p.DateTime.now(), blob=b"x" * 512))
        assert isinstance(rep, AC.vlob_create.RepOk), rep
        t.vlobs.append(vid)
    for _ in range(10):
        bid = p.BlockID.new()
        rep = alice.send(AC.block_create.Req(block_id=bid, realm_id=t.realm_id, key_index=1, block=b"y" * 4096))
        assert isinstance(rep, AC.block_create.RepOk), rep
        t.blocks.append(bid)


def _request_head(t: Target, token: str, length: int) -> bytes:
    assert t.org is not None
    return (
        f"POST /authenticated/{t.org.organization_id} HTTP/1.1\r\nHost: {t.host}:{t.port}\r\n"
        f"Api-Version: 5.5\r\nContent-Type: application/msgpack\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


async def _connection(t: Target, bodies: Iterator[bytes], deadline: float, latencies: list[float],
                      errors: list[str], token_box: list[str]) -> int:
    reader, writer = await asyncio.open_connection(t.host, t.port)
    done = 0
    try:
        while time.monotonic() < deadline:
            body = next(bodies)
            start = time.perf_counter()
            writer.write(_request_head(t, token_box[0], len(body)) + body)
            status_line = await reader.readline()
            length = 0
            chunked = False
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                k, _, v = line.decode("latin-1").partition(":")
                if k.lower() == "content-length":
                    length = int(v)
                elif k.lower() == "transfer-encoding" and "chunked" in v:
                    chunked = True
            if chunked:  # not expected for RPC replies
                raise RuntimeError("chunked reply")
            payload = await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if not status_line.startswith(b"HTTP/1.1 200") or b"\xa6status\xa2ok" not in payload:
                errors.append(f"{status_line.decode().strip()} {payload[:80]!r}")
                if len(errors) > 20:
                    break
            else:
                done += 1
    finally:
        writer.close()
    return done


async def run_workload(t: Target, w: Workload, duration: float, connections: int) -> dict[str, float]:
    assert t.org is not None
    alice = t.org.alice
    token_box = [alice.token()]
    # prepare bodies ahead of the timed window (generators are lazy: prime a few per connection)
    gens = [w.bodies(t, i) for i in range(connections)]
    latencies: list[float] = []
    errors: list[str] = []
    # warm-up
    warm_deadline = time.monotonic() + min(1.0, duration / 4)
    await asyncio.gather(*(_connection(t, g, warm_deadline, [], errors, token_box) for g in gens))
    errors.clear()
    start = time.monotonic()
    deadline = start + duration
    counts = await asyncio.gather(*(_connection(t, g, deadline, latencies, errors, token_box) for g in gens))
    elapsed = time.monotonic() - start
    ok = sum(counts)
    latencies.sort()
    return {
        "ok": ok,
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "rps": ok / elapsed,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else 0.0,
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else 0.0,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", action="append", required=True, help="name=url")
    ap.add_argument("--admin-token", required=True)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()
    targets = [Target(*spec.split("=", 1)) for spec in args.target]
    for t in targets:
        setup(t, args.admin_token, args.connections)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name in args.workloads.split(","):
        w = WORKLOADS[name]
        results[name] = {}
        for t in targets:  # one after the other: they share the machine's 2 cores
            results[name][t.name] = asyncio.run(run_workload(t, w, args.duration, args.connections))
    names = [t.name for t in targets]
    header = f"{'workload':<18}" + "".join(f"{n + ' req/s':>16}{'p99 ms':>9}" for n in names)
    if len(names) == 2:
        header += f"{'ratio ' + names[1] + '/' + names[0]:>22}"
    print(header)
    for wname, per in results.items():
        line = f"{wname:<18}"
        for n in names:
            r = per[n]
            line += f"{r['rps']:>16.0f}{r['p99_ms']:>9.1f}"
        if len(names) == 2:
            base = per[names[0]]["rps"]
            line += f"{(per[names[1]]['rps'] / base if base else float('nan')):>21.2f}x"
        print(line)
        for n in names:
            if per[n]["errors"]:
                print(f"  ! {n}: {per[n]['errors']} errors, first: {per[n]['first_error']}")
    if len(names) == 2:
        ratios = [per[names[1]]["rps"] / per[names[0]]["rps"] for per in results.values() if per[names[0]]["rps"]]
        if ratios:
            print(f"geometric mean ratio {names[1]}/{names[0]}: {statistics.geometric_mean(ratios):.2f}x")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
