"""RAID groups of blockstores (`--blockstore RAIDn:<node>:<config>`, protocol.md §6.2).

* RAID0, stripe: a block lives on node `block_id.int % N` only.
* RAID1, mirror: a block is written to every node at once. The create succeeds when at least one
  node stored it: with a node down, blocks are still accepted on the others (logged as
  `blockstore_raid1_degraded_write`, each naming the block and the nodes lacking it; the group is
  not redundant for those blocks until the node is back and they are copied to it). Once a node
  stored the block, a create does not wait for nodes that failed in the last `SUSPECT_FOR` s.
  A read asks the nodes in turn (nodes that failed recently last), starting the next one as soon
  as one fails or is slow to answer, and returns the first data; a node that lacks the block is
  no failure as long as another has it.
* RAID5, striping with parity: the payload `u32 BE length || block || zero padding` is split into
  N-1 equal chunks stored on nodes 0..N-2, and their XOR on node N-1. The create fails unless all N
  writes succeed; a read needs any N-1 of the N chunks (the parity is fetched as soon as a data
  node fails or is slow to answer).

Every operation of a group, on all its nodes, ends within the group's `timeout`
(`--blockstore-timeout`): a node that has not answered by then counts as failed. Operations that
need every node (RAID5 creates, deletes) end at the first failure, and do not wait for a node that
failed in the last `SUSPECT_FOR` s once the others answered.

Every node of a RAID1/RAID5 group holds an entry for every block whose create succeeded with all
nodes up, so `iter_blocks` merges the nodes' sorted listings and tolerates as many dead nodes as a
read does.
"""

from __future__ import annotations

import asyncio
import functools
import struct
import time
import uuid
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Sequence,
)
from contextlib import aclosing
from typing import TypeVar

from parsec_server.blockstore.base import BlockNotFound, Blockstore, BlockstoreUnavailable
from parsec_server.config import DEFAULT_BLOCKSTORE_TIMEOUT
from parsec_server.log import get_logger

log = get_logger(__name__)

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

    def __init__(
        self, nodes: Sequence[Blockstore], *, timeout: float = DEFAULT_BLOCKSTORE_TIMEOUT
    ) -> None:
        if not nodes:
            raise ValueError(f"{self.kind} needs at least one node")
        if timeout <= 0:
            raise ValueError("the blockstore timeout must be positive")
        self.nodes = tuple(nodes)
        self.timeout = timeout
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

    def _no_answer(self, index: int) -> BlockstoreUnavailable:
        """A node that has not answered within the group's bound: recorded as failed."""
        self._health.failed(index)
        return BlockstoreUnavailable(f"no answer within {self.timeout:g} s")

    async def _on_each(
        self,
        op: Callable[[int, Blockstore], Awaitable[None]],
        *,
        all_needed: bool = True,
    ) -> dict[int, BlockstoreUnavailable]:
        """Run `op` on every node at once, for at most `timeout`; the nodes that failed.

        A node still busy at the deadline is cancelled and counts as failed. With `all_needed`,
        the first failure ends the operation (the others are cancelled: it fails anyway). Once the
        other nodes answered, the operation does not wait for nodes that failed in the last
        `SUSPECT_FOR` seconds: each dead node makes one operation wait the whole `timeout` every
        `SUSPECT_FOR` seconds, not every one.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        tasks = {
            asyncio.ensure_future(self._tracked(i, functools.partial(op, i, node))): i
            for i, node in enumerate(self.nodes)
        }
        failures: dict[int, BlockstoreUnavailable] = {}
        succeeded = 0
        pending = set(tasks)
        reason = "no answer in time"
        try:
            while pending and loop.time() < deadline:
                done, pending = await asyncio.wait(
                    pending, timeout=deadline - loop.time(), return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    exc = task.exception()
                    if isinstance(exc, BlockstoreUnavailable):
                        failures[tasks[task]] = exc
                    elif exc is not None:
                        raise exc  # a bug
                    else:
                        succeeded += 1
                if all_needed and failures:
                    reason = "cancelled: another node failed"
                    break
                if succeeded and all(self._health.suspect(tasks[t]) for t in pending):
                    reason = f"not waited for: failed in the last {SUSPECT_FOR:g} s"
                    break
            for task in pending:
                i = tasks[task]
                if loop.time() >= deadline:
                    failures[i] = self._no_answer(i)
                else:
                    failures[i] = BlockstoreUnavailable(reason)
        finally:
            await _cancel(tasks)
        return failures

    def _failed(self, what: str, failures: dict[int, BlockstoreUnavailable]) -> str:
        details = "; ".join(self._node_error(i, exc) for i, exc in sorted(failures.items()))
        return f"{self.kind} {what} failed on {details}"

    async def _on_all(self, what: str, op: Callable[[int, Blockstore], Awaitable[None]]) -> None:
        """Run `op` on every node at once; fail unless every node succeeded within `timeout`."""
        failures = await self._on_each(op)
        if failures:
            raise BlockstoreUnavailable(self._failed(what, failures))

    async def _tracked(self, index: int, op: Callable[[], Awaitable[T]]) -> T:
        """Run a node operation (at most `timeout`), recording whether the node answered.

        `BlockNotFound` is an answer: the node is alive. `op` makes the coroutine only once the
        task runs: a task cancelled before it starts leaves no coroutine never awaited.
        """
        try:
            async with asyncio.timeout(self.timeout):
                res = await op()
        except BlockNotFound:
            self._health.succeeded(index)
            raise
        except BlockstoreUnavailable:
            self._health.failed(index)
            raise
        except TimeoutError:
            raise self._no_answer(index) from None
        self._health.succeeded(index)
        return res

    def _read_task(
        self, index: int, organization_id: str, block_id: uuid.UUID
    ) -> asyncio.Task[bytes]:
        node = self.nodes[index]
        return asyncio.create_task(
            self._tracked(index, lambda: node.read(organization_id, block_id))
        )

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


async def _cancel(tasks: Iterable[asyncio.Future[T]]) -> None:
    """Cancel the tasks still running and wait until they are all finished."""
    running = [task for task in tasks if not task.done()]
    for task in running:
        task.cancel()
    if running:
        await asyncio.gather(*running, return_exceptions=True)


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
        await self._tracked(i, lambda: self.nodes[i].create(organization_id, block_id, data))

    async def read(self, organization_id: str, block_id: uuid.UUID) -> bytes:
        i = self.node_index(block_id)
        return await self._tracked(i, lambda: self.nodes[i].read(organization_id, block_id))

    async def delete(self, organization_id: str, block_id: uuid.UUID) -> None:
        i = self.node_index(block_id)
        await self._tracked(i, lambda: self.nodes[i].delete(organization_id, block_id))


class Raid1Blockstore(_RaidBlockstore):
    """Mirror: every block on every node (on the nodes that are up when it is created)."""

    kind = "RAID1"

    def __init__(
        self, nodes: Sequence[Blockstore], *, timeout: float = DEFAULT_BLOCKSTORE_TIMEOUT
    ) -> None:
        super().__init__(nodes, timeout=timeout)
        self.listing_tolerance = len(self.nodes) - 1

    async def create(self, organization_id: str, block_id: uuid.UUID, data: bytes) -> None:
        what = f"create of {organization_id}/{block_id}"
        failures = await self._on_each(
            lambda i, node: node.create(organization_id, block_id, data), all_needed=False
        )
        if len(failures) == len(self.nodes):
            raise BlockstoreUnavailable(self._failed(what, failures))
        if failures:
            # Stored, on fewer copies: refusing would not make the block safer (the client keeps
            # retrying while the node is down), accepting keeps the service up. Logged per block
            # so that an operator can copy them to the node once it is back.
            log.warning(
                "blockstore_raid1_degraded_write",
                organization_id=organization_id,
                block_id=block_id.hex,
                missing_on=sorted(failures),
                error=self._failed(what, failures),
            )

    def read_order(self) -> list[int]:
        """Node indexes in the order a read asks them: healthy ones first, each group by index."""
        return sorted(range(len(self.nodes)), key=self._health.suspect)

    async def read(self, organization_id: str, block_id: uuid.UUID) -> bytes:
        """The first data a node answers, asking the next node whenever one fails or is slow.

        Each node gets `timeout / N` before the next one is asked as well; the whole read ends
        within `timeout`.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        hedge = self.timeout / len(self.nodes)
        to_ask = self.read_order()
        tasks: dict[asyncio.Task[bytes], int] = {}
        failures: dict[int, BlockstoreUnavailable] = {}
        asked: list[int] = []
        next_ask = loop.time()
        try:
            while True:
                now = loop.time()
                if to_ask and (now >= next_ask or not tasks):
                    i = to_ask.pop(0)
                    tasks[self._read_task(i, organization_id, block_id)] = i
                    asked.append(i)
                    next_ask = now + hedge
                if not tasks or now >= deadline:
                    break
                until = min(deadline, next_ask) if to_ask else deadline
                done, _ = await asyncio.wait(
                    tasks, timeout=max(0.0, until - now), return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    i = tasks.pop(task)
                    exc = task.exception()
                    if exc is None:
                        # Nodes asked earlier that still have not answered were too slow: they
                        # are asked last for a while (see `_NodeHealth`).
                        for j in tasks.values():
                            if asked.index(j) < asked.index(i):
                                self._health.failed(j)
                        return task.result()
                    if not isinstance(exc, BlockstoreUnavailable):
                        raise exc  # a bug
                    failures[i] = exc
                    next_ask = loop.time()  # a node failed: ask the next one now
            for i in tasks.values():
                failures[i] = self._no_answer(i)
            for i in to_ask:
                failures[i] = BlockstoreUnavailable("not asked: no time left")
        finally:
            await _cancel(tasks)
        details = "; ".join(self._node_error(i, exc) for i, exc in sorted(failures.items()))
        if all(isinstance(exc, BlockNotFound) for exc in failures.values()):
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

    def __init__(
        self, nodes: Sequence[Blockstore], *, timeout: float = DEFAULT_BLOCKSTORE_TIMEOUT
    ) -> None:
        if len(nodes) < 3:
            raise ValueError("RAID5 needs at least 3 nodes")
        super().__init__(nodes, timeout=timeout)

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
            tasks[self._read_task(i, organization_id, block_id)] = i

        def enough() -> bool:
            data_got = sum(chunk is not None for chunk in chunks[:parity])
            return data_got == parity or (chunks[parity] is not None and data_got == parity - 1)

        # Data chunks first; the parity chunk too if a data node failed recently, or as soon as
        # one fails or all the data chunks are not there after half the time.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        hedge_at = loop.time() + self.timeout / 2

        def parity_asked() -> bool:
            return chunks[parity] is not None or parity in failures or parity in tasks.values()

        for i in range(n - 1):
            fetch(i)
        if any(self._health.suspect(i) for i in range(n - 1)):
            fetch(parity)
        try:
            while tasks and not enough() and len(failures) <= 1:
                now = loop.time()
                if now >= deadline:
                    break
                until = deadline if parity_asked() else min(deadline, hedge_at)
                done, _ = await asyncio.wait(
                    tasks, timeout=max(0.0, until - now), return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    i = tasks.pop(task)
                    exc = task.exception()
                    if exc is None:
                        chunks[i] = task.result()
                    elif isinstance(exc, BlockstoreUnavailable):
                        failures[i] = exc
                    else:
                        raise exc  # a bug
                if not parity_asked() and (failures or loop.time() >= hedge_at):
                    fetch(parity)
            if not enough() and loop.time() >= deadline:
                for i in tasks.values():
                    failures[i] = self._no_answer(i)
            elif enough() and chunks[parity] is not None:
                # Rebuilt from the parity: the data nodes that have not answered were too slow,
                # the next reads fetch the parity at once (see `_NodeHealth`).
                for i in tasks.values():
                    if i != parity:
                        self._health.failed(i)
        finally:
            await _cancel(tasks)

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
