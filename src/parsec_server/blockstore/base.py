"""What every blockstore offers: where the (client-encrypted) data of blocks are kept.

The metadata of a block (realm, size, author...) lives in the database; a blockstore only maps
`(organization_id, block_id)` to bytes. `block_create` writes here first, then the metadata row
(protocol.md §4.6), so a store may hold orphan data from a failed create: creating an existing block
therefore overwrites it (or is a no-op), never fails.

Exceptions (both become `store_unavailable` on the wire, the distinction is for logs and tooling):

    BlockstoreUnavailable       the store failed or cannot be reached (message is for the logs)
     └── BlockNotFound          the store answered: it has no such block
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import AsyncIterator


class BlockstoreUnavailable(Exception):
    """The store failed or cannot be reached (message is for the operator's logs)."""


class BlockNotFound(BlockstoreUnavailable):
    """The store answered but holds no such block."""


class Blockstore(abc.ABC):
    """One store, or a RAID group of stores. `start()` once before use, `stop()` once at the end."""

    #: The data live in the `block_data` table of the server's own database: block_create and
    #: block_read then handle data and metadata in one statement (storage/block.py) instead of
    #: calling `create` / `read`.
    in_server_database: bool = False

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections. A store that cannot be reached yet must not fail here."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Release connections (idempotent)."""

    @abc.abstractmethod
    async def create(self, organization_id: str, block_id: uuid.UUID, data: bytes) -> None:
        """Store `data`, overwriting any previous data of that block."""

    @abc.abstractmethod
    async def read(self, organization_id: str, block_id: uuid.UUID) -> bytes:
        """The data of the block; `BlockNotFound` when the store has none."""

    @abc.abstractmethod
    async def delete(self, organization_id: str, block_id: uuid.UUID) -> None:
        """Forget the block; deleting a missing block is not an error."""

    @abc.abstractmethod
    def iter_blocks(
        self, organization_id: str | None = None
    ) -> AsyncIterator[tuple[str, uuid.UUID]]:
        """Every stored block (of one organization, or of all), each once.

        Sorted by organization id (code point order) then block id (`UUID` order), so that several
        stores can be merged without holding their listings in memory (see raid.py).
        """

    def describe(self) -> str:
        return type(self).__name__
