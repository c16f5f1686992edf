"""ping in every family (answered without --debug, unlike the official server) and the PINGED
event."""

# ruff: noqa: F811  (pytest fixtures imported from core_helpers are redefined as arguments)
from __future__ import annotations

import asyncio

import pytest
from core_helpers import API_HEADERS, Org, Server, capture_events, org, server, settle  # noqa: F401

from parsec_server.protocol.codec import packb
from parsec_server.protocol.registry import decode_rep


@pytest.mark.parametrize("value", ["hello", "", "é" * 100, "x" * 1000])
async def test_authenticated_ping_and_event(server: Server, org: Org, value: str) -> None:
    await settle(server, org.organization_id)
    with capture_events(server, org.organization_id) as log:
        assert await org.alice.rpc("ping", ping=value) == {"status": "ok", "pong": value}
        events = await log.wait_for("PINGED")
    assert [e["ping"] for e in events] == [value]


async def test_authenticated_ping_too_long_for_an_event(server: Server, org: Org) -> None:
    value = "y" * 20_000
    with capture_events(server, org.organization_id) as log:
        assert await org.alice.rpc("ping", ping=value) == {"status": "ok", "pong": value}
        await settle(server, org.organization_id)
    assert [e for e in log.of_type("PINGED") if e["ping"] == value] == []


async def test_ping_any_profile(org: Org) -> None:
    for profile in ("STANDARD", "OUTSIDER"):
        user = await org.alice.create_user(profile.lower(), profile)
        assert await user.rpc("ping", ping=profile) == {"status": "ok", "pong": profile}


async def test_anonymous_ping(server: Server, org: Org) -> None:
    assert await server.anonymous(org.organization_id, "ping", ping="anon") == {
        "status": "ok",
        "pong": "anon",
    }
    not_bootstrapped, _ = await server.create_org()
    assert await server.anonymous(not_bootstrapped, "ping", ping="a") == {
        "status": "ok",
        "pong": "a",
    }


async def test_anonymous_server_ping(server: Server) -> None:
    r = await server.http.post(
        "/anonymous_server", content=packb({"cmd": "ping", "ping": "srv"}), headers=API_HEADERS
    )
    assert r.status_code == 200
    assert decode_rep(r.content) == {"status": "ok", "pong": "srv"}


async def test_invited_ping(server: Server, org: Org) -> None:
    rep = await org.alice.rpc("invite_new_user", claimer_email="zack@example.com", send_email=False)
    assert rep["status"] == "ok", rep
    r = await server.http.post(
        f"/invited/{org.organization_id}",
        content=packb({"cmd": "ping", "ping": "inv"}),
        headers={**API_HEADERS, "Authorization": f"Bearer {rep['token'].hex()}"},
    )
    assert r.status_code == 200
    assert decode_rep(r.content) == {"status": "ok", "pong": "inv"}


async def test_concurrent_pings(org: Org) -> None:
    reps = await asyncio.gather(*(org.alice.rpc("ping", ping=str(i)) for i in range(20)))
    assert [r["pong"] for r in reps] == [str(i) for i in range(20)]
