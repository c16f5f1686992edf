"""`parsec-server run --metrics --access-log` (PARSEC_METRICS read from the environment) as a real
process on loopback: /metrics scraped over HTTP, access and audit lines on stderr."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from parsec_server.embedded_pg import free_tcp_port

EXE = [sys.executable, "-m", "parsec_server.cli.main"]
TOKEN = "observability-admin-token-0123456789"


def _wait_listening(proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("press Ctrl-C"):
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}")
    raise AssertionError("server did not start")


def test_run_with_metrics_and_access_log(db_url: str, tmp_path: Path) -> None:
    token_file = tmp_path / "admin-token"
    token_file.write_text(TOKEN)
    port = free_tcp_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARSEC_")}
    env["PARSEC_METRICS"] = "true"
    args = ["run", "--db", db_url, "--administration-token-file", str(token_file)]
    args += ["--host", "127.0.0.1", "--port", str(port), "--access-log", "--log-format", "json"]
    stderr_path = tmp_path / "stderr"
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            [*EXE, *args], stdout=subprocess.PIPE, stderr=stderr, text=True, env=env
        )
        try:
            _wait_listening(proc)
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=10) as http:
                assert http.get("/health").status_code == 200
                r = http.post(
                    "/administration/organizations",
                    json={"organization_id": "RunObs"},
                    headers={"Authorization": f"Bearer {TOKEN}"},
                )
                assert r.status_code == 200
                bootstrap_url = r.json()["bootstrap_url"]
                scraped = http.get("/metrics")
            assert scraped.status_code == 200
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scraped.text)
        for s in family.samples
    }
    assert (
        samples[
            ("parsec_requests_total", (("command", ""), ("family", "health"), ("status", "200")))
        ]
        == 1
    )
    assert (
        samples[
            (
                "parsec_requests_total",
                (("command", ""), ("family", "administration"), ("status", "200")),
            )
        ]
        == 1
    )
    assert samples[("parsec_migrations", (("state", "pending"),))] == 0
    lines = [
        json.loads(line) for line in stderr_path.read_text().splitlines() if line.startswith("{")
    ]
    access = [d for d in lines if d["event"] == "access"]
    assert [(d["method"], d["path"], d["http_status"]) for d in access] == [
        ("GET", "/health", 200),
        ("POST", "/administration/organizations", 200),
        ("GET", "/metrics", 200),
    ]
    (audit,) = [d for d in lines if d["event"] == "admin_action"]
    assert audit["action"] == "organization_create" and audit["organization"] == "RunObs"
    assert audit["actor"] == "administration_token" and audit["peer"].startswith("127.0.0.1:")
    text = stderr_path.read_text()
    assert TOKEN not in text and bootstrap_url not in text
