"""Helpers of the backup and restore tests (fixtures: conftest.py; shared helpers:
../upgrade/upgrade_support.py)."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path
from typing import Any

from upgrade_support import cli, query, value

from parsec_server.blockstore import build_blockstore
from parsec_server.cli.options import parse_blockstore


def backup(url: str, output: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return cli("backup", "--db", url, "--output", str(output), *args)


def restore(url: str, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return cli("restore", "--db", url, *args, str(path))


def relations(url: str) -> int:
    """Tables, views and sequences outside the system schemas (0: an empty database)."""
    return int(
        value(
            url,
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg\\_toast%' AND c.relkind IN ('r', 'v', 'm', 'S', 'p')",
        )
    )


def move_blocks_to(url: str, spec: str) -> dict[str, bytes]:
    """Move the blocks of a database using the POSTGRESQL blockstore into the S3 bucket `spec`, as
    if the server had always used that bucket. Returns `{"<org>/<block id>": data}`."""
    rows = query(url, "SELECT organization_id, block_id, data FROM block_data")

    async def go() -> None:
        store = build_blockstore(parse_blockstore((spec,)), None)  # type: ignore[arg-type]
        await store.start()
        try:
            for r in rows:
                await store.create(r["organization_id"], r["block_id"], bytes(r["data"]))
        finally:
            await store.stop()

    asyncio.run(go())
    query(url, "DELETE FROM block_data")
    return {f"{r['organization_id']}/{r['block_id']}": bytes(r["data"]) for r in rows}


def one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    """A CLI failure is exactly one `error: ...` line on stderr, never a traceback."""
    assert "Traceback" not in res.stderr, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1, res.stderr
    return errors[0]


def block_key(org: str, block_id: uuid.UUID) -> str:
    return f"{org}/{block_id}"


def bucket_of(spec: str) -> str:
    return spec.replace("\\:", "|").split(":")[3]


def objects(s3: Any, spec: str) -> dict[str, bytes]:
    """Every object of the bucket of a `--blockstore` value: key -> content."""
    bucket = bucket_of(spec)
    out: dict[str, bytes] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out
