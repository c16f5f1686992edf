"""RAID groups of blockstores (`--blockstore RAIDn:<node>:<config>`, protocol.md §6.2).

* RAID0, stripe: a block lives on node `block_id.int % N` only.
* RAID1, mirror: a block is written to every node, and the create fails unless all succeed; a read
  asks the nodes one after the other (nodes that failed recently last) and returns the first answer.
* RAID5, striping with parity: the payload `u32 BE length || block || zero padding` is split into
  N-1 equal chunks stored on nodes 0..N-2, and their XOR on node N-1. The create fails unless all N
  writes succeed; a read needs any N-1 of the N chunks.

Every node of a RAID1/RAID5 group holds an entry for every block whose create succeeded, so
`iter_blocks` merges the nodes' sorted listings and tolerates as many dead nodes as a read does.
"""

from __future__ import annotations

import asyncio
import struct
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing
from typing import TypeVar

from parsec_server.blockstore.base import BlockNotFound, Blockstore, BlockstoreUnavailable

T = TypeVar("T")

# A node that failed less than this many seconds ago is asked last (RAID1) or backed up by the
# parity node from the start (RAID5).
SUSPECT_FOR = 30.0

_LENGTH = struct.Struct(">I")


class _NodeHealth:
    """When each node last failed (monotonic clock), to avoid waiting on a dead node every time."""

    def __init__(self, count: int) -> None:
        self._failed_at: list[float | None] = [None] * count

    def failed(self, index: int) -> None:
        self._failed_at[index] = time.monotonic()

    def succeeded(self, index: int) -> None:
        self._failed_at[index] = None

    def suspect(self, index: int) -> bool:
        at = self._failed_at[index]
        return at is not None and time.monotonic() - at < SUSPECT_FOR


class _RaidBlockstore(Blockstore):
    kind = "RAID"
    # How many nodes may be dead while `iter_blocks` still lists every block.
    listing_tolerance = 0

    def __init__(self, nodes: Sequence[Blockstore]) -> None:
        if not nodes:
            raise ValueError(f"{self.kind} needs at least one node")
        self.nodes = tuple(nodes)
        self._health = _NodeHealth(len(self.nodes))

    def describe(self) -> str:
        return f"{self.kind}[{', '.join(n.describe() for n in self.nodes)}]"

    async def start(self) -> None:
        # At once: a node's start may wait for its store (S3 checks its bucket).
        results = await asyncio.gather(
            *(node.start() for node in self.nodes), return_exceptions=True
        )
        errors = [res for res in results if isinstance(res, BaseException)]
        if errors:
            for node, res in zip(self.nodes, results, strict=True):
                if not isinstance(res, BaseException):
                    await node.stop()
            raise errors[0]

    async def stop(self) -> None:
        errors: list[BaseException] = []
        for node in self.nodes:
            try:
                await node.stop()
            except Exception as exc:  # stop the others anyway
                errors.append(exc)
        if errors:
            raise errors[0]

    def _node_error(self, index: int, exc: BlockstoreUnavailable) -> str:
        return f"node {index}: {exc}"

    async def _on_all(self, what: str, op: Callable[[int, Blockstore], Awaitable[None]]) -> None:
        """Run `op` on every node at once; fail (after all finished) unless every node succeeded."""
        results = await asyncio.gather(
            *(self._tracked(i, op(i, node)) for i, node in enumerate(self.nodes)),
            return_exceptions=True,
        )
        failures: list[str] = []
        for i, res in enumerate(results):
            if isinstance(res, BlockstoreUnavailable):
                failures.append(self._node_error(i, res))
            elif isinstance(res, BaseException):
                raise res  # a bug, or cancellation
        if failures:
            raise BlockstoreUnavailable(f"{self.kind} {what} failed on {'; '.join(failures)}")

    async def _tracked(self, index: int, aw: Awaitable[T]) -> T:
        """Await a node operation, recording whether the node answered.

        `BlockNotFound` is an answer: the node is alive.
        """
        try:
            res = await aw
        except BlockNotFound:
            self._health.succeeded(index)
            raise
        except BlockstoreUnavailable:
            self._health.failed(index)
            raise
        self._health.succeeded(index)
        return res

    async def iter_blocks(
        self, organization_id: str | None = None
    ) -> AsyncIterator[tuple[str, uuid.UUID]]:
        merged = merge_sorted(
            [node.iter_blocks(organization_id) for node in self.nodes],
            tolerance=self.listing_tolerance,
            what=f"{self.kind} listing",
        )
        async with aclosing(merged):
            async for item in merged:
                yield item


async def merge_sorted(
    sources: Sequence[AsyncIterator[tuple[str, uuid.UUID]]], *, tolerance: int, what: str
) -> AsyncGenerator[tuple[str, uuid.UUID], None]:
    """Merge sorted listings into one sorted listing without duplicates.

    Up to `tolerance` sources may fail (at any point): they are dropped and the merge goes on.
    """
    heads: dict[int, tuple[str, uuid.UUID]] = {}
    failures: list[str] = []

    async def advance(i: int) -> None:
        try:
            heads[i] = await anext(sources[i])
        except StopAsyncIteration:
            heads.pop(i, None)
        except BlockstoreUnavailable as exc:
            heads.pop(i, None)
            failures.append(f"node {i}: {exc}")
            if len(failures) > tolerance:
                raise BlockstoreUnavailable(f"{what} failed on {'; '.join(failures)}") from exc

    try:
        for i in range(len(sources)):
            await advance(i)
        while heads:
            smallest = min(heads.values())
            yield smallest
            for i in [i for i, head in heads.items() if head == smallest]:
                await advance(i)
    finally:
        for source in sources:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()


class Raid0Blockstore(_RaidBlockstore):
    """Stripe: each block on one node."""

    kind = "RAID0"

    def node_index(self, block_id: uuid.UUID) -> int:
        return block_id.int % len(self.nodes)

    async def create(self, organization_id: str, block_id: uuid.UUID, data: bytes) -> None:
        i = self.node_index(block_id)
        await self._tracked(i, self.nodes[i].create(organization_id, block_id, data))

    async def read(self, organization_id: str, block_id: uuid.UUID) -> bytes:
        i = self.node_index(block_id)
        return await self._tracked(i, self.nodes[i].read(organization_id, block_id))

    async def delete(self, organization_id: str, block_id: uuid.UUID) -> None:
        i = self.node_index(block_id)
        await self._tracked(i, self.nodes[i].delete(organization_id, block_id))


class Raid1Blockstore(_RaidBlockstore):
    """Mirror: every block on every node."""

    kind = "RAID1"

    def __init__(self, nodes: Sequence[Blockstore]) -> None:
        super().__init__(nodes)
        self.listing_tolerance = len(self.nodes) - 1

    async def create(self, organization_id: str, block_id: uuid.UUID, data: bytes) -> None:
        await self._on_all(
            f"create of {organization_id}/{block_id}",
            lambda i, node: node.create(organization_id, block_id, data),
        )

    def read_order(self) -> list[int]:
        """Node indexes in the order a read asks them: healthy ones first, each group by index."""
        return sorted(range(len(self.nodes)), key=self._health.suspect)

    async def read(self, organization_id: str, block_id: uuid.UUID) -> bytes:
        failures: list[BlockstoreUnavailable] = []
        for i in self.read_order():
            try:
                return await self._tracked(i, self.nodes[i].read(organization_id, block_id))
            except BlockstoreUnavailable as exc:
                failures.append(exc)
        details = "; ".join(str(exc) for exc in failures)
        if all(isinstance(exc, BlockNotFound) for exc in failures):
            raise BlockNotFound(f"RAID1: no node has {organization_id}/{block_id}: {details}")
        raise BlockstoreUnavailable(f"RAID1 read of {organization_id}/{block_id} failed: {details}")

    async def delete(self, organization_id: str, block_id: uuid.UUID) -> None:
        await self._on_all(
            f"delete of {organization_id}/{block_id}",
            lambda i, node: node.delete(organization_id, block_id),
        )


# --- RAID5 payload layout ------------------------------------------------------------------------


def xor_bytes(chunks: Sequence[bytes]) -> bytes:
    """XOR of equal-length byte strings (big integers: one C loop per chunk)."""
    size = len(chunks[0])
    acc = 0
    for chunk in chunks:
        acc ^= int.from_bytes(chunk, "big")
    return acc.to_bytes(size, "big")


def raid5_split(data: bytes, data_nodes: int) -> list[bytes]:
    """`data_nodes` data chunks then the parity chunk, all of the same length."""
    payload_len = _LENGTH.size + len(data)
    chunk_len = -(-payload_len // data_nodes)  # ceil
    payload = _LENGTH.pack(len(data)) + data + bytes(chunk_len * data_nodes - payload_len)
    chunks = [payload[k * chunk_len : (k + 1) * chunk_len] for k in range(data_nodes)]
    return [*chunks, xor_bytes(chunks)]


def raid5_join(chunks: Sequence[bytes | None]) -> bytes:
    """The block from its data chunks then parity chunk, at most one of them missing (`None`)."""
    missing = [k for k, chunk in enumerate(chunks) if chunk is None]
    if len(missing) > 1:
        raise ValueError(f"{len(missing)} chunks missing, RAID5 rebuilds at most one")
    present = [chunk for chunk in chunks if chunk is not None]
    chunk_len = len(present[0])
    if any(len(chunk) != chunk_len for chunk in present):
        raise ValueError("RAID5 chunks of different lengths")
    data_chunks = list(chunks[:-1])
    if missing and missing[0] < len(data_chunks):
        data_chunks[missing[0]] = xor_bytes(present)  # XOR of all the others, parity included
    payload = b"".join(c for c in data_chunks if c is not None)
    if len(payload) < _LENGTH.size:
        raise ValueError("RAID5 payload shorter than its length prefix")
    (length,) = _LENGTH.unpack_from(payload)
    data_nodes = len(data_chunks)
    if -(-(_LENGTH.size + length) // data_nodes) != chunk_len:
        raise ValueError(f"RAID5 length prefix {length} does not match chunks of {chunk_len} bytes")
    return payload[_LENGTH.size : _LENGTH.size + length]


class Raid5Blockstore(_RaidBlockstore):
    """Stripe with parity on the last node; survives one missing node on read."""

    kind = "RAID5"
    listing_tolerance = 1

    def __init__(self, nodes: Sequence[Blockstore]) -> None:
        if len(nodes) < 3:
            raise ValueError("RAID5 needs at least 3 nodes")
        super().__init__(nodes)

    async def create(self, organization_id: str, block_id: uuid.UUID, data: bytes) -> None:
        chunks = raid5_split(data, len(self.nodes) - 1)
        await self._on_all(
            f"create of {organization_id}/{block_id}",
            lambda i, node: node.create(organization_id, block_id, chunks[i]),
        )

    async def read(self, organization_id: str, block_id: uuid.UUID) -> bytes:
        n = len(self.nodes)
        parity = n - 1
        chunks: list[bytes | None] = [None] * n
        failures: dict[int, BlockstoreUnavailable] = {}
        tasks: dict[asyncio.Task[bytes], int] = {}

        def fetch(i: int) -> None:
            task = asyncio.create_task(
                self._tracked(i, self.nodes[i].read(organization_id, block_id))
            )
            tasks[task] = i

        def enough() -> bool:
            data_got = sum(chunk is not None for chunk in chunks[:parity])
            return data_got == parity or (chunks[parity] is not None and data_got == parity - 1)

        # Data chunks first; the parity chunk too if a data node failed recently.
        for i in range(n - 1):
            fetch(i)
        if any(self._health.suspect(i) for i in range(n - 1)):
            fetch(parity)
        try:
            while tasks and not enough() and len(failures) <= 1:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    i = tasks.pop(task)
                    exc = task.exception()
                    if exc is None:
                        chunks[i] = task.result()
                    elif isinstance(exc, BlockstoreUnavailable):
                        failures[i] = exc
                        parity_asked = parity in failures or parity in tasks.values()
                        if chunks[parity] is None and not parity_asked:
                            fetch(parity)
                    else:
                        raise exc  # a bug
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

        if not enough():
            details = "; ".join(self._node_error(i, exc) for i, exc in sorted(failures.items()))
            where = f"{organization_id}/{block_id}"
            if failures and all(isinstance(exc, BlockNotFound) for exc in failures.values()):
                raise BlockNotFound(f"RAID5: too few chunks of {where}: {details}")
            raise BlockstoreUnavailable(f"RAID5 read of {where} failed: {details}")
        # N-1 chunks suffice: with every data chunk at hand, ignore the parity.
        if all(chunk is not None for chunk in chunks[:parity]):
            chunks[parity] = None
        try:
            return raid5_join(chunks)
        except ValueError as exc:
            raise BlockstoreUnavailable(
                f"RAID5: corrupted chunks of {organization_id}/{block_id}: {exc}"
            ) from exc

    async def delete(self, organization_id: str, block_id: uuid.UUID) -> None:
        await self._on_all(
            f"delete of {organization_id}/{block_id}",
            lambda i, node: node.delete(organization_id, block_id),
        )
