"""A real `parsec-server run` process on 127.0.0.1 with the transport options under test."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from parsec_server.embedded_pg import free_tcp_port

EXE = [sys.executable, "-m", "parsec_server.cli.main"]
TOKEN = "transport-test-token"


@dataclass
class RunningServer:
    port: int
    lines: list[str]
    stderr: Path

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}"


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PARSEC_") and k != "FORWARDED_ALLOW_IPS"
    }
    env.update(extra)
    return env


@contextlib.contextmanager
def run_server(
    db_url: str,
    tmp: Path,
    *args: str,
    env: dict[str, str] | None = None,
    token: str = TOKEN,
) -> Iterator[RunningServer]:
    port = free_tcp_port()
    err = tmp / f"server-{port}.log"
    with err.open("w") as err_f:
        proc = subprocess.Popen(
            [
                *EXE,
                "run",
                "--db",
                db_url,
                "--administration-token",
                token,
                "--port",
                str(port),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=err_f,
            text=True,
            env=env or clean_env(),
        )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        assert proc.stdout is not None
        while True:
            assert time.monotonic() < deadline, f"server did not start: {lines}"
            line = proc.stdout.readline()
            if not line:
                if proc.poll() is not None:
                    raise AssertionError(f"server exited {proc.returncode}: {err.read_text()}")
                continue
            lines.append(line.rstrip())
            if line.startswith("press Ctrl-C"):
                break
        yield RunningServer(port, lines, err)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A key and a certificate for 127.0.0.1 (and localhost), PEM files in `tmp`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    keyfile, certfile = tmp / "key.pem", tmp / "cert.pem"
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return keyfile, certfile
