"""Helpers of the object-store fault tests (test_blockstore_*.py): a switchable black hole in front
of moto's S3 server, S3 blockstore configurations, a stopwatch.

No fixtures here (tests/integration/faults/conftest.py belongs to the outage tests).

`BlackHole` listens on 127.0.0.1. Without a target, or once `going_dark()` was called, it accepts
connections and reads everything sent to it without ever answering (what a store behind a dead
load balancer or a hung NAS looks like). With a target it forwards bytes both ways until it goes
dark: connections already open (the S3 client's keep-alive pool) go dark too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "commands"))

from parsec_server.config import BlockstoreConfig

S3_KEY, S3_SECRET, S3_REGION = "testing-key", "testing-secret", "us-east-1"


class BlackHole:
    """A TCP endpoint on loopback that swallows requests; `await start()`, `await stop()`."""

    def __init__(self, target: str | None = None) -> None:
        self._target = urlsplit(target) if target else None
        self.dark = target is None
        self.accepted = 0  # connections accepted so far
        self.swallowed = 0  # bytes read and never answered
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    def going_dark(self) -> None:
        self.dark = True

    def back(self) -> None:
        assert self._target is not None, "a black hole without a target cannot come back"
        self.dark = False

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(writer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self.dark or self._target is None:
                await self._swallow(reader)
                return
            up_reader, up_writer = await asyncio.open_connection(
                self._target.hostname, self._target.port
            )
            self._writers.add(up_writer)
            await asyncio.gather(
                self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _swallow(self, reader: asyncio.StreamReader) -> None:
        while chunk := await reader.read(65536):
            self.swallowed += len(chunk)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while chunk := await src.read(65536):
            if self.dark:
                self.swallowed += len(chunk)
                continue
            dst.write(chunk)
            await dst.drain()
        with contextlib.suppress(OSError, RuntimeError):
            dst.write_eof()


def make_bucket(endpoint: str) -> str:
    bucket = f"b{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=S3_REGION,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
    ).create_bucket(Bucket=bucket)
    return bucket


def s3_config(endpoint: str, bucket: str) -> BlockstoreConfig:
    return BlockstoreConfig(
        "S3",
        s3_endpoint=endpoint,
        s3_region=S3_REGION,
        s3_bucket=bucket,
        s3_key=S3_KEY,
        s3_secret=S3_SECRET,
    )


class Stopwatch:
    """`with watch: ...` then `watch.last`; every lap is kept in `watch.laps` for the report."""

    def __init__(self) -> None:
        self.laps: list[float] = []

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.laps.append(time.monotonic() - t0)

    @property
    def last(self) -> float:
        return self.laps[-1]


def spawn_run(log_path: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`parsec-server run *args` with `env` on top of ours (no other PARSEC_* variable); its
    output goes to `log_path`. Stop it with `stop()`."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PARSEC_")}
    full_env.update(env)
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "parsec_server.cli.main", "run", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it is still there after 20 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
