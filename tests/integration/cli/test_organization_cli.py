"""`parsec-server organization list|create|delete` and `user list|freeze|unfreeze` against a real
PostgreSQL database and a real S3 server (moto's, on loopback), next to a server that sees their
effects (same back end as the administration API)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import nacl.signing
from core_helpers import (
    HttpError,
    Org,
    Server,
    bootstrap_token_from_url,
    new_user_certs,
    running_server,
)
from test_realm import new_realm, sql
from test_realm_ops import _fill, bucket, cli, error_line, objects, s3_endpoint  # noqa: F401

from parsec_server.cli.options import parse_blockstore


async def _bootstrap_with(server: Server, organization_id: str, token: bytes | None) -> Org:
    root_key = nacl.signing.SigningKey.generate()
    certs = new_user_certs(None, root_key, "alice", profile="ADMIN")
    rep = await server.bootstrap_req(organization_id, certs, root_key, token)
    assert rep == {"status": "ok"}, rep
    from core_helpers import Device

    alice = Device(
        server,
        organization_id,
        certs.user_id,
        certs.device_id,
        certs.signing_key,
        certs.human,
        "ADMIN",
    )
    return Org(server, organization_id, root_key, alice, certs)


async def test_create_list_and_freeze(db_url: str) -> None:
    org_id = f"Cli{uuid.uuid4().hex[:8]}"
    created = cli(
        "organization",
        "create",
        org_id,
        "--server-addr",
        "parsec3://parsec.example.com",
        "--active-users-limit",
        "5",
        "--db",
        db_url,
        "--json",
    )
    assert created.returncode == 0, created.stderr
    doc = json.loads(created.stdout)
    assert doc["bootstrap_url"].startswith(f"parsec3://parsec.example.com/{org_id}?")
    assert doc["bootstrap_url_as_http_redirection"].startswith(
        "https://parsec.example.com/redirect/"
    )
    token = bootstrap_token_from_url(doc["bootstrap_url"])
    assert token is not None and len(token) == 16

    async with running_server(db_url) as server:
        org = await _bootstrap_with(server, org_id, token)
        got = await server.admin("GET", f"/organizations/{org_id}")
        assert got.json()["active_users_limit"] == 5

        again = cli(
            "organization", "create", org_id, "--server-addr", "parsec3://x", "--db", db_url
        )
        assert again.returncode == 15 and "already exists" in error_line(again)
        bad = cli(
            "organization", "create", "no spaces", "--server-addr", "parsec3://x", "--db", db_url
        )
        assert bad.returncode == 2

        listed = cli("organization", "list", "--json", "--db", db_url)
        assert listed.returncode == 0, listed.stderr
        (mine,) = [o for o in json.loads(listed.stdout) if o["organization_id"] == org_id]
        assert mine["is_bootstrapped"] and not mine["is_expired"] and mine["active_users"] == 1

        users = cli("user", "list", "--organization", org_id, "--db", db_url, "--json")
        assert users.returncode == 0, users.stderr
        assert json.loads(users.stdout) == [
            {
                "user_id": org.alice.user_id.hex,
                "user_email": org.alice.human.email,
                "user_name": org.alice.human.label,
                "frozen": False,
            }
        ]

        assert (await org.alice.rpc("ping", ping="x"))["status"] == "ok"
        frozen = cli(
            "user",
            "freeze",
            "--organization",
            org_id,
            "--email",
            org.alice.human.email,
            "--db",
            db_url,
        )
        assert frozen.returncode == 0, frozen.stderr
        assert frozen.stdout.strip().endswith(": frozen")
        await _settle(server)
        try:
            await org.alice.rpc("ping", ping="x")
            raise AssertionError("a frozen user was served")
        except HttpError as exc:
            assert exc.status_code == 462
        thawed = cli(
            "user",
            "unfreeze",
            "--organization",
            org_id,
            "--user-id",
            org.alice.user_id.hex,
            "--db",
            db_url,
        )
        assert thawed.returncode == 0, thawed.stderr
        await _settle(server)
        assert (await org.alice.rpc("ping", ping="x"))["status"] == "ok"

        nobody = cli(
            "user",
            "freeze",
            "--organization",
            org_id,
            "--user-id",
            uuid.uuid4().hex,
            "--db",
            db_url,
        )
        assert nobody.returncode == 14 and "User not found" in error_line(nobody)
        both = cli("user", "freeze", "--organization", org_id, "--db", db_url)
        assert both.returncode == 2


async def _settle(server: Server) -> None:
    """The server's listener hears the CLI's NOTIFY (another process) within a moment."""
    import asyncio

    for _ in range(50):
        await asyncio.sleep(0.05)


async def test_delete_organizations(db_url: str, bucket: tuple[Any, str, str]) -> None:  # noqa: F811
    s3, name, spec = bucket
    async with running_server(db_url, blockstore=parse_blockstore((spec,))) as server:
        blocks: dict[uuid.UUID, dict[uuid.UUID, bytes]] = {}
        doomed = await server.bootstrap_org()
        await _fill(doomed.alice, await new_realm(doomed.alice), b"doomed", blocks)
        kept = await server.bootstrap_org()
        await _fill(kept.alice, await new_realm(kept.alice), b"kept", blocks)
        old = await server.bootstrap_org()
        await _fill(old.alice, await new_realm(old.alice), b"old", blocks)
        recent = await server.bootstrap_org()
        for org, days in ((old, 40), (recent, 10)):
            await sql(
                server,
                "UPDATE organization SET is_expired = TRUE, expired_on = now() - $2::int * "
                "interval '1 day' WHERE organization_id = $1",
                org.organization_id,
                days,
            )
        before = objects(s3, name)
        assert len(before) == 6
        db = ["--db", db_url, "--blockstore", spec]

        dry = cli("organization", "delete", doomed.organization_id, "--dry-run", *db)
        assert dry.returncode == 0, dry.stderr
        assert (
            "NOT expired" in dry.stdout and "2 block(s)" in dry.stdout and "Dry run" in dry.stdout
        )
        unconfirmed = cli("organization", "delete", doomed.organization_id, *db)
        assert unconfirmed.returncode == 15 and "--yes" in error_line(unconfirmed)
        assert objects(s3, name) == before

        done = cli("organization", "delete", doomed.organization_id, "--yes", *db)
        assert done.returncode == 0, done.stderr
        assert not any(k.startswith(doomed.organization_id + "/") for k in objects(s3, name))
        assert len(objects(s3, name)) == 4
        for table in ("organization", "user_", "device", "realm", "certificate", "human"):
            rows = await sql(
                server,
                f"SELECT count(*) AS n FROM {table} t WHERE "
                + (
                    "t.organization_id = $1"
                    if table == "organization"
                    else "t.organization IN (SELECT id FROM organization WHERE organization_id = $1)"
                ),
                doomed.organization_id,
            )
            assert rows[0]["n"] == 0, table
        # Its devices are refused by the running server (no organization any more).
        await _settle(server)
        try:
            await doomed.alice.rpc("ping", ping="x")
            raise AssertionError("a deleted organization was served")
        except HttpError as exc:
            assert exc.status_code == 404
        assert (await kept.alice.rpc("ping", ping="x"))["status"] == "ok"

        unknown = cli("organization", "delete", doomed.organization_id, "--yes", *db)
        assert unknown.returncode == 14 and "not found" in error_line(unknown)

        expired = cli("organization", "delete", "--expired-older-than", "30", "--dry-run", *db)
        assert expired.returncode == 0, expired.stderr
        assert old.organization_id in expired.stdout
        assert (
            recent.organization_id not in expired.stdout
            and kept.organization_id not in expired.stdout
        )
        gone = cli("organization", "delete", "--expired-older-than", "30", "--yes", *db)
        assert gone.returncode == 0, gone.stderr
        left = objects(s3, name)
        assert {k.split("/")[0] for k in left} == {kept.organization_id}
        orgs = {
            r["organization_id"]
            for r in await sql(server, "SELECT organization_id FROM organization")
        }
        assert kept.organization_id in orgs and recent.organization_id in orgs
        assert old.organization_id not in orgs

        # Blocks left in the store by an interrupted deletion are found and removed by a rerun.
        ghost = f"Ghost{uuid.uuid4().hex[:6]}"
        s3.put_object(Bucket=name, Key=f"{ghost}/{uuid.uuid4()}", Body=b"x")
        rerun = cli("organization", "delete", ghost, "--yes", *db)
        assert rerun.returncode == 0, rerun.stderr
        assert "not in the database; 1 block(s) left" in rerun.stdout
        assert not any(k.startswith(ghost) for k in objects(s3, name))

        nothing = cli("organization", "delete", *db)
        assert nothing.returncode == 2


async def test_delete_organization_with_blocks_in_postgresql(db_url: str) -> None:
    async with running_server(db_url) as server:
        blocks: dict[uuid.UUID, dict[uuid.UUID, bytes]] = {}
        doomed, kept = await server.bootstrap_org(), await server.bootstrap_org()
        await _fill(doomed.alice, await new_realm(doomed.alice), b"doomed", blocks)
        await _fill(kept.alice, await new_realm(kept.alice), b"kept", blocks)
        res = cli("organization", "delete", doomed.organization_id, "--yes", "--db", db_url)
        assert res.returncode == 0, res.stderr
        assert "(2 block(s) removed)" in res.stdout
        rows = await sql(server, "SELECT DISTINCT organization_id FROM block_data")
        assert [r["organization_id"] for r in rows] == [kept.organization_id]
