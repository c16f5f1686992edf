"""Benchmark parsec-server against the official Parsec server, side by side, in one run.

    .venv-compat/bin/python bench/run.py [--duration 5] [--connections 16] [--repeat 3] \
        [--workloads a,b] [--block-size 524288] [--json out.json]
    (or simply: bench/run.sh)

Starts one throwaway PostgreSQL cluster, one database per server, the official server (parsec-cloud
3.9.3 from the compat venv) and ours (.venv/bin/parsec-server), each as ONE process with logging at
WARNING, then runs bench/loadgen.py against both, workload by workload, and prints req/s, p99, CPU
per request (the servers, their PostgreSQL backends, the load generator, PostgreSQL's background
processes), WAL bytes per request and the ratio ours/official. Everything is stopped at the end.
The machine has 2 cores shared by the servers, PostgreSQL and the load generator: compare ratios,
not absolute numbers, and look at the load averages printed (other jobs on the machine make a run
noisy). `--block-size 524288` runs block_create / block_read with 512 KiB blocks; `--pg-set
wal_buffers=64MB` runs with that PostgreSQL setting (both servers share the cluster).

Other options: `--targets ours` (one server only); `--ours-arg=--log-level=info` (extra arguments
of `parsec-server run`, repeatable); `--ours-server granian|uvicorn` (our app under that server's
own command line, to compare servers); `--ours-src DIR` (our server from another source tree, for
before/after figures); `--profile out.txt` (our server under `py-spy record --format raw`, if py-spy
is installed in .venv; summarise with bench/profile_top.py). See docs/dev/performance.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
from parsec_server.embedded_pg import EmbeddedPostgres, free_tcp_port  # noqa: E402  (stdlib only)

TOKEN = "bench-admin-token"


def wait_up(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server on port {port} exited with {proc.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"server on port {port} did not start")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", default="5")
    ap.add_argument("--connections", default="16")
    ap.add_argument("--repeat", default="1", help="rounds per workload; the table shows medians")
    ap.add_argument("--workloads", help="comma-separated (default: see bench/loadgen.py)")
    ap.add_argument("--targets", default="official,ours", help="official,ours | official | ours")
    ap.add_argument(
        "--ours-arg", action="append", default=[], help="extra argument of `parsec-server run`"
    )
    ap.add_argument(
        "--ours-server",
        default="parsec-server",
        choices=["parsec-server", "granian", "uvicorn"],
        help="serve our app with `parsec-server run` (default) or the granian / uvicorn command "
        "line (bench/granian_app.py; to compare servers)",
    )
    ap.add_argument(
        "--ours-src",
        help="run our server from another source tree (its src/ goes first on PYTHONPATH), e.g. "
        "an earlier commit extracted with `git archive <commit> | tar -x -C DIR`",
    )
    ap.add_argument(
        "--profile", help="record our server with py-spy (raw collapsed stacks) into this file"
    )
    ap.add_argument(
        "--block-size",
        help="bytes per block of block_create / block_read (bench/loadgen.py: 4096)",
    )
    ap.add_argument(
        "--pg-set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a PostgreSQL setting for the run (ALTER SYSTEM, then a restart), e.g. "
        "wal_buffers=64MB; repeatable",
    )
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()
    wanted = args.targets.split(",")
    loads = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"load average at start: {loads} ({os.cpu_count()} CPUs)",
        flush=True,
    )
    official = Path(sys.executable).parent / "parsec"
    ours = REPO / ".venv" / "bin" / "parsec-server"
    for exe in (official, ours):
        if not exe.exists():
            raise SystemExit(
                f"{exe} not found (run scripts/compat-venv.sh and scripts/bootstrap.sh)"
            )
    work = Path(tempfile.mkdtemp(prefix="parsec-bench-", dir="/tmp"))
    os.chmod(work, 0o755)
    pg = EmbeddedPostgres(
        work / "pg", tcp_port=free_tcp_port(), database="postgres", fast_unsafe=True
    )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        pg.start()
        if args.pg_set:
            for setting in args.pg_set:
                name, value = setting.split("=", 1)
                subprocess.run(
                    ["psql", "-q", "-d", pg.url, "-c", f"ALTER SYSTEM SET {name} = '{value}'"],
                    check=True,
                )
            pg.stop()
            pg.start()
            shown = ", ".join(
                subprocess.run(
                    ["psql", "-Atq", "-d", pg.url, "-c", f"SHOW {s.split('=', 1)[0]}"],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout.strip()
                for s in args.pg_set
            )
            print(f"PostgreSQL settings: {', '.join(args.pg_set)} (shown: {shown})", flush=True)
        for name in wanted:
            subprocess.run(
                ["psql", "-q", "-d", pg.url, "-c", f"CREATE DATABASE {name}"], check=True
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARSEC_")}
        cmd = [
            sys.executable,
            str(REPO / "bench" / "loadgen.py"),
            "--admin-token",
            TOKEN,
            "--duration",
            args.duration,
            "--connections",
            args.connections,
            "--repeat",
            args.repeat,
        ]
        if args.workloads:
            cmd += ["--workloads", args.workloads]
        if args.block_size:
            cmd += ["--block-size", args.block_size]
        if "official" in wanted:
            url_off, p_off = pg.url_for("official"), free_tcp_port()
            subprocess.run(
                [str(official), "migrate", "--db", url_off], check=True, capture_output=True
            )
            procs.append(
                subprocess.Popen(
                    [
                        str(official),
                        "run",
                        "--db",
                        url_off,
                        "--blockstore",
                        "POSTGRESQL",
                        "--administration-token",
                        TOKEN,
                        "--fake-account-password-algorithm-seed",
                        "F4k3",
                        "--email-host",
                        "MOCKED",
                        "--server-addr",
                        f"parsec3://127.0.0.1:{p_off}?no_ssl=true",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(p_off),
                        "--log-level",
                        "WARNING",
                    ],
                    stdout=open(work / "official.log", "wb"),
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            )
            wait_up(p_off, procs[-1])
            cmd += [
                "--target",
                f"official=http://127.0.0.1:{p_off}",
                "--cpu",
                f"official={procs[-1].pid}",
            ]
        if "ours" in wanted:
            url_ours, p_ours = pg.url_for("ours"), free_tcp_port()
            if args.ours_src:
                env = {**env, "PYTHONPATH": str(Path(args.ours_src).absolute() / "src")}
            subprocess.run(
                [str(ours), "migrate", "--db", url_ours, "--no-backup"],
                check=True,
                capture_output=True,
                env=env,
            )
            argv = [
                str(ours),
                "run",
                "--db",
                url_ours,
                "--administration-token",
                TOKEN,
                "--host",
                "127.0.0.1",
                "--port",
                str(p_ours),
                "--log-level",
                "warning",
                *args.ours_arg,
            ]
            if args.ours_server != "parsec-server":
                env = {
                    **env,
                    "BENCH_DB_URL": url_ours,
                    "BENCH_ADMIN_TOKEN": TOKEN,
                    "BENCH_PORT": str(p_ours),
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
                }
                if args.ours_server == "granian":
                    argv = [
                        str(REPO / ".venv" / "bin" / "granian"),
                        "--interface",
                        "asgi",
                        "--factory",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(p_ours),
                        "--loop",
                        "uvloop",
                        "--http",
                        "1",
                        "--no-ws",
                        "--log-level",
                        "warning",
                        "--no-access-log",
                        *args.ours_arg,
                        "bench.granian_app:app_factory",
                    ]
                else:
                    argv = [
                        str(REPO / ".venv" / "bin" / "uvicorn"),
                        "--factory",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(p_ours),
                        "--loop",
                        "uvloop",
                        "--http",
                        "httptools",
                        "--no-access-log",
                        "--log-level",
                        "warning",
                        "--no-server-header",
                        "--no-date-header",
                        "--no-proxy-headers",
                        *args.ours_arg,
                        "bench.granian_app:app_factory",
                    ]
            if args.profile:
                py_spy = REPO / ".venv" / "bin" / "py-spy"
                if not py_spy.exists():
                    raise SystemExit(f"{py_spy} not found: .venv/bin/pip install py-spy")
                argv = [
                    str(py_spy),
                    "record",
                    "--format",
                    "raw",
                    "--rate",
                    "250",
                    "--nonblocking",
                    "-o",
                    str(Path(args.profile).absolute()),
                    "--",
                    *argv,
                ]
            procs.append(
                subprocess.Popen(
                    argv,
                    stdout=open(work / "ours.log", "wb"),
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            )
            wait_up(p_ours, procs[-1])
            cmd += ["--target", f"ours=http://127.0.0.1:{p_ours}", "--cpu", f"ours={procs[-1].pid}"]
        if pg.pid is not None:
            cmd += ["--pg-pid", str(pg.pid)]
        cmd += ["--pg-url", pg.url]  # WAL bytes per request
        if args.json_out:
            cmd += ["--json", args.json_out]
        code = subprocess.run(cmd).returncode
        if code != 0:
            for log in sorted(work.glob("*.log")):
                print(
                    f"--- last lines of {log.name}:\n"
                    + "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                )
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        return code
    finally:
        for proc in procs:
            if proc.poll() is None:
                # SIGINT: py-spy (--profile) then writes its file and stops the server; both
                # servers stop gracefully on SIGINT anyway
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
