"""Terms of service: set by the administration API, read and accepted on `/tos`, 463 elsewhere until
then."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from invite_support import Org, RpcError, bootstrap_org, http_status, org_fixture, server_fixture  # noqa: F401

from parsec_server.protocol.codec import packb

URLS = {"en_US": "https://parsec.example.com/tos_en", "fr_FR": "https://parsec.example.com/tos_fr"}


async def set_tos(org: Org, tos: dict[str, str] | None) -> None:
    seen = sum(1 for e in org.server.events if e["type"] == "ORGANIZATION_TOS_UPDATED")
    r = await org.server.admin("PATCH", f"/organizations/{org.org_id}", json={"tos": tos})
    assert r.status_code == 200, r.text
    # Handshake caches drop the organization when this event comes back from PostgreSQL.
    await org.server.wait_event(
        lambda e: (
            sum(1 for x in org.server.events if x["type"] == "ORGANIZATION_TOS_UPDATED") > seen
        )
    )


async def status_of_authenticated_request(org: Org, who: object) -> int:
    try:
        await org.auth(who, "invite_list")  # type: ignore[arg-type]
    except RpcError as exc:
        return http_status(exc)
    return 200


async def test_no_tos(org: Org) -> None:
    assert await org.tos(org.alice, "tos_get") == {"status": "no_tos"}
    assert await org.tos(org.alice, "tos_accept", tos_updated_on=datetime.now().astimezone()) == {
        "status": "no_tos"
    }
    assert await status_of_authenticated_request(org, org.alice) == 200


async def test_tos_must_be_accepted(org: Org) -> None:
    bob = await org.create_user("bob")
    await set_tos(org, URLS)
    for who in (org.alice, bob):
        assert await status_of_authenticated_request(org, who) == 463
    rep = await org.tos(bob, "tos_get")
    assert rep["status"] == "ok" and rep["per_locale_urls"] == URLS
    updated_on = rep["updated_on"]
    admin_view = (await org.server.admin("GET", f"/organizations/{org.org_id}")).json()["tos"]
    assert admin_view["per_locale_urls"] == URLS

    assert await org.tos(
        bob, "tos_accept", tos_updated_on=updated_on - timedelta(microseconds=1)
    ) == {"status": "tos_mismatch"}
    assert await status_of_authenticated_request(org, bob) == 463
    assert await org.tos(bob, "tos_accept", tos_updated_on=updated_on) == {"status": "ok"}
    await org.server.wait_event(
        lambda e: e["type"] == "USER_UPDATED" and e["user_id"] == bob.user_id.hex
    )
    assert await status_of_authenticated_request(org, bob) == 200
    assert (
        await status_of_authenticated_request(org, org.alice) == 463
    )  # each user accepts for himself
    assert await org.tos(bob, "tos_accept", tos_updated_on=updated_on) == {
        "status": "ok"
    }  # idempotent

    # New terms: everybody must accept again.
    await set_tos(org, {"en_US": "https://parsec.example.com/tos_v2"})
    assert await status_of_authenticated_request(org, bob) == 463
    rep = await org.tos(bob, "tos_get")
    assert rep["updated_on"] > updated_on
    assert await org.tos(bob, "tos_accept", tos_updated_on=updated_on) == {"status": "tos_mismatch"}
    assert await org.tos(bob, "tos_accept", tos_updated_on=rep["updated_on"]) == {"status": "ok"}
    assert await status_of_authenticated_request(org, bob) == 200

    # Removing the TOS lifts the requirement.
    await set_tos(org, None)
    assert await status_of_authenticated_request(org, org.alice) == 200
    assert await org.tos(org.alice, "tos_get") == {"status": "no_tos"}


async def test_tos_from_creation_and_for_new_users(server: object) -> None:
    org = await bootstrap_org(server, tos=URLS)  # type: ignore[arg-type]
    assert await status_of_authenticated_request(org, org.alice) == 463
    updated_on = (await org.tos(org.alice, "tos_get"))["updated_on"]
    assert await org.tos(org.alice, "tos_accept", tos_updated_on=updated_on) == {"status": "ok"}
    bob = await org.create_user("bob")
    assert await status_of_authenticated_request(org, bob) == 463
    # The SSE route too.
    r = await org.server.http.get(
        f"/authenticated/{org.org_id}/events",
        headers={
            "Api-Version": "5.5",
            "Accept": "text/event-stream",
            "Authorization": f"Bearer {bob.token()}",
        },
    )
    assert r.status_code == 463


async def test_tos_route_refuses_other_commands_and_bad_bodies(org: Org) -> None:
    headers = {
        "Api-Version": "5.5",
        "Content-Type": "application/msgpack",
        "Authorization": f"Bearer {org.alice.token()}",
    }
    for body in (
        packb({"cmd": "invite_list"}),
        packb({"cmd": "tos_accept"}),
        packb({"cmd": "tos_accept", "tos_updated_on": "yesterday"}),
    ):
        r = await org.server.post(f"/authenticated/{org.org_id}/tos", body, headers)
        assert r.status_code == 415


async def test_revoked_user_cannot_use_tos_route(org: Org) -> None:
    bob = await org.create_user("bob")
    await org.revoke(bob)
    with pytest.raises(RpcError) as exc:
        await org.tos(bob, "tos_get")
    assert http_status(exc.value) == 461
