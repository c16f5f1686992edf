"""An object store that accepts connections and never answers (issue 11, point 3).

Every wait on the store is bounded by the blockstore timeout (`--blockstore-timeout`, here
`TIMEOUT`): `block_create` and `block_read` answer `store_unavailable` within it, the server's
start-up check of the bucket too (the server then starts anyway), and RAID groups with a member
black-holed keep the bound: RAID1 still reads and writes through its healthy member, RAID5 still
reads, RAID0 (and RAID5 writes) answer `store_unavailable`.

The stores are moto's S3 server on loopback, behind a `BlackHole` (blockstore_support.py) that can
go dark at any time. `BOUND` is a behaviour bound (5x the timeout), not a benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from blockstore_support import BlackHole, Stopwatch, make_bucket, s3_config, spawn_run, stop
from click.testing import CliRunner
from core_helpers import ADMIN_TOKEN, Server, running_server
from moto.server import ThreadedMotoServer
from test_realm import new_realm

from parsec_server.cli.main import cli
from parsec_server.config import BlockstoreConfig
from parsec_server.embedded_pg import free_tcp_port

TIMEOUT = 0.5
BOUND = 5 * TIMEOUT
UNAVAILABLE = {"status": "store_unavailable"}
OK = {"status": "ok"}


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
async def black_hole() -> AsyncIterator[BlackHole]:
    """A bare black hole: never answers anything."""
    hole = BlackHole()
    await hole.start()
    yield hole
    await hole.stop()


@pytest.fixture
async def proxy(moto: str) -> AsyncIterator[BlackHole]:
    """moto's server, until `proxy.going_dark()`."""
    hole = BlackHole(moto)
    await hole.start()
    yield hole
    await hole.stop()


@pytest.fixture
def watch() -> Stopwatch:
    return Stopwatch()


@contextlib.asynccontextmanager
async def serving(db_url: str, config: BlockstoreConfig, watch: Stopwatch) -> AsyncIterator[Server]:
    """A server on `config` with the test timeout; the start-up time is `watch`'s first lap."""
    with watch():
        stack = contextlib.AsyncExitStack()
        server = await stack.enter_async_context(
            running_server(db_url, blockstore=dataclasses.replace(config, timeout=TIMEOUT))
        )
    async with stack:
        yield server


async def create(client: Any, realm_id: uuid.UUID, block_id: uuid.UUID, data: bytes) -> Any:
    return await client.rpc(
        "block_create", block_id=block_id, realm_id=realm_id, key_index=1, block=data
    )


async def read(client: Any, realm_id: uuid.UUID, block_id: uuid.UUID) -> Any:
    return await client.rpc("block_read", block_id=block_id, realm_id=realm_id)


def objects(endpoint: str, bucket: str) -> set[str]:
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing-key",
        aws_secret_access_key="testing-secret",
    )
    return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


# --- one S3 store --------------------------------------------------------------------------------


async def test_black_holed_store_start_and_requests_are_bounded(
    db_url: str, black_hole: BlackHole, watch: Stopwatch
) -> None:
    """Dead from the start: the server starts within the bound, every block call answers in it."""
    async with serving(db_url, s3_config(black_hole.url, "blocks"), watch) as server:
        assert watch.last < BOUND  # the start-up check gave up, the server started anyway
        assert black_hole.accepted >= 1  # it did try the store
        org = await server.bootstrap_org()
        realm_id = await new_realm(org.alice)
        for _ in range(2):
            block_id = uuid.uuid4()
            with watch():
                assert await create(org.alice, realm_id, block_id, b"x" * 100_000) == UNAVAILABLE
            assert watch.last < BOUND
            # Nothing recorded: the block does not exist.
            assert await read(org.alice, realm_id, block_id) == {"status": "block_not_found"}
        assert black_hole.swallowed > 0


async def test_store_going_dark_then_back(
    db_url: str, moto: str, proxy: BlackHole, watch: Stopwatch
) -> None:
    bucket = make_bucket(moto)
    async with serving(db_url, s3_config(proxy.url, bucket), watch) as server:
        org = await server.bootstrap_org()
        alice = org.alice
        realm_id = await new_realm(alice)
        kept = uuid.uuid4()
        assert await create(alice, realm_id, kept, b"kept") == OK

        proxy.going_dark()
        for _ in range(2):
            with watch():
                assert await create(alice, realm_id, uuid.uuid4(), b"new") == UNAVAILABLE
            assert watch.last < BOUND
            with watch():
                assert await read(alice, realm_id, kept) == UNAVAILABLE
            assert watch.last < BOUND

        proxy.back()  # served again without a restart
        assert (await read(alice, realm_id, kept))["block"] == b"kept"
        assert await create(alice, realm_id, uuid.uuid4(), b"new") == OK


# --- RAID groups with one member black-holed -----------------------------------------------------


@pytest.mark.parametrize("dark", [0, 1])
async def test_raid1_serves_reads_and_writes_from_the_healthy_member(
    db_url: str, moto: str, proxy: BlackHole, watch: Stopwatch, dark: int
) -> None:
    buckets = [make_bucket(moto), make_bucket(moto)]
    endpoints = [moto, moto]
    endpoints[dark] = proxy.url
    nodes = tuple(s3_config(e, b) for e, b in zip(endpoints, buckets, strict=True))
    async with serving(db_url, BlockstoreConfig("RAID1", nodes=nodes), watch) as server:
        org = await server.bootstrap_org()
        alice = org.alice
        realm_id = await new_realm(alice)
        before = uuid.uuid4()
        assert await create(alice, realm_id, before, b"before") == OK

        proxy.going_dark()
        during: dict[uuid.UUID, bytes] = {}
        for k in range(3):
            block_id, data = uuid.uuid4(), f"during {k}".encode() * 1000
            with watch():
                assert await create(alice, realm_id, block_id, data) == OK
            assert watch.last < BOUND
            during[block_id] = data
            for block_id, data in [(before, b"before"), *during.items()]:
                with watch():
                    rep = await read(alice, realm_id, block_id)
                assert (rep["status"], rep["block"]) == ("ok", data)
                assert watch.last < BOUND
        # Written on the healthy member only.
        healthy = 1 - dark
        keys = {f"{org.organization_id}/{b}" for b in during}
        assert keys <= objects(moto, buckets[healthy])
        assert not keys & objects(moto, buckets[dark])

        # The member comes back without the blocks written meanwhile: they are still read.
        proxy.back()
        for block_id, data in during.items():
            assert (await read(alice, realm_id, block_id))["block"] == data


async def test_raid0_answers_store_unavailable_for_the_dark_member(
    db_url: str, moto: str, black_hole: BlackHole, watch: Stopwatch
) -> None:
    nodes = (s3_config(moto, make_bucket(moto)), s3_config(black_hole.url, "dark"))
    async with serving(db_url, BlockstoreConfig("RAID0", nodes=nodes), watch) as server:
        assert watch.last < BOUND
        org = await server.bootstrap_org()
        realm_id = await new_realm(org.alice)
        on_dark = next(b for b in iter(uuid.uuid4, None) if b.int % 2 == 1)
        on_healthy = next(b for b in iter(uuid.uuid4, None) if b.int % 2 == 0)
        with watch():
            assert await create(org.alice, realm_id, on_dark, b"data") == UNAVAILABLE
        assert watch.last < BOUND
        assert await create(org.alice, realm_id, on_healthy, b"data") == OK
        assert (await read(org.alice, realm_id, on_healthy))["block"] == b"data"


@pytest.mark.parametrize("dark", [0, 2])  # a data member, the parity member
async def test_raid5_reads_degraded_and_refuses_writes_within_the_bound(
    db_url: str, moto: str, proxy: BlackHole, watch: Stopwatch, dark: int
) -> None:
    endpoints = [moto, moto, moto]
    endpoints[dark] = proxy.url
    nodes = tuple(s3_config(e, make_bucket(moto)) for e in endpoints)
    async with serving(db_url, BlockstoreConfig("RAID5", nodes=nodes), watch) as server:
        org = await server.bootstrap_org()
        alice = org.alice
        realm_id = await new_realm(alice)
        blocks = {uuid.uuid4(): bytes([k]) * (1000 * k + 1) for k in range(3)}
        for block_id, data in blocks.items():
            assert await create(alice, realm_id, block_id, data) == OK

        proxy.going_dark()
        for _ in range(2):  # the second time the dark member is known as such
            for block_id, data in blocks.items():
                with watch():
                    rep = await read(alice, realm_id, block_id)
                assert (rep["status"], rep["block"]) == ("ok", data)
                assert watch.last < BOUND
        with watch():
            assert await create(alice, realm_id, uuid.uuid4(), b"data") == UNAVAILABLE
        assert watch.last < BOUND


# --- the option ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_blockstore_timeout_option_is_checked(value: str) -> None:
    for args, env in [
        (["run", "--blockstore-timeout", value], {}),
        (["run"], {"PARSEC_BLOCKSTORE_TIMEOUT": value}),
    ]:
        result = CliRunner().invoke(cli, args, env=env)
        assert result.exit_code == 2, result.output
        assert "blockstore-timeout" in result.output
        assert "Traceback" not in result.output


async def test_run_with_black_holed_store_starts_within_the_bound(
    db_url: str, black_hole: BlackHole, watch: Stopwatch, tmp_path: Path
) -> None:
    """`parsec-server run --blockstore-timeout`: the start-up check gives up within it (logged),
    the server starts, and block calls answer store_unavailable within it."""
    port = free_tcp_port()
    log_path = tmp_path / "server.log"
    endpoint = black_hole.url.replace(":", "\\:")  # escaped for --blockstore
    proc = spawn_run(
        log_path,
        "--db",
        db_url,
        "--blockstore",
        f"s3:{endpoint}:us-east-1:blocks:key:secret",
        "--administration-token",
        ADMIN_TOKEN,
        "--port",
        str(port),
        "--log-format",
        "json",
        env={"PARSEC_BLOCKSTORE_TIMEOUT": str(TIMEOUT)},
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as http:
            for _ in range(300):
                assert proc.poll() is None, log_path.read_text()
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/health")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"server not ready:\n{log_path.read_text()}")
            started = log_path.read_text()
            assert "blockstore_s3_unreachable" in started
            assert f'"timeout": {TIMEOUT}' in started  # the variable reached the store
            assert black_hole.accepted >= 1

            server = Server(app=None, http=http)  # type: ignore[arg-type]
            org = await server.bootstrap_org()
            realm_id = await new_realm(org.alice)
            with watch():
                assert await create(org.alice, realm_id, uuid.uuid4(), b"data") == UNAVAILABLE
            assert watch.last < BOUND
    finally:
        stop(proc)
