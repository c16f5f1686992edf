"""The event stream served by real `parsec-server run` processes (protocol.md §1.9, §6.6): events
cross from one process to another through PostgreSQL LISTEN/NOTIFY, keepalives, Last-Event-ID being
per process, streams ended by a revocation and by the server's shutdown."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import httpx
import pytest
from core_helpers import HttpError, realm_role_cert
from sse_support import ServerProcess, http_server, open_events, shared_realm

from parsec_server.protocol.codec import now

pytestmark = pytest.mark.timeout(120)


async def test_events_cross_processes(spawn_server: Callable[..., ServerProcess]) -> None:
    one, two = spawn_server(), spawn_server()
    async with http_server(one) as s1, http_server(two) as s2:
        org = await s1.bootstrap_org()
        alice = org.alice
        bob = await alice.create_user("bob")
        realm_id = await shared_realm(alice, bob)
        bob.server = s2  # bob talks to the second process
        async with open_events(bob) as stream:
            assert (await stream.next_data())["event"] == "ORGANIZATION_CONFIG"
            vlob_id = uuid.uuid4()
            rep = await alice.rpc(
                "vlob_create",
                realm_id=realm_id,
                vlob_id=vlob_id,
                key_index=1,
                timestamp=now(),
                blob=b"over there",
            )
            assert rep == {"status": "ok"}
            ev = await stream.next_data()
            assert (ev["event"], ev["vlob_id"], ev["blob"]) == ("VLOB", vlob_id, b"over there")
            # and the other way round: bob writes through the second process, alice listens on the
            # first one
            async with open_events(alice) as a_stream:
                assert (await a_stream.next_data())["event"] == "ORGANIZATION_CONFIG"
                rep = await bob.rpc(
                    "vlob_update",
                    realm_id=realm_id,
                    vlob_id=vlob_id,
                    key_index=1,
                    timestamp=now(),
                    version=2,
                    blob=b"back",
                )
                assert rep == {"status": "ok"}
                ev = await a_stream.next_data()
                assert (ev["event"], ev["author"], ev["version"]) == ("VLOB", bob.device_id, 2)
            carol = await alice.create_user("carol")
            ev = await stream.next_data()
            assert ev["event"] == "COMMON_CERTIFICATE"
            cert = alice.sign(
                realm_role_cert(alice.device_id, now(), realm_id, carol.user_id, "READER")
            )
            rep = await alice.rpc(
                "realm_share",
                realm_role_certificate=cert,
                recipient_keys_bundle_access=b"c",
                key_index=1,
            )
            assert rep == {"status": "ok"}
            ev = await stream.next_data()
            assert (ev["event"], ev["realm_id"]) == ("REALM_CERTIFICATE", realm_id)


async def test_keepalive(spawn_server: Callable[..., ServerProcess]) -> None:
    proc = spawn_server("--sse-keepalive", "1")
    async with http_server(proc) as server:
        org = await server.bootstrap_org()
        async with open_events(org.alice) as stream:
            config = await stream.next()
            assert config.id is None
            assert config.rep()["sse_keepalive_seconds"] == 1
            started = asyncio.get_running_loop().time()
            msg = await asyncio.wait_for(stream.next(), 5)
            assert (msg.event, msg.fields.get("data")) == ("keepalive", "")
            assert msg.id is None
            assert 0.8 < asyncio.get_running_loop().time() - started < 3
            msg = await asyncio.wait_for(stream.next(), 5)
            assert msg.event == "keepalive"


async def test_keepalive_disabled(spawn_server: Callable[..., ServerProcess]) -> None:
    proc = spawn_server("--sse-keepalive", "0")
    async with http_server(proc) as server:
        org = await server.bootstrap_org()
        async with open_events(org.alice) as stream:
            assert (await stream.next()).rep()["sse_keepalive_seconds"] is None
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(stream.next(), 2)


async def test_last_event_id_cache_per_process(spawn_server: Callable[..., ServerProcess]) -> None:
    """Each process caches the events it heard (its own and the other processes'): one started
    after an event cannot replay from it."""
    one = spawn_server()
    async with http_server(one) as s1:
        org = await s1.bootstrap_org()
        alice = org.alice
        async with open_events(alice) as stream:
            await stream.next()
            await alice.create_user("bob")
            first = await stream.next()
            assert first.rep()["event"] == "COMMON_CERTIFICATE" and first.id is not None
        two = spawn_server()
        async with http_server(two) as s2:
            async with open_events(alice, http=s2.http) as stream:
                await stream.next()
                await alice.create_user("carol")  # through the first process
                second = await stream.next()
                assert second.rep()["event"] == "COMMON_CERTIFICATE"
            await alice.create_user("dave")
            async with open_events(alice, **{"Last-Event-ID": first.id}) as stream:  # heard both
                await stream.next()
                assert (await stream.next()).id == second.id
                await stream.next()
            async with open_events(alice, http=s2.http, **{"Last-Event-ID": first.id}) as stream:
                await stream.next()
                ev = await stream.next()
                assert (ev.event, ev.fields.get("data")) == ("missed_events", "")
            async with open_events(alice, http=s2.http, **{"Last-Event-ID": second.id}) as stream:
                await stream.next()
                assert (await stream.next_data())["event"] == "COMMON_CERTIFICATE"  # dave's


async def test_revocation_closes_stream_on_other_process(
    spawn_server: Callable[..., ServerProcess],
) -> None:
    one, two = spawn_server(), spawn_server()
    async with http_server(one) as s1, http_server(two) as s2:
        org = await s1.bootstrap_org()
        bob = await org.alice.create_user("bob")
        bob.server = s2
        async with open_events(bob) as stream:
            await stream.next()
            assert (await org.alice.revoke(bob.user_id))["status"] == "ok"
            assert (await stream.next_data())["event"] == "COMMON_CERTIFICATE"
            with pytest.raises(EOFError):
                await asyncio.wait_for(stream.next(), 10)
        with pytest.raises(AssertionError, match="461"):
            async with open_events(bob):
                pass
        with pytest.raises(HttpError) as exc:
            await bob.rpc("vlob_poll_changes", realm_id=uuid.uuid4(), last_checkpoint=0)
        assert exc.value.status_code == 461


async def test_shutdown_with_open_streams_is_prompt(
    spawn_server: Callable[..., ServerProcess],
) -> None:
    proc = spawn_server()  # default keepalive (30 s): nothing but the shutdown can end the streams
    async with http_server(proc) as server:
        org = await server.bootstrap_org()
        bob = await org.alice.create_user("bob")
        async with (
            open_events(org.alice, read_timeout=30) as s1,
            open_events(bob, read_timeout=30) as s2,
        ):
            await s1.next()
            await s2.next()
            elapsed = await asyncio.get_running_loop().run_in_executor(None, proc.terminate)
            assert elapsed < 5, proc.log()
            for stream in (s1, s2):
                with pytest.raises((EOFError, httpx.HTTPError)):
                    await asyncio.wait_for(stream.next(), 5)
    assert proc.proc.returncode == 0, proc.log()
