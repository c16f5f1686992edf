"""Fixtures of the backup and restore tests: a real S3 server (moto's, on loopback) and databases.

The helpers are shared with the upgrade tests (tests/integration/upgrade/upgrade_support.py).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "upgrade"))

S3_REGION = "us-east-1"
S3_KEY = "backup-tests-key"
S3_SECRET = "backup-tests-secret"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3(s3_endpoint: str) -> Any:
    """A plain boto3 client, to look into buckets behind the server's back."""
    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name=S3_REGION,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
    )


@pytest.fixture(scope="session")
def new_bucket(s3: Any, s3_endpoint: str) -> Callable[[], str]:
    """`new_bucket()`: a new empty bucket; returns its `--blockstore` value."""

    def make() -> str:
        bucket = f"b-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(Bucket=bucket)
        endpoint = s3_endpoint.replace(":", "\\:")
        return f"s3:{endpoint}:{S3_REGION}:{bucket}:{S3_KEY}:{S3_SECRET}"

    return make


@pytest.fixture(scope="session")
def db_factory(pg_cluster: Any) -> Iterator[Callable[[], str]]:
    """`db_factory()`: the URL of a new empty database (dropped at the end of the run)."""
    made: list[str] = []

    def make() -> str:
        name = pg_cluster.create_database()
        made.append(name)
        return str(pg_cluster.url_for(name))

    yield make
    for name in made:
        pg_cluster.drop_database(name)


@pytest.fixture(scope="session")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("backup-work")
