"""Blocks as objects of an S3 bucket (`s3:[<endpoint>]:<region>:<bucket>:<key>:<secret>`).

Object key: `<organization_id>/<block uuid, hyphenated>` (protocol.md §6.2). One aiobotocore client
for the server's lifetime, opened by `start()`. Every call to the store (the bucket check of
`start()`, a put, a get with its body, a delete, a listing page) is bounded as a whole by `timeout`
(`--blockstore-timeout`, connection, transfer and retries included): a dead or hung store is
reported as `BlockstoreUnavailable` after at most that long, never holding a request longer. With an
explicit endpoint (MinIO, Ceph, moto...) the bucket goes in the path: no wildcard DNS needed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from parsec_server.blockstore.base import BlockNotFound, Blockstore, BlockstoreUnavailable
from parsec_server.config import DEFAULT_BLOCKSTORE_TIMEOUT
from parsec_server.log import get_logger

log = get_logger(__name__)

CONNECT_TIMEOUT = 3.0  # seconds to open a TCP (+TLS) connection (at most `timeout`)
READ_TIMEOUT = 5.0  # seconds without a byte from the server (at most `timeout`)
MAX_ATTEMPTS = 2  # first try included; all of them within `timeout`

# S3 error codes meaning "the store answered: no such object".
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})

# What the client stack raises when the store fails or cannot be reached.
_S3_ERRORS = (ClientError, BotoCoreError, aiohttp.ClientError, OSError, TimeoutError)


def object_key(organization_id: str, block_id: uuid.UUID) -> str:
    return f"{organization_id}/{block_id}"


def _error_code(exc: BaseException) -> str | None:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "")) or None
    return None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return type(exc).__name__ + (f": {text}" if text else "")


class S3Blockstore(Blockstore):
    def __init__(
        self,
        *,
        endpoint_url: str | None,
        region: str,
        bucket: str,
        key: str,
        secret: str,
        timeout: float = DEFAULT_BLOCKSTORE_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        if timeout <= 0:
            raise ValueError("the blockstore timeout must be positive")
        self.endpoint_url = endpoint_url
        self.region = region
        self.bucket = bucket
        self._key = key
        self._secret = secret
        self.timeout = timeout
        self._config = AioConfig(
            connect_timeout=min(connect_timeout, timeout),
            read_timeout=min(read_timeout, timeout),
            retries={"total_max_attempts": max_attempts, "mode": "standard"},
            # payload_signing_enabled False: the signature covers the request but not the body
            # (`UNSIGNED-PAYLOAD`): botocore would otherwise hash every block with SHA-256 before
            # sending it (~300 us of CPU per 512 KiB block here). The blocks are authenticated by
            # the clients' encryption, and TLS covers them in transit on https endpoints.
            s3={
                "addressing_style": "path" if endpoint_url else "auto",
                "payload_signing_enabled": False,
            },
            max_pool_connections=32,
            # S3-compatible servers do not all know the new default CRC headers; the blocks are
            # authenticated by the clients' encryption anyway.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            # Load botocore's JSON models in a thread, not in the event loop.
            warm_up_loader_caches=True,
        )
        self._stack: AsyncExitStack | None = None
        self._client: Any = None

    def describe(self) -> str:
        return f"S3({self.endpoint_url or 'aws'}/{self.bucket})"

    async def start(self) -> None:
        if self._client is not None:
            return
        session = get_session()
        stack = AsyncExitStack()
        try:
            self._client = await stack.enter_async_context(
                session.create_client(
                    "s3",
                    region_name=self.region or None,
                    endpoint_url=self.endpoint_url,
                    # Empty credentials: botocore's usual chain (environment, instance role...).
                    aws_access_key_id=self._key or None,
                    aws_secret_access_key=self._secret or None,
                    config=self._config,
                )
            )
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        # Warn early about a wrong endpoint, bucket or credentials (within `timeout`); the server
        # starts anyway and reports `store_unavailable` until the store is back.
        try:
            async with asyncio.timeout(self.timeout):
                await self._client.head_bucket(Bucket=self.bucket)
        except _S3_ERRORS as exc:
            log.warning(
                "blockstore_s3_unreachable",
                store=self.describe(),
                error=_describe(exc),
                timeout=self.timeout,
            )

    async def stop(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    def _require_client(self) -> Any:
        if self._client is None:
            raise BlockstoreUnavailable(f"{self.describe()}: blockstore not started")
        return self._client

    def _unavailable(self, exc: BaseException, what: str) -> BlockstoreUnavailable:
        if isinstance(exc, TimeoutError) and not str(exc):
            return BlockstoreUnavailable(
                f"{self.describe()}: {what}: no answer within {self.timeout:g} s"
            )
        return BlockstoreUnavailable(f"{self.describe()}: {what}: {_describe(exc)}")

    async def create(self, organization_id: str, block_id: uuid.UUID, data: bytes) -> None:
        client = self._require_client()
        key = object_key(organization_id, block_id)
        try:
            async with asyncio.timeout(self.timeout):
                await client.put_object(Bucket=self.bucket, Key=key, Body=data)
        except _S3_ERRORS as exc:
            raise self._unavailable(exc, f"put {key}") from exc

    async def read(self, organization_id: str, block_id: uuid.UUID) -> bytes:
        client = self._require_client()
        key = object_key(organization_id, block_id)
        try:
            async with asyncio.timeout(self.timeout):
                resp = await client.get_object(Bucket=self.bucket, Key=key)
                async with resp["Body"] as body:
                    data: bytes = await body.read()
        except _S3_ERRORS as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                raise BlockNotFound(f"{self.describe()}: no object {key}") from exc
            raise self._unavailable(exc, f"get {key}") from exc
        return data

    async def delete(self, organization_id: str, block_id: uuid.UUID) -> None:
        client = self._require_client()
        key = object_key(organization_id, block_id)
        try:
            async with asyncio.timeout(self.timeout):
                await client.delete_object(Bucket=self.bucket, Key=key)
        except _S3_ERRORS as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                return
            raise self._unavailable(exc, f"delete {key}") from exc

    async def _list_page(self, **kwargs: Any) -> dict[str, Any]:
        client = self._require_client()
        try:
            async with asyncio.timeout(self.timeout):
                page: dict[str, Any] = await client.list_objects_v2(Bucket=self.bucket, **kwargs)
        except _S3_ERRORS as exc:
            raise self._unavailable(exc, "list objects") from exc
        return page

    async def _list(self, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
        token: str | None = None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            page = await self._list_page(**kwargs, **extra)
            yield page
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    async def iter_blocks(
        self, organization_id: str | None = None
    ) -> AsyncIterator[tuple[str, uuid.UUID]]:
        if organization_id is None:
            # Keys sort as strings, and "a-b/..." < "a/...": list organizations, sort, then each.
            organizations: list[str] = []
            async for page in self._list(Delimiter="/"):
                organizations += [p["Prefix"][:-1] for p in page.get("CommonPrefixes", [])]
            organizations.sort()
        else:
            organizations = [organization_id]
        for org in organizations:
            prefix = f"{org}/"
            async for page in self._list(Prefix=prefix):
                # Within an organization, hyphenated lowercase UUIDs sort like `UUID` values.
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(prefix) :]
                    try:
                        block_id = uuid.UUID(name)
                    except ValueError:
                        block_id = None
                    if block_id is None or str(block_id) != name:
                        log.warning(
                            "blockstore_s3_foreign_object", store=self.describe(), key=obj["Key"]
                        )
                        continue
                    yield org, block_id
