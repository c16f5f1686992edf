"""The sequester services administration routes (docs/sequester.md, protocol.md §1.10): list,
create, revoke, change the type; statuses and details as on the official server; the new
certificates reach clients (certificate_get, SEQUESTER_CERTIFICATE); one audit line per action."""

# ruff: noqa: F811  (pytest fixtures imported from core_helpers are redefined as arguments)
from __future__ import annotations

import datetime
import logging
import uuid

import httpx
import pytest
from core_helpers import Server, capture_events, server  # noqa: F401
from sequester_support import (
    SequesteredOrg,
    add_service,
    b64,
    bootstrap_sequestered,
    revoked_cert,
    rsa_key,
    service_cert,
)

from parsec_server.protocol.codec import now


@pytest.fixture
async def sorg(server: Server) -> SequesteredOrg:
    return await bootstrap_sequestered(server)


def _path(org_id: str, tail: str = "") -> str:
    return f"/organizations/{org_id}/sequester/services{tail}"


async def _list(server: Server, org_id: str) -> list[dict[str, object]]:
    r = await server.admin("GET", _path(org_id))
    assert r.status_code == 200, r.text
    services: list[dict[str, object]] = r.json()["services"]
    return services


async def _create(
    server: Server, org_id: str, cert: bytes, config: dict[str, object]
) -> httpx.Response:
    return await server.admin(
        "POST", _path(org_id), json={"service_certificate": b64(cert), "config": config}
    )


async def test_create_list_revoke(server: Server, sorg: SequesteredOrg) -> None:
    assert await _list(server, sorg.id) == []
    ts = now()
    storage_id, storage_cert = service_cert(sorg.authority, label="Archive", ts=ts)
    r = await _create(server, sorg.id, storage_cert, {"type": "storage"})
    assert (r.status_code, r.json()) == (200, {})
    hook_id = await add_service(
        server, sorg, {"type": "webhook", "webhook_url": "http://127.0.0.1:9/x"}, label="Hook"
    )
    services = await _list(server, sorg.id)
    assert [s["service_id"] for s in services] == [storage_id.hex, hook_id.hex]
    assert services[0] == {
        "service_id": storage_id.hex,
        "service_label": "Archive",
        "created_on": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "revoked_on": None,
        "type": "storage",
    }
    assert services[1]["type"] == "webhook" and services[1]["webhook_url"] == "http://127.0.0.1:9/x"

    # the certificates reach the organization's clients, in order
    got = await sorg.alice.certificates()
    assert got["sequester_certificates"][1:] == [storage_cert, got["sequester_certificates"][2]]
    assert len(got["sequester_certificates"]) == 3

    revoke_ts = now()
    revoked = revoked_cert(sorg.authority, storage_id, revoke_ts)
    r = await server.admin(
        "POST", _path(sorg.id, "/revoke"), json={"revoked_service_certificate": b64(revoked)}
    )
    assert (r.status_code, r.json()) == (200, {})
    services = await _list(server, sorg.id)
    assert services[0]["revoked_on"] == revoke_ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    got = await sorg.alice.certificates()
    assert got["sequester_certificates"][-1] == revoked

    # revoked again (a later certificate): refused
    again = revoked_cert(sorg.authority, storage_id)
    r = await server.admin(
        "POST", _path(sorg.id, "/revoke"), json={"revoked_service_certificate": b64(again)}
    )
    assert (r.status_code, r.json()) == (400, {"detail": "Sequester service already revoked"})
    unknown = revoked_cert(sorg.authority, uuid.uuid4())
    r = await server.admin(
        "POST", _path(sorg.id, "/revoke"), json={"revoked_service_certificate": b64(unknown)}
    )
    assert (r.status_code, r.json()) == (404, {"detail": "Sequester service not found"})


async def test_create_refusals(server: Server, sorg: SequesteredOrg) -> None:
    # signed by another key
    _, forged = service_cert(rsa_key())
    r = await _create(server, sorg.id, forged, {"type": "storage"})
    assert (r.status_code, r.json()) == (400, {"detail": "Invalid certificate"})
    # not after the last sequester certificate (the authority's, at bootstrap)
    old = sorg.org.bootstrap_certs.timestamp
    _, early = service_cert(sorg.authority, ts=old)
    r = await _create(server, sorg.id, early, {"type": "storage"})
    assert r.status_code == 400
    assert r.json() == {
        "detail": {
            "msg": "Require greater timestamp",
            "strictly_greater_than": old.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
    }
    # same service id again, with a later certificate
    service_id = await add_service(server, sorg, {"type": "storage"})
    _, dup = service_cert(sorg.authority, service_id=service_id)
    r = await _create(server, sorg.id, dup, {"type": "storage"})
    assert (r.status_code, r.json()) == (400, {"detail": "Sequester service already exists"})
    # malformed bodies
    r = await server.admin(
        "POST", _path(sorg.id), json={"service_certificate": "%%%", "config": {"type": "storage"}}
    )
    assert r.status_code == 422
    r = await _create(server, sorg.id, dup, {"type": "carrier-pigeon"})
    assert r.status_code == 422
    r = await _create(server, sorg.id, dup, {"type": "webhook"})  # no URL
    assert r.status_code == 422


async def test_not_sequestered_or_unknown(server: Server) -> None:
    org = await server.bootstrap_org()
    r = await server.admin("GET", _path(org.organization_id))
    assert (r.status_code, r.json()) == (400, {"detail": "Sequester disabled"})
    _, cert = service_cert(rsa_key())
    r = await _create(server, org.organization_id, cert, {"type": "storage"})
    assert (r.status_code, r.json()) == (400, {"detail": "Sequester disabled"})
    r = await server.admin(
        "PUT",
        _path(org.organization_id, "/config"),
        json={"service_id": uuid.uuid4().hex, "config": {"type": "storage"}},
    )
    assert (r.status_code, r.json()) == (400, {"detail": "Sequester disabled"})
    not_bootstrapped, _token = await server.create_org()
    for org_id in (not_bootstrapped, "Nope"):
        r = await server.admin("GET", _path(org_id))
        assert (r.status_code, r.json()) == (404, {"detail": "Organization not found"})
        r = await _create(server, org_id, cert, {"type": "storage"})
        assert r.status_code == 404


async def test_update_config(server: Server, sorg: SequesteredOrg) -> None:
    service_id = await add_service(server, sorg, {"type": "storage"})
    url = "http://127.0.0.1:9/hook"
    r = await server.admin(
        "PUT",
        _path(sorg.id, "/config"),
        json={"service_id": service_id.hex, "config": {"type": "webhook", "webhook_url": url}},
    )
    assert (r.status_code, r.json()) == (200, {})
    [service] = await _list(server, sorg.id)
    assert (service["type"], service["webhook_url"]) == ("webhook", url)
    r = await server.admin(
        "PUT",
        _path(sorg.id, "/config"),
        json={"service_id": service_id.hex, "config": {"type": "storage"}},
    )
    assert r.status_code == 200
    [service] = await _list(server, sorg.id)
    assert service["type"] == "storage" and "webhook_url" not in service
    r = await server.admin(
        "PUT",
        _path(sorg.id, "/config"),
        json={"service_id": uuid.uuid4().hex, "config": {"type": "storage"}},
    )
    assert (r.status_code, r.json()) == (404, {"detail": "Sequester service not found"})
    r = await server.admin(
        "PUT", _path(sorg.id, "/config"), json={"service_id": "zz", "config": {"type": "storage"}}
    )
    assert r.status_code == 422


async def test_event_and_audit(
    server: Server, sorg: SequesteredOrg, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="parsec_server.audit")
    ts = now() + datetime.timedelta(seconds=1)
    with capture_events(server, sorg.id) as events:
        service_id, cert = service_cert(sorg.authority, ts=ts)
        r = await _create(server, sorg.id, cert, {"type": "storage"})
        assert r.status_code == 200
        [event] = await events.wait_for("SEQUESTER_CERTIFICATE")
    assert event["timestamp"] is not None
    lines = [r for r in caplog.records if r.name == "parsec_server.audit"]
    assert len(lines) == 1
    record = lines[0].__dict__
    assert record["action"] == "sequester_service_create" and record["outcome"] == "ok"
    assert record["organization"] == sorg.id and record["service_id"] == service_id.hex
    assert record["actor"] == "administration_token"
    # a refusal is one line too
    r = await _create(server, sorg.id, cert, {"type": "storage"})
    assert r.status_code == 400
    lines = [r for r in caplog.records if r.name == "parsec_server.audit"]
    assert [(x.__dict__["action"], x.__dict__["outcome"]) for x in lines[1:]] == [
        ("sequester_service_create", "require_greater_timestamp")
    ]


MALFORMED: list[object] = [
    None,
    [],
    "x",
    {},
    {"service_certificate": None, "config": {"type": "storage"}},
    {"service_certificate": 5, "config": {"type": "storage"}},
    {"service_certificate": "not base64!", "config": {"type": "storage"}},
    {"service_certificate": "", "config": {"type": "storage"}},
    {"service_certificate": b64(b"garbage"), "config": {"type": "storage"}},
    {"service_certificate": b64(b"RSASSA-PSS-SHA256:" + b"\x00" * 300), "config": {}},
    {"service_certificate": b64(b"x"), "config": None},
    {"service_certificate": b64(b"x"), "config": {"type": "webhook", "webhook_url": 5}},
    {"service_certificate": b64(b"x"), "config": {"type": "webhook", "webhook_url": "a\x00b"}},
    {"revoked_service_certificate": [1]},
    {"revoked_service_certificate": b64(b"\xff" * 600)},
    {"service_id": None, "config": {"type": "storage"}},
    {"service_id": 12, "config": {"type": "storage"}},
    {"service_id": "0" * 32, "config": "storage"},
    {"service_id": "0" * 32, "config": {"type": "webhook"}},
]


async def test_malformed_bodies_never_fail(server: Server, sorg: SequesteredOrg) -> None:
    """Garbage on every sequester route: 4xx, never a 500."""
    for method, tail in (("POST", ""), ("POST", "/revoke"), ("PUT", "/config")):
        for body in MALFORMED:
            r = await server.admin(method, _path(sorg.id, tail), json=body)
            assert r.status_code in (400, 404, 422), (method, tail, body, r.status_code, r.text)
        r = await server.admin(method, _path(sorg.id, tail), content=b"{not json")
        assert r.status_code == 422


async def test_label_with_nul_is_invalid(server: Server, sorg: SequesteredOrg) -> None:
    _, cert = service_cert(sorg.authority, label="a\x00b")
    r = await _create(server, sorg.id, cert, {"type": "storage"})
    assert (r.status_code, r.json()) == (400, {"detail": "Invalid certificate"})
