"""An S3 bucket (moto's server on loopback) as a blockstore."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from parsec_server.blockstore import BlockNotFound, BlockstoreUnavailable, build_blockstore
from parsec_server.blockstore.s3 import S3Blockstore
from parsec_server.config import BlockstoreConfig
from parsec_server.storage.db import Database

ORG = "CoolOrg"
# Refused connections are retried once after a short backoff (< 1 s): well under this.
PROMPT = 3.0


async def _started(config: BlockstoreConfig, **kwargs: Any) -> S3Blockstore:
    """An S3 blockstore; `kwargs` override the default timeouts."""
    if kwargs:
        store = S3Blockstore(
            endpoint_url=config.s3_endpoint,
            region=config.s3_region,
            bucket=config.s3_bucket,
            key=config.s3_key,
            secret=config.s3_secret,
            **kwargs,
        )
    else:
        # No database needed for S3: build_blockstore only hands it to PostgreSQL stores.
        built = build_blockstore(config, None)  # type: ignore[arg-type]
        assert isinstance(built, S3Blockstore)
        store = built
    await store.start()
    return store


@pytest.fixture
async def store(make_s3_config: Callable[..., BlockstoreConfig]) -> AsyncIterator[S3Blockstore]:
    s = await _started(make_s3_config())
    yield s
    await s.stop()


@pytest.mark.parametrize("size", [0, 1, 4096, 1024 * 1024])
async def test_roundtrip(store: S3Blockstore, s3_admin: Any, size: int) -> None:
    data = os.urandom(size)
    block_id = uuid.uuid4()
    await store.create(ORG, block_id, data)
    assert await store.read(ORG, block_id) == data
    # Object naming of protocol.md §6.2: <OrganizationID>/<block uuid hyphenated>.
    obj = s3_admin.get_object(Bucket=store.bucket, Key=f"{ORG}/{block_id}")
    assert obj["Body"].read() == data


async def test_missing_block(store: S3Blockstore) -> None:
    block_id = uuid.uuid4()
    with pytest.raises(BlockNotFound):
        await store.read(ORG, block_id)
    await store.create(ORG, block_id, b"x")
    with pytest.raises(BlockNotFound):
        await store.read("OtherOrg", block_id)


async def test_create_existing_overwrites(store: S3Blockstore) -> None:
    block_id = uuid.uuid4()
    await store.create(ORG, block_id, b"first")
    await store.create(ORG, block_id, b"second")
    assert await store.read(ORG, block_id) == b"second"


async def test_delete(store: S3Blockstore) -> None:
    block_id = uuid.uuid4()
    await store.create(ORG, block_id, b"data")
    await store.delete(ORG, block_id)
    with pytest.raises(BlockNotFound):
        await store.read(ORG, block_id)
    await store.delete(ORG, block_id)  # already gone: fine


async def test_iter_blocks(store: S3Blockstore, s3_admin: Any) -> None:
    # As keys, "a-b/..." sorts before "a/...": the listing must still be in (org, id) order.
    orgs = ["b", "a_b", "Z", "a-b", "a"]
    expected = []
    for org in orgs:
        for _ in range(3):
            block_id = uuid.uuid4()
            await store.create(org, block_id, b"")
            expected.append((org, block_id))
    # Objects that are not ours are skipped.
    s3_admin.put_object(Bucket=store.bucket, Key="a/not-a-block", Body=b"")
    s3_admin.put_object(Bucket=store.bucket, Key=f"a/{str(uuid.uuid4()).upper()}", Body=b"")
    s3_admin.put_object(Bucket=store.bucket, Key="README", Body=b"")
    assert [item async for item in store.iter_blocks()] == sorted(expected)
    only_a = [item async for item in store.iter_blocks("a")]
    assert only_a == sorted(item for item in expected if item[0] == "a")
    assert [item async for item in store.iter_blocks("nobody")] == []


async def test_iter_blocks_many_pages(store: S3Blockstore) -> None:
    """More objects than one ListObjectsV2 page (1000)."""
    expected = sorted((ORG, uuid.uuid4()) for _ in range(1100))
    for k in range(0, len(expected), 50):
        await asyncio.gather(*(store.create(o, b, b"") for o, b in expected[k : k + 50]))
    assert [item async for item in store.iter_blocks()] == expected


async def test_missing_bucket_is_unavailable_not_not_found(
    make_s3_config: Callable[..., BlockstoreConfig],
) -> None:
    store = await _started(make_s3_config(bucket="no-such-bucket"))
    try:
        with pytest.raises(BlockstoreUnavailable) as exc_info:
            await store.read(ORG, uuid.uuid4())
        assert not isinstance(exc_info.value, BlockNotFound)
        with pytest.raises(BlockstoreUnavailable):
            await store.create(ORG, uuid.uuid4(), b"data")
    finally:
        await store.stop()


async def test_wrong_port_is_unavailable_promptly(
    make_s3_config: Callable[..., BlockstoreConfig], dead_endpoint: str
) -> None:
    t0 = time.monotonic()
    store = await _started(make_s3_config(endpoint=dead_endpoint, bucket="blocks"))
    try:
        with pytest.raises(BlockstoreUnavailable) as exc_info:
            await store.create(ORG, uuid.uuid4(), b"data")
        assert "127.0.0.1" in str(exc_info.value)
        with pytest.raises(BlockstoreUnavailable) as exc_info:
            await store.read(ORG, uuid.uuid4())
        assert not isinstance(exc_info.value, BlockNotFound)
        with pytest.raises(BlockstoreUnavailable):
            [item async for item in store.iter_blocks()]
    finally:
        await store.stop()
    # start() (which checks the bucket) and the three failures, default timeouts and retries.
    assert time.monotonic() - t0 < 4 * PROMPT


async def test_stopped_server_is_unavailable_promptly(
    make_s3_config: Callable[..., BlockstoreConfig], moto_server_factory: Callable[..., Any]
) -> None:
    server, url = moto_server_factory()
    store = await _started(make_s3_config(endpoint=url))
    try:
        block_id = uuid.uuid4()
        await store.create(ORG, block_id, b"data")
        assert await store.read(ORG, block_id) == b"data"
        server.stop()
        t0 = time.monotonic()
        with pytest.raises(BlockstoreUnavailable) as exc_info:
            await store.read(ORG, block_id)
        assert not isinstance(exc_info.value, BlockNotFound)
        assert time.monotonic() - t0 < PROMPT
        t0 = time.monotonic()
        with pytest.raises(BlockstoreUnavailable):
            await store.create(ORG, uuid.uuid4(), b"data")
        assert time.monotonic() - t0 < PROMPT
    finally:
        await store.stop()


async def test_hung_server_times_out(
    make_s3_config: Callable[..., BlockstoreConfig], hung_endpoint: str
) -> None:
    """Connections accepted, no answer: the read timeout (here shortened) ends the wait."""
    store = await _started(
        make_s3_config(endpoint=hung_endpoint, bucket="blocks"), read_timeout=0.5, max_attempts=2
    )
    try:
        t0 = time.monotonic()
        with pytest.raises(BlockstoreUnavailable) as exc_info:
            await store.read(ORG, uuid.uuid4())
        assert not isinstance(exc_info.value, BlockNotFound)
        assert time.monotonic() - t0 < PROMPT
    finally:
        await store.stop()


async def test_operation_timeout(
    make_s3_config: Callable[..., BlockstoreConfig], hung_endpoint: str
) -> None:
    """The whole-operation deadline bounds a store slower than the per-read timeout."""
    store = await _started(
        make_s3_config(endpoint=hung_endpoint, bucket="blocks"),
        read_timeout=30,
        timeout=0.5,
    )
    try:
        t0 = time.monotonic()
        with pytest.raises(BlockstoreUnavailable):
            await store.create(ORG, uuid.uuid4(), b"data")
        assert time.monotonic() - t0 < PROMPT
    finally:
        await store.stop()


async def test_not_started(make_s3_config: Callable[..., BlockstoreConfig]) -> None:
    store = await _started(make_s3_config())
    await store.stop()
    await store.stop()  # idempotent
    with pytest.raises(BlockstoreUnavailable):
        await store.read(ORG, uuid.uuid4())


async def test_restart_uses_new_session(make_s3_config: Callable[..., BlockstoreConfig]) -> None:
    store = await _started(make_s3_config())
    block_id = uuid.uuid4()
    await store.create(ORG, block_id, b"data")
    await store.stop()
    await store.start()
    try:
        assert await store.read(ORG, block_id) == b"data"
    finally:
        await store.stop()


async def test_unused_db(db: Database, make_s3_config: Callable[..., BlockstoreConfig]) -> None:
    """Nothing lands in the database's block_data table with an S3 blockstore."""
    store = build_blockstore(make_s3_config(), db)
    await store.start()
    try:
        await store.create(ORG, uuid.uuid4(), b"data")
    finally:
        await store.stop()
    assert await db.fetchval("SELECT count(*) FROM block_data") == 0


async def test_block_body_is_not_hashed_for_the_signature(store: S3Blockstore) -> None:
    """A block is sent with `UNSIGNED-PAYLOAD`: botocore does not SHA-256 the body of every
    put (the clients authenticate their blocks; TLS covers https endpoints); moto accepts it."""
    seen: list[str] = []

    def capture(request: Any, **_: Any) -> None:
        seen.append(request.headers.get("x-amz-content-sha256", b"").decode())

    store._require_client().meta.events.register("before-send.s3.PutObject", capture)
    block_id = uuid.uuid4()
    data = os.urandom(512 * 1024)
    await store.create("org", block_id, data)
    assert seen == ["UNSIGNED-PAYLOAD"]
    assert await store.read("org", block_id) == data
