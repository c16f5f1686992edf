"""The sequester webhook on vlob writes (docs/sequester.md): a service of webhook type is asked
before vlob_create / vlob_update writes, on a real webhook HTTP server on loopback; its refusal is
the protocol's `rejected_by_sequester_service` (with the reason), a failure, a dead or a slow
service `sequester_service_unavailable`; nothing is written unless every webhook service accepted,
and no database connection is held while the service answers."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from core_helpers import Device, Server, running_server
from sequester_support import (
    Webhook,
    add_service,
    b64,
    bootstrap_sequestered,
    free_port_url,
    reason_body,
    revoked_cert,
    webhook_server,
)
from test_realm import realm_create, rotate

from parsec_server.protocol.codec import now

OK = {"status": "ok"}
TIMEOUT = 0.5  # --webhook-timeout of these servers


@pytest.fixture
async def server(db_url: str) -> AsyncIterator[Server]:
    # One database connection: a handler that held it while waiting for a webhook would block
    # everything else (test_no_connection_held_while_waiting).
    async with running_server(
        db_url, webhook_timeout=TIMEOUT, db_min_connections=1, db_max_connections=1
    ) as s:
        yield s


@pytest.fixture
async def hook() -> AsyncIterator[Webhook]:
    async with webhook_server() as h:
        yield h


@contextlib.asynccontextmanager
async def _setup(server: Server, config: dict[str, Any] | None) -> AsyncIterator[Any]:
    """A sequestered organization with a realm (key index 1) created before the service."""
    sorg = await bootstrap_sequestered(server)
    realm_id = await realm_create(sorg.alice)
    assert await rotate(sorg.alice, realm_id, 1, [sorg.alice.user_id], sequester={}) == OK
    service_id = None if config is None else await add_service(server, sorg, config)
    yield sorg, realm_id, service_id


async def _create(
    alice: Device, realm_id: uuid.UUID, vlob_id: uuid.UUID, blob: bytes = b"blob"
) -> dict[str, Any]:
    return await alice.rpc(
        "vlob_create",
        realm_id=realm_id,
        vlob_id=vlob_id,
        key_index=1,
        timestamp=now(),
        blob=blob,
    )


async def _update(
    alice: Device, realm_id: uuid.UUID, vlob_id: uuid.UUID, version: int, blob: bytes = b"v2"
) -> dict[str, Any]:
    return await alice.rpc(
        "vlob_update",
        realm_id=realm_id,
        vlob_id=vlob_id,
        key_index=1,
        timestamp=now(),
        version=version,
        blob=blob,
    )


async def _versions(alice: Device, realm_id: uuid.UUID, vlob_id: uuid.UUID) -> list[int]:
    rep = await alice.rpc("vlob_read_batch", realm_id=realm_id, vlobs=[vlob_id], at=None)
    assert rep["status"] == "ok", rep
    return [item[3] for item in rep["items"]]


async def test_accepted(server: Server, hook: Webhook) -> None:
    async with _setup(server, {"type": "webhook", "webhook_url": hook.url}) as (sorg, realm, sid):
        vlob_id = uuid.uuid4()
        assert await _create(sorg.alice, realm, vlob_id, b"first") == OK
        assert await _update(sorg.alice, realm, vlob_id, 2, b"second") == OK
        assert await _versions(sorg.alice, realm, vlob_id) == [2]
    first, second = hook.calls
    assert first.body == b"first" and second.body == b"second"
    assert first.query == {
        "type": "vlob_create_or_update",
        "service_id": sid.hex,
        "organization_id": sorg.id,
        "author": sorg.alice.device_id.hex,
        "realm_id": realm.hex,
        "vlob_id": vlob_id.hex,
        "key_index": "1",
        "version": "1",
        "timestamp": first.query["timestamp"],
    }
    assert second.query["version"] == "2"
    assert datetime.datetime.fromisoformat(first.query["timestamp"].replace("Z", "+00:00"))


@pytest.mark.parametrize(
    ("body", "reason"),
    [(reason_body("not today"), "not today"), (b"", None), (b"{}", None), (b"[1]", None)],
)
async def test_rejected(server: Server, hook: Webhook, body: bytes, reason: str | None) -> None:
    hook.status, hook.body = 400, body
    async with _setup(server, {"type": "webhook", "webhook_url": hook.url}) as (sorg, realm, sid):
        vlob_id = uuid.uuid4()
        rep = await _create(sorg.alice, realm, vlob_id)
        assert rep == {
            "status": "rejected_by_sequester_service",
            "service_id": sid,
            "reason": reason,
        }
        assert await _versions(sorg.alice, realm, vlob_id) == []  # nothing written
        # an update is refused the same way
        hook.status = 200
        assert await _create(sorg.alice, realm, vlob_id) == OK
        hook.status = 400
        rep = await _update(sorg.alice, realm, vlob_id, 2)
        assert rep["status"] == "rejected_by_sequester_service"
        assert await _versions(sorg.alice, realm, vlob_id) == [1]


@pytest.mark.parametrize("failure", ["500", "down", "slow", "bad-url"])
async def test_unavailable(server: Server, hook: Webhook, failure: str) -> None:
    url = hook.url
    if failure == "500":
        hook.status = 500
    elif failure == "down":
        url = free_port_url()
    elif failure == "slow":
        hook.delay = 30  # far beyond --webhook-timeout: the write does not wait for it
    else:
        url = "not a url"
    async with _setup(server, {"type": "webhook", "webhook_url": url}) as (sorg, realm, sid):
        vlob_id = uuid.uuid4()
        rep = await _create(sorg.alice, realm, vlob_id)
        assert rep == {"status": "sequester_service_unavailable", "service_id": sid}
        assert await _versions(sorg.alice, realm, vlob_id) == []


async def test_no_connection_held_while_waiting(server: Server, hook: Webhook) -> None:
    """While the service thinks, the server's only database connection is free."""
    seen: list[int] = []

    async def use_the_database() -> None:
        async with asyncio.timeout(5), server.backend.db.connection() as conn:
            seen.append(await conn.fetchval("SELECT 1"))

    hook.during = use_the_database
    async with _setup(server, {"type": "webhook", "webhook_url": hook.url}) as (sorg, realm, _):
        assert await _create(sorg.alice, realm, uuid.uuid4()) == OK
    assert seen == [1]


async def test_only_active_webhook_services_are_asked(server: Server, hook: Webhook) -> None:
    async with _setup(server, {"type": "storage"}) as (sorg, realm, storage_id):
        assert await _create(sorg.alice, realm, uuid.uuid4()) == OK  # storage service: no call
        hook_id = await add_service(server, sorg, {"type": "webhook", "webhook_url": hook.url})
        hook.status = 400
        assert (await _create(sorg.alice, realm, uuid.uuid4()))["service_id"] == hook_id
        r = await server.admin(
            "POST",
            f"/organizations/{sorg.id}/sequester/services/revoke",
            json={"revoked_service_certificate": b64(revoked_cert(sorg.authority, hook_id))},
        )
        assert r.status_code == 200
        assert await _create(sorg.alice, realm, uuid.uuid4()) == OK  # revoked: not asked
    assert len(hook.calls) == 1
    assert storage_id is not None


async def test_refused_write_does_not_ask(server: Server, hook: Webhook) -> None:
    async with _setup(server, {"type": "webhook", "webhook_url": hook.url}) as (sorg, realm, _):
        assert (await _create(sorg.alice, uuid.uuid4(), uuid.uuid4()))["status"] == (
            "realm_not_found"
        )
        vlob_id = uuid.uuid4()
        assert await _create(sorg.alice, realm, vlob_id) == OK
        assert (await _create(sorg.alice, realm, vlob_id))["status"] == "vlob_already_exists"
        assert (await _update(sorg.alice, realm, vlob_id, 5))["status"] == "bad_vlob_version"
    assert len(hook.calls) == 1


async def test_several_services_all_asked(server: Server) -> None:
    async with (
        webhook_server() as first,
        webhook_server() as second,
        _setup(server, {"type": "webhook", "webhook_url": first.url}) as (sorg, realm, _),
    ):
        second_id = await add_service(server, sorg, {"type": "webhook", "webhook_url": second.url})
        assert await _create(sorg.alice, realm, uuid.uuid4()) == OK
        assert (len(first.calls), len(second.calls)) == (1, 1)
        second.status = 400
        vlob_id = uuid.uuid4()
        rep = await _create(sorg.alice, realm, vlob_id)
        assert rep["status"] == "rejected_by_sequester_service" and rep["service_id"] == second_id
        assert await _versions(sorg.alice, realm, vlob_id) == []


async def test_not_sequestered_unchanged(server: Server, hook: Webhook) -> None:
    org = await server.bootstrap_org()
    realm = await realm_create(org.alice)
    assert await rotate(org.alice, realm, 1, [org.alice.user_id]) == OK
    assert await _create(org.alice, realm, uuid.uuid4()) == OK
    assert hook.calls == []
