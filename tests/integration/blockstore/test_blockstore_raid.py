"""RAID0/1/5 groups of real stores: S3 buckets on moto's server and PostgreSQL (protocol.md §6.2).

A node is "down" when its configuration points at a loopback port where nothing listens (connection
refused), or at a server that accepts connections and never answers ("hung").
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from parsec_server.blockstore import (
    BlockNotFound,
    Blockstore,
    BlockstoreUnavailable,
    build_blockstore,
)
from parsec_server.blockstore.raid import Raid1Blockstore, Raid5Blockstore, raid5_split
from parsec_server.blockstore.s3 import S3Blockstore
from parsec_server.cli.options import parse_blockstore
from parsec_server.config import BlockstoreConfig
from parsec_server.storage.db import Database

ORG = "CoolOrg"
MiB = 1024 * 1024
SIZES = [0, 1, 2, 3, 4, 5, 7, 1000, 4099, MiB]

StartRaid = Callable[..., Awaitable[Blockstore]]


@pytest.fixture
async def start_raid(db: Database) -> AsyncIterator[StartRaid]:
    """`await start_raid("RAID5", [node configs])`: a started group, stopped after the test."""
    started: list[Blockstore] = []

    async def start(kind: str, nodes: list[BlockstoreConfig]) -> Blockstore:
        store = build_blockstore(BlockstoreConfig(kind, nodes=tuple(nodes)), db)
        await store.start()
        started.append(store)
        return store

    yield start
    for store in started:
        await store.stop()


@pytest.fixture
def dead_node(
    make_s3_config: Callable[..., BlockstoreConfig], dead_endpoint: str
) -> BlockstoreConfig:
    return make_s3_config(endpoint=dead_endpoint, bucket="dead")


def _objects(s3_admin: Any, config: BlockstoreConfig) -> dict[str, bytes]:
    """Every object of the node's bucket, read behind the blockstore's back."""
    listing = s3_admin.list_objects_v2(Bucket=config.s3_bucket).get("Contents", [])
    return {
        o["Key"]: s3_admin.get_object(Bucket=config.s3_bucket, Key=o["Key"])["Body"].read()
        for o in listing
    }


async def _pg_chunk(db: Database, block_id: uuid.UUID) -> bytes | None:
    data: bytes | None = await db.fetchval(
        "SELECT data FROM block_data WHERE organization_id = $1 AND block_id = $2", ORG, block_id
    )
    return data


# --- RAID0 ---------------------------------------------------------------------------------------


async def test_raid0_roundtrip_and_distribution(
    start_raid: StartRaid, make_s3_config: Callable[..., BlockstoreConfig], s3_admin: Any
) -> None:
    nodes = [make_s3_config() for _ in range(3)]
    raid = await start_raid("RAID0", nodes)
    blocks = {uuid.uuid4(): os.urandom(k * 37) for k in range(30)}
    big = uuid.uuid4()
    blocks[big] = os.urandom(MiB)
    for block_id, data in blocks.items():
        await raid.create(ORG, block_id, data)
    for block_id, data in blocks.items():
        assert await raid.read(ORG, block_id) == data
    # Each block whole on node block_id.int % 3 and nowhere else.
    contents = [_objects(s3_admin, node) for node in nodes]
    for block_id, data in blocks.items():
        key = f"{ORG}/{block_id}"
        for i, objects in enumerate(contents):
            if i == block_id.int % 3:
                assert objects[key] == data
            else:
                assert key not in objects
    assert all(contents)  # 31 random ids: every node got some
    assert [item async for item in raid.iter_blocks()] == sorted((ORG, b) for b in blocks)


async def test_raid0_missing_block(
    start_raid: StartRaid, make_s3_config: Callable[..., BlockstoreConfig]
) -> None:
    raid = await start_raid("RAID0", [make_s3_config(), make_s3_config()])
    with pytest.raises(BlockNotFound):
        await raid.read(ORG, uuid.uuid4())


async def test_raid0_node_down(
    start_raid: StartRaid,
    make_s3_config: Callable[..., BlockstoreConfig],
    dead_node: BlockstoreConfig,
) -> None:
    nodes = [make_s3_config() for _ in range(3)]
    healthy = await start_raid("RAID0", nodes)
    blocks = {uuid.uuid4(): os.urandom(100) for _ in range(12)}
    for block_id, data in blocks.items():
        await healthy.create(ORG, block_id, data)
    degraded = await start_raid("RAID0", [nodes[0], dead_node, nodes[2]])
    for block_id, data in blocks.items():
        if block_id.int % 3 == 1:
            with pytest.raises(BlockstoreUnavailable) as exc_info:
                await degraded.read(ORG, block_id)
            assert not isinstance(exc_info.value, BlockNotFound)
        else:
            assert await degraded.read(ORG, block_id) == data
    # A listing without a node's blocks would be wrong: it fails.
    with pytest.raises(BlockstoreUnavailable):
        [item async for item in degraded.iter_blocks()]


# --- RAID1 ---------------------------------------------------------------------------------------


async def test_raid1_roundtrip_mirrors(
    start_raid: StartRaid,
    make_s3_config: Callable[..., BlockstoreConfig],
    s3_admin: Any,
    db: Database,
) -> None:
    s3_nodes = [make_s3_config(), make_s3_config()]
    raid = await start_raid("RAID1", [BlockstoreConfig("POSTGRESQL"), *s3_nodes])
    for size in (0, 10, MiB):
        block_id, data = uuid.uuid4(), os.urandom(size)
        await raid.create(ORG, block_id, data)
        assert await raid.read(ORG, block_id) == data
        assert await _pg_chunk(db, block_id) == data
        for node in s3_nodes:
            assert _objects(s3_admin, node)[f"{ORG}/{block_id}"] == data


@pytest.mark.parametrize("down", [0, 1, 2])
async def test_raid1_one_node_down(
    start_raid: StartRaid,
    make_s3_config: Callable[..., BlockstoreConfig],
    dead_node: BlockstoreConfig,
    down: int,
) -> None:
    nodes = [BlockstoreConfig("POSTGRESQL"), make_s3_config(), make_s3_config()]
    healthy = await start_raid("RAID1", nodes)
    block_id, data = uuid.uuid4(), os.urandom(5000)
    await healthy.create(ORG, block_id, data)

    degraded_nodes = list(nodes)
    degraded_nodes[down] = dead_node
    degraded = await start_raid("RAID1", degraded_nodes)
    # Create: accepted on the live mirrors (a degraded write, logged).
    written = uuid.uuid4()
    await degraded.create(ORG, written, b"data")
    # Read: any mirror that answers.
    assert await degraded.read(ORG, block_id) == data
    assert await degraded.read(ORG, block_id) == data
    assert await degraded.read(ORG, written) == b"data"
    # Listing: the live mirrors have every block.
    listed = [item async for item in degraded.iter_blocks()]
    assert listed == sorted([(ORG, block_id), (ORG, written)])
    # Once the node is back, the block it lacks is read from the others.
    assert await healthy.read(ORG, written) == b"data"


async def test_raid1_reads_failed_node_last(
    start_raid: StartRaid,
    make_s3_config: Callable[..., BlockstoreConfig],
    dead_node: BlockstoreConfig,
) -> None:
    raid = await start_raid("RAID1", [dead_node, make_s3_config(), make_s3_config()])
    assert isinstance(raid, Raid1Blockstore)
    assert raid.read_order() == [0, 1, 2]
    block_id = uuid.uuid4()
    with pytest.raises(BlockstoreUnavailable) as exc_info:
        await raid.read(ORG, block_id)
    # Nodes 1 and 2 lack it, but node 0 might have had it: a failure, not "no such block".
    assert not isinstance(exc_info.value, BlockNotFound)
    assert raid.read_order() == [1, 2, 0]
    await raid.nodes[1].create(ORG, block_id, b"on node 1 only")
    assert await raid.read(ORG, block_id) == b"on node 1 only"
    assert raid.read_order() == [1, 2, 0]


async def test_raid1_block_missing_on_some_nodes(
    start_raid: StartRaid,
    make_s3_config: Callable[..., BlockstoreConfig],
    s3_admin: Any,
    dead_node: BlockstoreConfig,
) -> None:
    nodes = [make_s3_config(), make_s3_config()]
    raid = await start_raid("RAID1", nodes)
    block_id = uuid.uuid4()
    await raid.create(ORG, block_id, b"data")
    s3_admin.delete_object(Bucket=nodes[0].s3_bucket, Key=f"{ORG}/{block_id}")
    assert await raid.read(ORG, block_id) == b"data"  # node 0 lacks it, node 1 has it
    # Missing on node 0 and node 1 down: the store failed (not "no such block").
    degraded = await start_raid("RAID1", [nodes[0], dead_node])
    with pytest.raises(BlockstoreUnavailable) as exc_info:
        await degraded.read(ORG, block_id)
    assert not isinstance(exc_info.value, BlockNotFound)
    # Missing everywhere.
    await raid.delete(ORG, block_id)
    with pytest.raises(BlockNotFound):
        await raid.read(ORG, block_id)


# --- RAID5 ---------------------------------------------------------------------------------------


@pytest.fixture
def raid5_nodes(make_s3_config: Callable[..., BlockstoreConfig]) -> list[BlockstoreConfig]:
    """Mixed group: PostgreSQL holds data chunk 0, three buckets the others and the parity."""
    return [BlockstoreConfig("POSTGRESQL"), make_s3_config(), make_s3_config(), make_s3_config()]


async def test_raid5_roundtrip_and_layout(
    start_raid: StartRaid, raid5_nodes: list[BlockstoreConfig], s3_admin: Any, db: Database
) -> None:
    raid = await start_raid("RAID5", raid5_nodes)
    for size in SIZES:
        block_id, data = uuid.uuid4(), os.urandom(size)
        await raid.create(ORG, block_id, data)
        assert await raid.read(ORG, block_id) == data
        # payload = u32 BE length || block || zero padding, in 3 equal chunks, then their XOR.
        chunk_len = -(-(4 + size) // 3)
        payload = size.to_bytes(4, "big") + data + bytes(3 * chunk_len - 4 - size)
        chunks = [payload[k * chunk_len : (k + 1) * chunk_len] for k in range(3)]
        parity = bytes(a ^ b ^ c for a, b, c in zip(*chunks, strict=True))
        assert await _pg_chunk(db, block_id) == chunks[0]
        key = f"{ORG}/{block_id}"
        assert _objects(s3_admin, raid5_nodes[1])[key] == chunks[1]
        assert _objects(s3_admin, raid5_nodes[2])[key] == chunks[2]
        assert _objects(s3_admin, raid5_nodes[3])[key] == parity


@pytest.mark.parametrize("down", [0, 1, 2, 3])
async def test_raid5_any_single_node_down(
    start_raid: StartRaid,
    raid5_nodes: list[BlockstoreConfig],
    dead_node: BlockstoreConfig,
    down: int,
) -> None:
    healthy = await start_raid("RAID5", raid5_nodes)
    blocks = {uuid.uuid4(): os.urandom(size) for size in (0, 5, 4099, MiB)}
    for block_id, data in blocks.items():
        await healthy.create(ORG, block_id, data)

    degraded_nodes = list(raid5_nodes)
    degraded_nodes[down] = dead_node
    degraded = await start_raid("RAID5", degraded_nodes)
    for _ in range(2):  # the second time the dead node is known as such
        for block_id, data in blocks.items():
            assert await degraded.read(ORG, block_id) == data
    orphan = uuid.uuid4()
    with pytest.raises(BlockstoreUnavailable) as exc_info:
        await degraded.create(ORG, orphan, b"data")
    assert not isinstance(exc_info.value, BlockNotFound)
    assert f"node {down}" in str(exc_info.value)
    # Listing: every block (and the chunks the failed create left, never referenced by metadata).
    listed = [item async for item in degraded.iter_blocks()]
    assert listed == sorted([(ORG, orphan), *((ORG, b) for b in blocks)])


@pytest.mark.parametrize("missing", [0, 1, 2, 3])
async def test_raid5_any_single_chunk_missing(
    start_raid: StartRaid,
    raid5_nodes: list[BlockstoreConfig],
    db: Database,
    s3_admin: Any,
    missing: int,
) -> None:
    raid = await start_raid("RAID5", raid5_nodes)
    block_id, data = uuid.uuid4(), os.urandom(MiB + 3)
    await raid.create(ORG, block_id, data)
    if missing == 0:
        await db.fetchval("DELETE FROM block_data WHERE block_id = $1", block_id)
    else:
        s3_admin.delete_object(Bucket=raid5_nodes[missing].s3_bucket, Key=f"{ORG}/{block_id}")
    assert await raid.read(ORG, block_id) == data


async def test_raid5_two_nodes_down_or_missing(
    start_raid: StartRaid,
    raid5_nodes: list[BlockstoreConfig],
    make_s3_config: Callable[..., BlockstoreConfig],
    dead_endpoint: str,
    s3_admin: Any,
) -> None:
    healthy = await start_raid("RAID5", raid5_nodes)
    block_id = uuid.uuid4()
    await healthy.create(ORG, block_id, b"data" * 100)
    with pytest.raises(BlockNotFound):
        await healthy.read(ORG, uuid.uuid4())

    dead = [make_s3_config(endpoint=dead_endpoint, bucket=f"dead{i}") for i in range(2)]
    degraded = await start_raid("RAID5", [raid5_nodes[0], dead[0], raid5_nodes[2], dead[1]])
    with pytest.raises(BlockstoreUnavailable) as exc_info:
        await degraded.read(ORG, block_id)
    assert not isinstance(exc_info.value, BlockNotFound)
    with pytest.raises(BlockstoreUnavailable):
        [item async for item in degraded.iter_blocks()]

    for node in raid5_nodes[1:3]:
        s3_admin.delete_object(Bucket=node.s3_bucket, Key=f"{ORG}/{block_id}")
    with pytest.raises(BlockNotFound):
        await healthy.read(ORG, block_id)


async def test_raid5_corrupted_chunk_is_unavailable(
    start_raid: StartRaid, raid5_nodes: list[BlockstoreConfig], s3_admin: Any
) -> None:
    raid = await start_raid("RAID5", raid5_nodes)
    block_id = uuid.uuid4()
    await raid.create(ORG, block_id, b"x" * 50)
    s3_admin.put_object(Bucket=raid5_nodes[1].s3_bucket, Key=f"{ORG}/{block_id}", Body=b"short")
    with pytest.raises(BlockstoreUnavailable) as exc_info:
        await raid.read(ORG, block_id)
    assert not isinstance(exc_info.value, BlockNotFound)


async def test_raid5_hung_node_is_bypassed(
    make_s3_config: Callable[..., BlockstoreConfig], hung_endpoint: str
) -> None:
    """After a data node timed out once, reads fetch the parity at once and do not wait for it."""

    def s3(config: BlockstoreConfig, **kwargs: Any) -> S3Blockstore:
        return S3Blockstore(
            endpoint_url=config.s3_endpoint,
            region=config.s3_region,
            bucket=config.s3_bucket,
            key=config.s3_key,
            secret=config.s3_secret,
            **kwargs,
        )

    nodes = [make_s3_config() for _ in range(3)]
    healthy = Raid5Blockstore([s3(c) for c in nodes])
    hung = s3(
        make_s3_config(endpoint=hung_endpoint, bucket="hung"), read_timeout=1.0, max_attempts=1
    )
    degraded = Raid5Blockstore([hung, s3(nodes[1]), s3(nodes[2])])
    await healthy.start()
    await degraded.start()
    try:
        block_id, data = uuid.uuid4(), os.urandom(10_000)
        await healthy.create(ORG, block_id, data)
        t0 = time.monotonic()
        assert await degraded.read(ORG, block_id) == data  # waits for node 0's timeout
        first = time.monotonic() - t0
        t0 = time.monotonic()
        assert await degraded.read(ORG, block_id) == data
        second = time.monotonic() - t0
        assert first >= 1.0
        assert second < first
    finally:
        await healthy.stop()
        await degraded.stop()


# --- configuration -------------------------------------------------------------------------------


async def test_mixed_raid_from_cli_strings(
    db: Database, make_s3_config: Callable[..., BlockstoreConfig], moto_endpoint: str
) -> None:
    """`--blockstore` values as an operator writes them, down to stored data."""
    buckets = [make_s3_config().s3_bucket for _ in range(2)]
    escaped = moto_endpoint.replace(":", "\\:")
    config = parse_blockstore(
        (
            "RAID5:0:POSTGRESQL",
            f"RAID5:1:s3:{escaped}:us-east-1:{buckets[0]}:key:secret",
            f"RAID5:2:s3:{escaped}:us-east-1:{buckets[1]}:key:secret",
        )
    )
    raid = build_blockstore(config, db)
    await raid.start()
    try:
        block_id, data = uuid.uuid4(), os.urandom(MiB)
        await raid.create(ORG, block_id, data)
        assert await raid.read(ORG, block_id) == data
        assert await _pg_chunk(db, block_id) == raid5_split(data, 2)[0]
    finally:
        await raid.stop()


@pytest.mark.parametrize("kind", ["RAID1", "RAID5"])
def test_redundant_group_needs_distinct_stores(
    kind: str, make_s3_config: Callable[..., BlockstoreConfig]
) -> None:
    same = make_s3_config()
    with pytest.raises(ValueError, match="same store"):
        build_blockstore(BlockstoreConfig(kind, nodes=(same, make_s3_config(), same)), None)  # type: ignore[arg-type]
    pg = BlockstoreConfig("POSTGRESQL")
    with pytest.raises(ValueError, match="same store"):
        build_blockstore(BlockstoreConfig(kind, nodes=(pg, make_s3_config(), pg)), None)  # type: ignore[arg-type]


async def test_raid1_hung_node_bounded_then_not_waited_for(
    make_s3_config: Callable[..., BlockstoreConfig], hung_endpoint: str
) -> None:
    """A mirror that never answers: the first write waits for it at most the group's timeout, the
    next ones (it failed recently) not at all; reads never wait for it once it is known."""
    timeout = 1.0
    healthy = make_s3_config()
    hung = make_s3_config(endpoint=hung_endpoint, bucket="hung")
    raid = build_blockstore(BlockstoreConfig("RAID1", nodes=(hung, healthy), timeout=timeout), None)  # type: ignore[arg-type]
    assert isinstance(raid, Raid1Blockstore)
    await raid.start()
    try:
        blocks = {uuid.uuid4(): os.urandom(1000) for _ in range(3)}
        laps = []
        for block_id, data in blocks.items():
            t0 = time.monotonic()
            await raid.create(ORG, block_id, data)
            laps.append(time.monotonic() - t0)
        assert timeout * 0.9 <= laps[0] < 3 * timeout  # gave the hung mirror its chance, bounded
        assert all(lap < timeout for lap in laps[1:])  # then did not wait for it
        for block_id, data in blocks.items():
            t0 = time.monotonic()
            assert await raid.read(ORG, block_id) == data
            assert time.monotonic() - t0 < timeout
        assert raid.read_order() == [1, 0]
    finally:
        await raid.stop()


@pytest.mark.parametrize("kind", ["RAID1", "RAID5"])
async def test_slow_node_left_aside_after_one_read(
    make_s3_config: Callable[..., BlockstoreConfig], hung_endpoint: str, kind: str
) -> None:
    """A node that never answers a read is not waited for (RAID1 asks the next mirror after
    `timeout / N`, RAID5 fetches the parity after `timeout / 2`), then left aside at once."""
    timeout = 2.0
    nodes = [make_s3_config() for _ in range(3)]
    healthy = build_blockstore(BlockstoreConfig(kind, nodes=tuple(nodes), timeout=timeout), None)  # type: ignore[arg-type]
    nodes[0] = make_s3_config(endpoint=hung_endpoint, bucket="hung")
    degraded = build_blockstore(BlockstoreConfig(kind, nodes=tuple(nodes), timeout=timeout), None)  # type: ignore[arg-type]
    await healthy.start()
    await degraded.start()
    try:
        block_id, data = uuid.uuid4(), os.urandom(10_000)
        await healthy.create(ORG, block_id, data)
        laps = []
        for _ in range(2):
            t0 = time.monotonic()
            assert await degraded.read(ORG, block_id) == data
            laps.append(time.monotonic() - t0)
        assert laps[0] < timeout
        assert laps[1] < timeout / 3  # the hung node was not asked first, nor waited for
        if isinstance(degraded, Raid1Blockstore):
            assert degraded.read_order() == [1, 2, 0]
    finally:
        await healthy.stop()
        await degraded.stop()
