"""`parsec-server sequester ...` (the official server's commands, docs/cli.md, docs/sequester.md):
certificates generated from PEM key files and signed by the sequester authority, services added,
listed and revoked in the database next to a running server that serves the new certificates;
each failure one `error:` line and its exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from click.testing import CliRunner
from core_helpers import Server, running_server
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sequester_support import SequesteredOrg, bootstrap_sequestered, public_der, rsa_key

from parsec_server.cli.main import cli as main_cli
from parsec_server.cli.sequester import REVOCATION_PEM, SERVICE_PEM, from_pem
from parsec_server.crypto import certificates as certs

EXE = [sys.executable, "-m", "parsec_server.cli.main", "sequester"]


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARSEC_")}
    return subprocess.run(
        [*EXE, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def offline(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """An offline command (no database, nothing asynchronous) run in this process: quicker."""
    res = CliRunner().invoke(main_cli, ["sequester", *map(str, args)])
    return subprocess.CompletedProcess(args, res.exit_code, res.stdout, res.stderr)


def error_line(res: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in res.stderr, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error: "), res.stderr
    return lines[-1]


def write_private(path: Path, key: rsa.RSAPrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def write_public(path: Path, key: rsa.RSAPrivateKey) -> Path:
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def generate(tmp: Path, authority: Path, label: str = "Archive") -> Path:
    out = tmp / f"{uuid.uuid4().hex}.pem"
    res = offline(
        "generate_service_certificate",
        "--service-label",
        label,
        "--service-public-key",
        write_public(tmp / "service.pub.pem", rsa_key()),
        "--authority-private-key",
        authority,
        out,
    )
    assert res.returncode == 0, res.stderr
    return out


async def _services(server: Server, sorg: SequesteredOrg) -> list[bytes]:
    got = await sorg.alice.certificates()
    return list(got["sequester_certificates"][1:])  # after the authority's


async def test_generate_create_list_revoke(db_url: str, tmp_path: Path) -> None:
    async with running_server(db_url) as server:
        sorg = await bootstrap_sequestered(server)
        authority = write_private(tmp_path / "authority.pem", sorg.authority)

        # generated into a directory: the official file name
        res = offline(
            "generate_service_certificate",
            "--service-label",
            "Archive",
            "--service-public-key",
            write_public(tmp_path / "service.pub.pem", rsa_key()),
            "--authority-private-key",
            authority,
            tmp_path,
        )
        assert res.returncode == 0, res.stderr
        [pem] = tmp_path.glob("sequester_service_certificate-*.pem")  # noqa: ASYNC240
        text = pem.read_text()
        assert text.startswith(f"-----BEGIN {SERVICE_PEM}-----\n")
        signed = from_pem(SERVICE_PEM, text, "x")
        cert = certs.verify_and_load(
            certs.SequesterServiceCertificate, signed, public_der(sorg.authority)
        )
        assert cert.service_label == "Archive" and cert.service_id.hex in pem.name

        res = cli(
            "create_service",
            "--service-certificate",
            pem,
            "--organization",
            sorg.id,
            "--db",
            db_url,
        )
        assert res.returncode == 0, res.stderr
        assert cert.service_id.hex in res.stdout
        assert "sequester_service_create" in res.stderr  # the audit line
        assert await _services(server, sorg) == [signed]

        # the same certificate again: older than the last sequester certificate
        res = cli(
            "create_service",
            "--service-certificate",
            pem,
            "--organization",
            sorg.id,
            "--db",
            db_url,
        )
        assert res.returncode == 15
        assert "older than the organization's last sequester certificate" in error_line(res)

        # a webhook service
        hook_pem = generate(tmp_path, authority, "Hook")
        res = cli(
            "create_service",
            "--service-certificate",
            hook_pem,
            "--organization",
            sorg.id,
            "--service-type",
            "webhook",
            "--webhook-url",
            "http://127.0.0.1:9/hook",
            "--db",
            db_url,
        )
        assert res.returncode == 0, res.stderr

        res = cli("list_services", "--organization", sorg.id, "--db", db_url, "--json")
        assert res.returncode == 0, res.stderr
        listed = json.loads(res.stdout)
        assert [(s["service_label"], s["type"], s["revoked_on"]) for s in listed] == [
            ("Archive", "storage", None),
            ("Hook", "webhook", None),
        ]
        assert listed[1]["webhook_url"] == "http://127.0.0.1:9/hook"

        # revoke the first one
        revocation = tmp_path / "revoke.pem"
        res = offline(
            "generate_service_revocation_certificate",
            "--service-id",
            cert.service_id.hex,
            "--authority-private-key",
            authority,
            revocation,
        )
        assert res.returncode == 0, res.stderr
        assert revocation.read_text().startswith(f"-----BEGIN {REVOCATION_PEM}-----\n")
        res = cli(
            "revoke_service",
            "--service-revocation-certificate",
            revocation,
            "--organization",
            sorg.id,
            "--db",
            db_url,
        )
        assert res.returncode == 0, res.stderr
        res = cli("list_services", "--organization", sorg.id, "--db", db_url)
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith("Found 2 sequester service(s)")
        # active first, then revoked
        assert res.stdout.index("Service Hook") < res.stdout.index("Service Archive")
        assert "Revoked on:" in res.stdout
        assert len(await _services(server, sorg)) == 3


async def test_refusals(db_url: str, tmp_path: Path) -> None:
    async with running_server(db_url) as server:
        sorg = await bootstrap_sequestered(server)
        plain = await server.bootstrap_org()
    authority = write_private(tmp_path / "authority.pem", sorg.authority)
    stranger = write_private(tmp_path / "stranger.pem", rsa_key())

    forged = generate(tmp_path, stranger)
    res = cli(
        "create_service", "--service-certificate", forged, "--organization", sorg.id, "--db", db_url
    )
    assert res.returncode == 15
    assert "not signed by the sequester authority" in error_line(res)

    good = generate(tmp_path, authority)
    res = cli(
        "create_service",
        "--service-certificate",
        good,
        "--organization",
        plain.organization_id,
        "--db",
        db_url,
    )
    assert (res.returncode, error_line(res)) == (
        15,
        f"error: organization {plain.organization_id!r} is not sequestered",
    )
    res = cli("list_services", "--organization", "Nope", "--db", db_url)
    assert res.returncode == 14 and "not found" in error_line(res)

    revocation = tmp_path / "revoke.pem"
    res = offline(
        "generate_service_revocation_certificate",
        "--service-id",
        uuid.uuid4().hex,
        "--authority-private-key",
        authority,
        revocation,
    )
    assert res.returncode == 0, res.stderr
    res = cli(
        "revoke_service",
        "--service-revocation-certificate",
        revocation,
        "--organization",
        sorg.id,
        "--db",
        db_url,
    )
    assert (res.returncode, error_line(res)) == (14, "error: sequester service not found")

    # usage errors (exit 2): not a key, not a certificate file, webhook without URL
    not_a_key = tmp_path / "nokey.pem"
    not_a_key.write_text("hello")
    res = offline(
        "generate_service_certificate",
        "--service-label",
        "X",
        "--service-public-key",
        not_a_key,
        "--authority-private-key",
        authority,
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr
    res = cli(
        "create_service",
        "--service-certificate",
        not_a_key,
        "--organization",
        sorg.id,
        "--db",
        db_url,
    )
    assert res.returncode == 2 and "BEGIN PARSEC SEQUESTER SERVICE CERTIFICATE" in res.stderr
    res = offline(
        "create_service",
        "--service-certificate",
        good,
        "--organization",
        sorg.id,
        "--service-type",
        "webhook",
        "--db",
        db_url,
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr
