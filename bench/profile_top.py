"""Summarise a py-spy raw profile (collapsed stacks: bench/run.py --profile).

    python bench/profile_top.py profile.txt [--top 40] [--filter parsec_server] [--idle]

Prints the functions with the most samples: self (the function itself was running) and total (it
was on the stack). Idle samples (the event loop waiting) are left out unless --idle. Caution: time
spent in C code (asyncpg's protocol, uvloop, system calls) shows as the Python frame that called it
(docs/dev/performance.md); bench/inproc.py with --profile gives a clearer picture of our own code.
"""

from __future__ import annotations

import argparse
import collections
import re

_IDLE = re.compile(
    r"\b(select|poll|epoll_wait|_run_once \(uvloop|run_forever \(uvloop)|\(selectors\.py"
)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--filter", default="", help="only functions whose frame text contains this")
    ap.add_argument(
        "--idle", action="store_true", help="keep samples whose leaf is the event loop waiting"
    )
    args = ap.parse_args()
    self_n: collections.Counter[str] = collections.Counter()
    total_n: collections.Counter[str] = collections.Counter()
    busy = idle = 0
    with open(args.path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            n = int(count)
            frames = stack.split(";")
            leaf = frames[-1]
            if not args.idle and (_IDLE.search(leaf) or leaf.startswith("process ")):
                idle += n
                continue
            busy += n
            self_n[leaf] += n
            for fr in set(frames):
                total_n[fr] += n
    print(f"busy samples: {busy}, idle samples left out: {idle}")
    for title, counter in (("self", self_n), ("total", total_n)):
        print(f"\n--- {title} ---")
        shown = 0
        for fr, n in counter.most_common():
            if args.filter and args.filter not in fr:
                continue
            print(f"{100 * n / max(busy, 1):6.1f}%  {fr}")
            shown += 1
            if shown >= args.top:
                break
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
