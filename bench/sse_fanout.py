"""The SSE fan-out in-process: what delivering one event to one stream costs the application.

    .venv/bin/python bench/sse_fanout.py [--streams 2000] [--events 50] [--rounds 3] [--src TREE]
        [--profile]

No server, no socket, no PostgreSQL: `--streams` event streams of asgi/sse.py (`_Stream` live on
one realm, each with its sender `_pump` running, on uvloop as in the server) get `--events` VLOB
events (512-byte blobs) the way the event bus hands them over (one `on_event` per stream and
event); each stream's `send` only counts what it is given. Prints the CPU time of this process
(time.process_time) per delivery, best of `--rounds`: the application's own share of a delivery
(bench/sse_scale.py measures the whole server, socket writes included). `--src TREE` imports
parsec_server from another source tree (`git archive <commit> src | tar -x -C TREE`), for
before/after figures; `--profile` prints the top of a cProfile of one round.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import uvloop

REPO = Path(__file__).resolve().parent.parent


async def one_round(sse: Any, types: Any, streams: int, events: int, prof: Any) -> float:
    realm = uuid.uuid4()
    backend = SimpleNamespace(config=SimpleNamespace(sse_keepalive=30))
    sent = [0]

    async def send(message: dict[str, Any]) -> None:
        sent[0] += message["body"].count(b"\nid:")

    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await never.wait()
        return {"type": "http.disconnect"}

    stop = asyncio.Event()
    live = []
    for _ in range(streams):
        client = SimpleNamespace(
            user_id=uuid.uuid4(), device_id=uuid.uuid4(), device=SimpleNamespace(profile="STANDARD")
        )
        s = sse._Stream(client)
        s.go_live({realm}, None, replay=False)
        live.append(s)
    pumps = [asyncio.ensure_future(sse._pump(backend, receive, send, s, stop)) for s in live]
    await asyncio.sleep(0.05)
    now = datetime.now(UTC)
    author = uuid.uuid4()
    evs = [
        types.vlob("org", realm, uuid.uuid4(), author, now, 1, os.urandom(512), now, now)
        for _ in range(events)
    ]
    if prof is not None:
        prof.enable()
    t0 = time.process_time()
    for ev in evs:
        for s in live:
            s.on_event(ev)
        for _ in range(3):  # the listener hands events over between turns of the loop
            await asyncio.sleep(0)
    while sent[0] < streams * events:  # noqa: ASYNC110  (turns of the loop until every sender is done)
        await asyncio.sleep(0)
    cpu = time.process_time() - t0
    if prof is not None:
        prof.disable()
    stop.set()
    await asyncio.gather(*pumps)
    return cpu / (streams * events)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--streams", type=int, default=2000)
    ap.add_argument("--events", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--src", help="import parsec_server from this tree's src/")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(args.src).absolute() / "src") if args.src else str(REPO / "src"))
    from parsec_server.asgi import sse
    from parsec_server.events import types

    print(f"parsec_server from {Path(sse.__file__).parent.parent}", flush=True)
    best = float("inf")
    for k in range(args.rounds):
        prof = cProfile.Profile() if args.profile and k == 0 else None
        per = uvloop.run(one_round(sse, types, args.streams, args.events, prof))
        best = min(best, per)
        print(f"round {k + 1}: {1e6 * per:.1f} us of CPU per delivery", flush=True)
        if prof is not None:
            pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    print(
        f"{args.streams} streams x {args.events} events: best {1e6 * best:.1f} us per delivery "
        f"(load average {' '.join(f'{x:.2f}' for x in os.getloadavg())})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
