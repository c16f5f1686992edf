"""The official server's operator commands: `list_deletable_realms`, `delete_realm`,
`export_realm`, `human_accesses`, run as subprocesses against a real PostgreSQL database and a real
S3 server (moto's, on loopback) that an in-process server filled through the protocol."""

from __future__ import annotations

import datetime
import json
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from core_helpers import Device, Org, Server, running_server
from moto.server import ThreadedMotoServer
from test_realm import new_realm, share, sql

from parsec_server.cli.options import parse_blockstore
from parsec_server.cli.realm_ops import EXPORT_MAGIC
from parsec_server.protocol.codec import now

EXE = [sys.executable, "-m", "parsec_server.cli.main"]
REGION, KEY, SECRET = "us-east-1", "ops-key", "ops-secret"


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARSEC_")}
    return subprocess.run(
        [*EXE, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )


def files(directory: Path, pattern: str) -> list[Path]:
    return sorted(directory.glob(pattern))


def error_line(res: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in res.stderr, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error: "), res.stderr
    return lines[-1]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_endpoint: str) -> tuple[Any, str, str]:
    """(boto3 client, bucket name, --blockstore value) of a new bucket."""
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name=REGION,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
    )
    name = f"ops-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    spec = f"s3:{s3_endpoint.replace(':', chr(92) + ':')}:{REGION}:{name}:{KEY}:{SECRET}"
    return s3, name, spec


def objects(s3: Any, bucket: str) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


@dataclass
class World:
    server: Server
    org: Org
    bob: Device
    kept: uuid.UUID  # alice's realm, in use
    planned: uuid.UUID  # deletion date passed
    orphaned: uuid.UUID  # bob's only, bob revoked
    blocks: dict[uuid.UUID, dict[uuid.UUID, bytes]]  # realm -> block id -> data
    vlobs: dict[uuid.UUID, list[bytes]]


async def _fill(alice: Device, realm_id: uuid.UUID, tag: bytes, world_blocks: Any) -> list[bytes]:
    blobs = []
    for i in range(2):
        blob = tag + b"-vlob-%d" % i
        rep = await alice.rpc(
            "vlob_create",
            realm_id=realm_id,
            vlob_id=uuid.uuid4(),
            key_index=1,
            timestamp=now(),
            blob=blob,
        )
        assert rep == {"status": "ok"}, rep
        blobs.append(blob)
        block_id, data = uuid.uuid4(), tag + b"-block-%d" % i + os.urandom(64)
        rep = await alice.rpc(
            "block_create", block_id=block_id, realm_id=realm_id, key_index=1, block=data
        )
        assert rep == {"status": "ok"}, rep
        world_blocks.setdefault(realm_id, {})[block_id] = data
    return blobs


@pytest.fixture
async def world(db_url: str, bucket: tuple[Any, str, str]) -> AsyncIterator[World]:
    _s3, _name, spec = bucket
    async with running_server(db_url, blockstore=parse_blockstore((spec,))) as server:
        org = await server.bootstrap_org()
        alice = org.alice
        bob = await alice.create_user("bob")
        blocks: dict[uuid.UUID, dict[uuid.UUID, bytes]] = {}
        vlobs: dict[uuid.UUID, list[bytes]] = {}
        kept = await new_realm(alice)
        vlobs[kept] = await _fill(alice, kept, b"kept", blocks)
        planned = await new_realm(alice)
        assert await share(alice, planned, bob.user_id, "READER") == {"status": "ok"}
        vlobs[planned] = await _fill(alice, planned, b"planned", blocks)
        orphaned = await new_realm(bob)
        vlobs[orphaned] = await _fill(bob, orphaned, b"orphaned", blocks)
        assert await alice.revoke(bob.user_id) == {"status": "ok"}
        # The owner planned the deletion long ago: the date has passed.
        await sql(
            server,
            "UPDATE realm SET status = 'DELETION_PLANNED', deletion_date = now() - interval '1 day' "
            "WHERE realm_id = $1",
            planned,
        )
        # Everything was written an hour ago (an export's snapshot is at least 320 s old).
        for table, column in (
            ("certificate", "certified_on"),
            ("vlob_atom", "created_on"),
            ("block", "created_on"),
            ("realm_keys_bundle", "certified_on"),
        ):
            await sql(server, f"UPDATE {table} SET {column} = {column} - interval '1 hour'")
        yield World(server, org, bob, kept, planned, orphaned, blocks, vlobs)


def _org_args(world: World, db_url: str) -> list[str]:
    return ["--organization", world.org.organization_id, "--db", db_url]


async def test_list_and_delete_realms(
    world: World, db_url: str, bucket: tuple[Any, str, str], tmp_path: Path
) -> None:
    s3, name, spec = bucket
    org_id = world.org.organization_id
    listed = cli("list_deletable_realms", *_org_args(world, db_url), "--json")
    assert listed.returncode == 0, listed.stderr
    kinds = {uuid.UUID(c["realm_id"]): c["kind"] for c in json.loads(listed.stdout)}
    assert kinds == {world.planned: "deletion_planned", world.orphaned: "orphaned"}
    human = cli("list_deletable_realms", *_org_args(world, db_url))
    assert "Found 2 deletion candidate(s)" in human.stdout and world.planned.hex in human.stdout

    # A realm in use is refused.
    refused = cli("delete_realm", *_org_args(world, db_url), "--realm", world.kept.hex, "--yes")
    assert refused.returncode == 15 and "neither orphaned nor planned" in error_line(refused)
    unknown = cli("delete_realm", *_org_args(world, db_url), "--realm", uuid.uuid4().hex, "--yes")
    assert unknown.returncode == 14 and "not found" in error_line(unknown)

    before = objects(s3, name)
    assert len(before) == 6
    dump = tmp_path / "blocks.txt"
    args = [*_org_args(world, db_url), "--realm", world.planned.hex, "--blockstore", spec]
    dry = cli("delete_realm", *args, "--dry-run", "--dump-realm-blocks", str(dump))
    assert dry.returncode == 0, dry.stderr
    assert "Dry run" in dry.stdout and "2 vlob version(s), 2 block(s)" in dry.stdout
    assert set(dump.read_text().split()) == {f"{org_id}/{b}" for b in world.blocks[world.planned]}
    assert objects(s3, name) == before  # nothing deleted

    unconfirmed = cli("delete_realm", *args)  # stdin is not a terminal, no --yes
    assert unconfirmed.returncode == 15 and "--yes" in error_line(unconfirmed)

    done = cli("delete_realm", *args, "--yes")
    assert done.returncode == 0, done.stderr
    left = objects(s3, name)
    assert len(left) == 4
    assert not any(str(b) in key for b in world.blocks[world.planned] for key in left)
    rows = await sql(
        world.server,
        "SELECT r.status, (SELECT count(*) FROM vlob_atom v WHERE v.realm = r.id) AS vlobs, "
        "(SELECT count(*) FROM block b WHERE b.realm = r.id) AS blocks, "
        "(SELECT count(*) FROM certificate c WHERE c.realm = r.id) AS certs "
        "FROM realm r WHERE r.realm_id = $1",
        world.planned,
    )
    assert rows[0]["status"] == "DELETED" and rows[0]["vlobs"] == rows[0]["blocks"] == 0
    assert rows[0]["certs"] > 0  # certificates stay
    # The server answers realm_deleted; the other realms are untouched.
    alice = world.org.alice
    rep = await alice.rpc("vlob_poll_changes", realm_id=world.planned, last_checkpoint=0)
    assert rep["status"] == "realm_deleted"
    rep = await alice.rpc("vlob_poll_changes", realm_id=world.kept, last_checkpoint=0)
    assert rep["status"] == "ok" and len(rep["changes"]) == 2

    again = cli("delete_realm", *args, "--yes")
    assert again.returncode == 15 and "already deleted" in error_line(again)
    listed = cli("list_deletable_realms", *_org_args(world, db_url), "--json")
    assert [c["realm_id"] for c in json.loads(listed.stdout)] == [world.orphaned.hex]


async def test_export_realm_is_checkable_offline(
    world: World, db_url: str, bucket: tuple[Any, str, str], tmp_path: Path
) -> None:
    _s3, _name, spec = bucket
    org_id = world.org.organization_id
    res = cli(
        "export_realm",
        str(tmp_path),
        *_org_args(world, db_url),
        "--realm",
        world.kept.hex,
        "--blockstore",
        spec,
    )
    assert res.returncode == 0, res.stderr
    (path,) = files(tmp_path, f"parsec-export-{org_id}-realm-{world.kept.hex}-*.sqlite")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert not files(tmp_path, ".*partial")

    con = sqlite3.connect(path)
    info = con.execute(
        "SELECT magic, version, organization_id, realm_id, root_verify_key, snapshot_timestamp, "
        "certificates_export_done, vlobs_export_done, blocks_metadata_export_done, "
        "blocks_data_export_done, blocks_total_bytes FROM info"
    ).fetchone()
    assert info[:5] == (
        EXPORT_MAGIC,
        1,
        org_id,
        world.kept.bytes,
        bytes(world.org.root_key.verify_key),
    )
    snapshot = datetime.datetime.fromtimestamp(info[5] / 1e6, datetime.UTC)
    assert datetime.timedelta(seconds=320) <= now() - snapshot < datetime.timedelta(seconds=400)
    assert info[6:10] == (1, 1, 1, 1)
    assert info[10] == sum(len(d) for d in world.blocks[world.kept].values())

    # Every certificate is the server's signed one, in order.
    db_certs = await sql(
        world.server,
        "SELECT c.topic, c.certificate FROM certificate c JOIN organization o ON o.id = c.organization "
        "LEFT JOIN realm r ON r.id = c.realm WHERE o.organization_id = $1 "
        "AND (c.topic = 'common' OR r.realm_id = $2) ORDER BY c.certified_on, c.priority, c.id",
        org_id,
        world.kept,
    )
    common = [bytes(r["certificate"]) for r in db_certs if r["topic"] == "common"]
    realm = [bytes(r["certificate"]) for r in db_certs if r["topic"] == "realm"]
    assert [
        r[0] for r in con.execute("SELECT certificate FROM common_certificate ORDER BY _id")
    ] == common
    assert [
        r[0] for r in con.execute("SELECT certificate FROM realm_certificate ORDER BY _id")
    ] == realm
    assert len(common) >= 4 and len(realm) >= 2  # users, devices, revocation; role, rotation

    assert {r[0] for r in con.execute("SELECT blob FROM vlob_atom")} == set(world.vlobs[world.kept])
    authors = {r[0] for r in con.execute("SELECT author FROM vlob_atom")}
    assert authors == {world.org.alice.device_id.bytes}
    exported = dict(
        con.execute(
            "SELECT b.block_id, d.data FROM block b JOIN block_data d ON d.block = b.sequential_id"
        )
    )
    assert exported == {k.bytes: v for k, v in world.blocks[world.kept].items()}
    assert con.execute("SELECT key_index, keys_bundle FROM realm_keys_bundle").fetchall() == [
        (1, b"bundle1")
    ]
    con.close()

    exists = cli(
        "export_realm",
        str(path),
        *_org_args(world, db_url),
        "--realm",
        world.kept.hex,
        "--blockstore",
        spec,
    )
    assert exists.returncode == 2 and "already exists" in exists.stderr
    future = cli(
        "export_realm",
        str(tmp_path / "x.sqlite"),
        *_org_args(world, db_url),
        "--realm",
        world.kept.hex,
        "--snapshot-timestamp",
        "2999-01-01T00:00:00Z",
    )
    assert future.returncode == 2 and "--snapshot-timestamp" in future.stderr
    missing = cli(
        "export_realm",
        str(tmp_path / "y.sqlite"),
        *_org_args(world, db_url),
        "--realm",
        world.kept.hex,  # blocks are in S3, not in PostgreSQL
    )
    assert missing.returncode == 16 and "missing from the blockstore" in error_line(missing)
    assert not files(tmp_path, "y.sqlite") and not files(tmp_path, ".*partial")


async def test_human_accesses(world: World, db_url: str) -> None:
    res = cli("human_accesses", *_org_args(world, db_url), "--json")
    assert res.returncode == 0, res.stderr
    humans = {h["human_email"]: h for h in json.loads(res.stdout)}
    assert len(humans) == 2
    (bob,) = humans[world.bob.human.email]["users"]
    assert bob["user_id"] == world.bob.user_id.hex and bob["revoked_on"] is not None
    assert [e["role"] for e in bob["realms"][world.planned.hex]] == ["READER"]
    assert [e["role"] for e in bob["realms"][world.orphaned.hex]] == ["OWNER"]
    (alice,) = humans[world.org.alice.human.email]["users"]
    assert alice["current_profile"] == "ADMIN" and set(alice["realms"]) == {
        world.kept.hex,
        world.planned.hex,
    }

    text = cli("human_accesses", *_org_args(world, db_url), "--filter", "bob")
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("Found 1 result(s)")
    assert f"User {world.bob.user_id.hex} (REVOKED)" in text.stdout
    assert ": Access READER granted" in text.stdout and ": Revoked" in text.stdout

    nope = cli("human_accesses", "--organization", "NoSuchOrg", "--db", db_url)
    assert nope.returncode == 14 and "not found" in error_line(nope)


async def test_delete_realm_with_blocks_in_postgresql(db_url: str) -> None:
    """The default blockstore: the blocks' data rows (`block_data`) go too, the other realm's stay."""
    async with running_server(db_url) as server:
        org = await server.bootstrap_org()
        alice = org.alice
        blocks: dict[uuid.UUID, dict[uuid.UUID, bytes]] = {}
        doomed, kept = await new_realm(alice), await new_realm(alice)
        await _fill(alice, doomed, b"doomed", blocks)
        await _fill(alice, kept, b"kept", blocks)
        await sql(
            server,
            "UPDATE realm SET status = 'DELETION_PLANNED', deletion_date = now() - interval '1 s' "
            "WHERE realm_id = $1",
            doomed,
        )
        res = cli(
            "delete_realm",
            "--organization",
            org.organization_id,
            "--realm",
            doomed.hex,
            "--db",
            db_url,
            "--yes",
        )
        assert res.returncode == 0, res.stderr
        left = {r["block_id"] for r in await sql(server, "SELECT block_id FROM block_data")}
        assert left == set(blocks[kept])
        for block_id, data in blocks[kept].items():
            rep = await alice.rpc("block_read", block_id=block_id, realm_id=kept)
            assert rep["status"] == "ok" and rep["block"] == data


async def test_delete_realm_interrupted_by_the_blockstore_is_finished_by_a_rerun(
    world: World, db_url: str, bucket: tuple[Any, str, str], tmp_path: Path
) -> None:
    s3, name, spec = bucket
    org_id = world.org.organization_id
    broken = spec.replace(f":{name}:", ":no-such-bucket:")
    args = [*_org_args(world, db_url), "--realm", world.orphaned.hex, "--yes"]
    res = cli("delete_realm", *args, "--blockstore", broken, cwd=tmp_path)
    assert res.returncode == 16, res.stderr
    line = error_line(res)
    assert "2 block(s) could not be deleted" in line and "rerun" in line
    (listing,) = files(tmp_path, "parsec-blocks-left-*.txt")
    expected = {f"{org_id}/{b}" for b in world.blocks[world.orphaned]}
    assert set(listing.read_text().split()) == expected
    # The realm is deleted for clients already; its objects are still in the bucket.
    rep = await world.org.alice.rpc("vlob_poll_changes", realm_id=world.orphaned, last_checkpoint=0)
    assert rep["status"] == "realm_deleted"
    assert expected <= objects(s3, name)

    dry = cli("delete_realm", *args, "--blockstore", spec, "--dry-run")
    assert dry.returncode == 0 and "interrupted deletion left" in dry.stdout
    rerun = cli("delete_realm", *args, "--blockstore", spec)
    assert rerun.returncode == 0, rerun.stderr
    assert not expected & objects(s3, name)
    rows = await sql(
        world.server,
        "SELECT count(*) AS n FROM block b JOIN realm r ON r.id = b.realm WHERE r.realm_id = $1",
        world.orphaned,
    )
    assert rows[0]["n"] == 0
    again = cli("delete_realm", *args, "--blockstore", spec)
    assert again.returncode == 15 and "already deleted" in error_line(again)
