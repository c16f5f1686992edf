"""Real stores for the blockstore tests: moto's S3 server on loopback, a fresh PostgreSQL database.

`moto_endpoint` is one S3 server for the whole run; each test makes its own buckets
(`make_s3_config`). moto keeps its state per process, so the servers a test starts with
`moto_server_factory` (to stop them while in use) see the same buckets and objects.
"""

from __future__ import annotations

import importlib.util
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from parsec_server.config import BlockstoreConfig
from parsec_server.storage.db import Database

S3_REGION = "us-east-1"
S3_KEY = "testing-key"
S3_SECRET = "testing-secret"

BLOCK_DATA_TABLE = """
CREATE TABLE IF NOT EXISTS block_data (
    organization_id TEXT NOT NULL,
    block_id UUID NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (organization_id, block_id)
)
"""


def _start_moto() -> tuple[ThreadedMotoServer, str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server, url = _start_moto()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def moto_server_factory() -> Iterator[Callable[[], tuple[ThreadedMotoServer, str]]]:
    """Start extra S3 servers (same data as `moto_endpoint`); stopped after the test if still up."""
    servers: list[ThreadedMotoServer] = []

    def start() -> tuple[ThreadedMotoServer, str]:
        server, url = _start_moto()
        servers.append(server)
        return server, url

    yield start
    for server in servers:
        if server._server_ready_event.is_set():  # not stopped by the test
            server.stop()


@pytest.fixture
def s3_admin(moto_endpoint: str) -> object:
    """A plain (sync) boto3 client to prepare and inspect buckets behind the stores' back."""
    return boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name=S3_REGION,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
    )


@pytest.fixture
def make_s3_config(moto_endpoint: str, s3_admin: object) -> Callable[..., BlockstoreConfig]:
    """`make_s3_config()`: a new bucket and the config of an S3 blockstore on it."""

    def make(endpoint: str | None = None, bucket: str | None = None) -> BlockstoreConfig:
        if bucket is None:
            bucket = f"blocks-{uuid.uuid4().hex[:12]}"
            s3_admin.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
        return BlockstoreConfig(
            "S3",
            s3_endpoint=endpoint or moto_endpoint,
            s3_region=S3_REGION,
            s3_bucket=bucket,
            s3_key=S3_KEY,
            s3_secret=S3_SECRET,
        )

    return make


@pytest.fixture
def dead_endpoint() -> str:
    """An HTTP URL on loopback where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def hung_endpoint() -> Iterator[str]:
    """An HTTP URL on loopback that accepts connections (kernel backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def blockstore_db_url(request: pytest.FixtureRequest) -> str:
    """A fresh migrated database; an empty one until the migrations exist (see `db`)."""
    if importlib.util.find_spec("parsec_server.storage.migrations.engine") is not None:
        return str(request.getfixturevalue("db_url"))
    return str(request.getfixturevalue("empty_db_url"))


@pytest.fixture
async def db(blockstore_db_url: str) -> AsyncIterator[Database]:
    database = await Database.open(blockstore_db_url, min_size=1, max_size=4)
    try:
        # No-op once the migration creating block_data has landed.
        await database.fetchval(BLOCK_DATA_TABLE)
        yield database
    finally:
        await database.close()
