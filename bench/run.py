"""Benchmark parsec-server against the official Parsec server, side by side, in one run.

    .venv-compat/bin/python bench/run.py [--duration 5] [--connections 16] [--workloads a,b]
    (or simply: bench/run.sh)

Starts one throwaway PostgreSQL cluster, one database per server, the official server (parsec-cloud 3.9.3 from the
compat venv) and ours (.venv/bin/parsec-server), each as ONE process with logging at WARNING, then runs
bench/loadgen.py against both, workload by workload, and prints req/s, p99 and the ratio ours/official.
Everything is stopped at the end. The machine has 2 cores shared by the server, PostgreSQL and the load generator:
compare ratios, not absolute numbers.
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
    ap.add_argument("--workloads", default="organization_info,certificate_get,vlob_create,vlob_update,"
                    "vlob_read_batch,block_create,block_read")
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()
    official = Path(sys.executable).parent / "parsec"
    ours = REPO / ".venv" / "bin" / "parsec-server"
    for exe in (official, ours):
        if not exe.exists():
            raise SystemExit(f"{exe} not found (run scripts/compat-venv.sh and scripts/bootstrap.sh)")
    work = Path(tempfile.mkdtemp(prefix="parsec-bench-", dir="/tmp"))
    os.chmod(work, 0o755)
    pg = EmbeddedPostgres(work / "pg", tcp_port=free_tcp_port(), database="postgres", fast_unsafe=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        pg.start()
        for name in ("official", "ours"):
            subprocess.run(["psql", "-q", "-d", pg.url, "-c", f"CREATE DATABASE {name}"], check=True)
        url_off, url_ours = pg.url_for("official"), pg.url_for("ours")
        subprocess.run([str(official), "migrate", "--db", url_off], check=True, capture_output=True)
        subprocess.run([str(ours), "migrate", "--db", url_ours, "--no-backup"], check=True, capture_output=True)
        p_off, p_ours = free_tcp_port(), free_tcp_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARSEC_")}
        procs.append(subprocess.Popen(
            [str(official), "run", "--db", url_off, "--blockstore", "POSTGRESQL", "--administration-token", TOKEN,
             "--fake-account-password-algorithm-seed", "F4k3", "--email-host", "MOCKED",
             "--server-addr", f"parsec3://127.0.0.1:{p_off}?no_ssl=true", "--host", "127.0.0.1",
             "--port", str(p_off), "--log-level", "WARNING"],
            stdout=open(work / "official.log", "wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True))
        procs.append(subprocess.Popen(
            [str(ours), "run", "--db", url_ours, "--administration-token", TOKEN, "--host", "127.0.0.1",
             "--port", str(p_ours), "--log-level", "warning"],
            stdout=open(work / "ours.log", "wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True))
        wait_up(p_off, procs[0])
        wait_up(p_ours, procs[1])
        cmd = [sys.executable, str(REPO / "bench" / "loadgen.py"),
               "--target", f"official=http://127.0.0.1:{p_off}", "--target", f"ours=http://127.0.0.1:{p_ours}",
               "--admin-token", TOKEN, "--duration", args.duration, "--connections", args.connections,
               "--workloads", args.workloads]
        if args.json_out:
            cmd += ["--json", args.json_out]
        return subprocess.run(cmd).returncode
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
