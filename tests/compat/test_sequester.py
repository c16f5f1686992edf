"""Sequester services with the official client library, against both servers: a sequestered
bootstrap, services created and revoked through the administration API (certificates signed by the
library's sequester authority key), what clients then see (certificate_get, realm_rotate_key with
the services' accesses, vlob_create), the refusals of the administration routes, and certificates
made by our `parsec-server sequester generate_*` commands accepted by the library and the server.

Webhook services are created on both servers, but only ours calls them (the official PostgreSQL
back end never does): the webhook server here accepts everything, so the replies are the same."""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import parsec._parsec as p
import pytest
from client import AC, ANC, AdminClient, AnonymousClient, AuthenticatedClient, build_user_certs, now

REPO = Path(__file__).resolve().parents[2]
OUR_CLI = REPO / ".venv" / "bin" / "parsec-server"
RK = AC.realm_rotate_key
VC = AC.vlob_create


class Sequestered:
    def __init__(self, http: httpx.Client, admin: AdminClient) -> None:
        self.admin = admin
        self.org_id, token = admin.create_org()
        root = p.SigningKey.generate()
        ts = now()
        self.signing_key, self.verify_key = p.SequesterSigningKeyDer.generate_pair(1024)
        authority = p.SequesterAuthorityCertificate(
            timestamp=ts, verify_key_der=self.verify_key
        ).dump_and_sign(root)
        certs = build_user_certs(
            self.org_id, None, root, name="alice", profile=p.UserProfile.ADMIN, timestamp=ts
        )
        rep = AnonymousClient(http, self.org_id).send(
            ANC.organization_bootstrap.Req(
                bootstrap_token=token,
                root_verify_key=root.verify_key,
                user_certificate=certs.user_certificate,
                device_certificate=certs.device_certificate,
                redacted_user_certificate=certs.redacted_user_certificate,
                redacted_device_certificate=certs.redacted_device_certificate,
                sequester_authority_certificate=authority,
            )
        )
        assert isinstance(rep, ANC.organization_bootstrap.RepOk), rep
        self.authority_certificate = authority
        self.alice = AuthenticatedClient(http, certs.device)

    def service_certificate(
        self, label: str = "Archive", signing_key: Any = None
    ) -> tuple[p.SequesterServiceID, bytes]:
        _private, public = p.SequesterPrivateKeyDer.generate_pair(1024)
        cert = p.SequesterServiceCertificate(
            timestamp=now(),
            service_id=p.SequesterServiceID.new(),
            service_label=label,
            encryption_key_der=public,
        )
        return cert.service_id, (signing_key or self.signing_key).sign(cert.dump())

    def revocation(self, service_id: p.SequesterServiceID) -> bytes:
        cert = p.SequesterRevokedServiceCertificate(timestamp=now(), service_id=service_id)
        return self.signing_key.sign(cert.dump())

    def path(self, tail: str = "") -> str:
        return f"/organizations/{self.org_id}/sequester/services{tail}"

    def create(self, signed: bytes, config: dict[str, Any] | None = None) -> httpx.Response:
        return self.admin.request(
            "POST",
            self.path(),
            json={
                "service_certificate": base64.b64encode(signed).decode(),
                "config": config or {"type": "storage"},
            },
        )

    def revoke(self, signed: bytes) -> httpx.Response:
        return self.admin.request(
            "POST",
            self.path("/revoke"),
            json={"revoked_service_certificate": base64.b64encode(signed).decode()},
        )

    def services(self) -> list[dict[str, Any]]:
        r = self.admin.request("GET", self.path())
        assert r.status_code == 200, r.text
        services: list[dict[str, Any]] = r.json()["services"]
        return services


@pytest.fixture
def sorg(http: httpx.Client, admin: AdminClient) -> Sequestered:
    return Sequestered(http, admin)


def _rotate(
    alice: AuthenticatedClient,
    realm_id: p.VlobID,
    key_index: int,
    services: dict[p.SequesterServiceID, bytes] | None,
) -> Any:
    cert = p.RealmKeyRotationCertificate(
        author=alice.device_id,
        timestamp=now(),
        realm_id=realm_id,
        key_index=key_index,
        encryption_algorithm=p.SecretKeyAlgorithm.BLAKE2B_XSALSA20_POLY1305,
        hash_algorithm=p.HashAlgorithm.SHA256,
        key_canary=b"canary",
    )
    return alice.send(
        RK.Req(
            realm_key_rotation_certificate=alice.sign(cert),
            per_participant_keys_bundle_access={alice.user_id: b"access"},
            per_sequester_service_keys_bundle_access=services,
            keys_bundle=b"bundle",
        )
    )


def _vlob_create(alice: AuthenticatedClient, realm_id: p.VlobID) -> Any:
    return alice.send(
        VC.Req(
            realm_id=realm_id,
            vlob_id=p.VlobID.new(),
            key_index=1,
            timestamp=now(),
            blob=b"sequestered blob",
        )
    )


def test_create_list_revoke_and_what_clients_see(sorg: Sequestered) -> None:
    assert sorg.services() == []
    service_id, signed = sorg.service_certificate()
    r = sorg.create(signed)
    assert (r.status_code, r.json()) == (200, {})
    [service] = sorg.services()
    assert service["service_id"] == service_id.hex
    assert (service["service_label"], service["type"], service["revoked_on"]) == (
        "Archive",
        "storage",
        None,
    )
    assert "webhook_url" not in service

    got = sorg.alice.certificates()
    assert got.sequester_certificates == [sorg.authority_certificate, signed]
    cert = p.SequesterServiceCertificate.load(sorg.verify_key.verify(got.sequester_certificates[1]))
    assert cert.service_id == service_id

    # key rotations must now give the service its access
    realm_id, rep = sorg.alice.realm_create()
    assert isinstance(rep, AC.realm_create.RepOk), rep
    rep = _rotate(sorg.alice, realm_id, 1, {})
    assert isinstance(rep, RK.RepSequesterServiceMismatch), rep
    rep = _rotate(sorg.alice, realm_id, 1, {service_id: b"service access"})
    assert isinstance(rep, RK.RepOk), rep
    assert isinstance(_vlob_create(sorg.alice, realm_id), VC.RepOk)

    r = sorg.revoke(sorg.revocation(service_id))
    assert (r.status_code, r.json()) == (200, {})
    [service] = sorg.services()
    assert service["revoked_on"] is not None
    assert len(sorg.alice.certificates().sequester_certificates) == 3
    rep = _rotate(sorg.alice, realm_id, 2, {})  # a revoked service gets nothing
    assert isinstance(rep, RK.RepOk), rep


def test_refusals(sorg: Sequestered, http: httpx.Client, admin: AdminClient) -> None:
    _, forged = sorg.service_certificate(
        signing_key=p.SequesterSigningKeyDer.generate_pair(1024)[0]
    )
    r = sorg.create(forged)
    assert (r.status_code, r.json()) == (400, {"detail": "Invalid certificate"})

    service_id, first = sorg.service_certificate()
    _, second = sorg.service_certificate("Later")
    assert sorg.create(second).status_code == 200
    r = sorg.create(first)  # older than the last sequester certificate
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert detail["msg"] == "Require greater timestamp"
    assert isinstance(detail["strictly_greater_than"], str)

    r = sorg.revoke(sorg.revocation(service_id))  # never added
    assert (r.status_code, r.json()) == (404, {"detail": "Sequester service not found"})
    [added] = sorg.services()
    added_id = p.SequesterServiceID.from_hex(added["service_id"])
    assert sorg.revoke(sorg.revocation(added_id)).status_code == 200
    r = sorg.revoke(sorg.revocation(added_id))
    assert (r.status_code, r.json()) == (400, {"detail": "Sequester service already revoked"})

    r = admin.request(
        "PUT",
        sorg.path("/config"),
        json={"service_id": p.SequesterServiceID.new().hex, "config": {"type": "storage"}},
    )
    assert (r.status_code, r.json()) == (404, {"detail": "Sequester service not found"})

    plain_id, _token = admin.create_org()
    r = admin.request("GET", f"/organizations/{plain_id}/sequester/services")
    assert (r.status_code, r.json()) == (404, {"detail": "Organization not found"})
    from client import bootstrap_org

    plain = bootstrap_org(http, admin)
    r = admin.request("GET", f"/organizations/{plain.organization_id}/sequester/services")
    assert (r.status_code, r.json()) == (400, {"detail": "Sequester disabled"})


class _AcceptingHook(BaseHTTPRequestHandler):
    calls: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _AcceptingHook.calls.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _webhook() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AcceptingHook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_webhook_service(sorg: Sequestered, admin: AdminClient, target: str) -> None:
    with _webhook() as url:
        _AcceptingHook.calls = []
        service_id, signed = sorg.service_certificate("Hook")
        r = sorg.create(signed, {"type": "webhook", "webhook_url": url})
        assert (r.status_code, r.json()) == (200, {})
        [service] = sorg.services()
        assert (service["type"], service["webhook_url"]) == ("webhook", url)

        realm_id, rep = sorg.alice.realm_create()
        assert isinstance(rep, AC.realm_create.RepOk), rep
        # (the official PostgreSQL back end answers 500 to realm_rotate_key with a webhook
        # service: the key is given while the service is a storage one)
        r = admin.request(
            "PUT",
            sorg.path("/config"),
            json={"service_id": service_id.hex, "config": {"type": "storage"}},
        )
        assert (r.status_code, r.json()) == (200, {})
        assert isinstance(_rotate(sorg.alice, realm_id, 1, {service_id: b"a"}), RK.RepOk)
        r = admin.request(
            "PUT",
            sorg.path("/config"),
            json={"service_id": service_id.hex, "config": {"type": "webhook", "webhook_url": url}},
        )
        assert r.status_code == 200

        assert isinstance(_vlob_create(sorg.alice, realm_id), VC.RepOk)
        # only our server asks webhook services (docs/sequester.md)
        assert len(_AcceptingHook.calls) == (1 if target == "ours" else 0)


@pytest.mark.skipif(not OUR_CLI.exists(), reason="needs our .venv (scripts/bootstrap.sh)")
def test_our_cli_certificates_accepted(sorg: Sequestered, tmp_path: Path) -> None:
    """`parsec-server sequester generate_*` sign as the official library does: the library
    verifies them, and the server (ours or the official one) accepts them."""
    authority = tmp_path / "authority.pem"
    authority.write_text(sorg.signing_key.dump_pem())
    _private, public = p.SequesterPrivateKeyDer.generate_pair(1024)
    service_key = tmp_path / "service.pub.pem"
    service_key.write_text(public.dump_pem())
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARSEC_")}

    def run(*args: str | Path) -> None:
        res = subprocess.run(
            [str(OUR_CLI), "sequester", *map(str, args)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert res.returncode == 0, res.stderr

    def signed_from(pem: Path) -> bytes:
        lines = pem.read_text().strip().splitlines()
        return base64.b64decode("".join(lines[1:-1]))

    out = tmp_path / "service.pem"
    run(
        "generate_service_certificate",
        "--service-label",
        "From our CLI",
        "--service-public-key",
        service_key,
        "--authority-private-key",
        authority,
        out,
    )
    signed = signed_from(out)
    cert = p.SequesterServiceCertificate.load(sorg.verify_key.verify(signed))
    assert cert.service_label == "From our CLI" and cert.encryption_key_der.dump() == public.dump()
    assert sorg.create(signed).status_code == 200

    revocation = tmp_path / "revoke.pem"
    run(
        "generate_service_revocation_certificate",
        "--service-id",
        cert.service_id.hex,
        "--authority-private-key",
        authority,
        revocation,
    )
    revoked = signed_from(revocation)
    assert p.SequesterRevokedServiceCertificate.load(
        sorg.verify_key.verify(revoked)
    ).service_id == (cert.service_id)
    assert sorg.revoke(revoked).status_code == 200
