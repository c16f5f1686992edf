"""Where the data of blocks are kept: PostgreSQL, S3 or a RAID group of those (protocol.md §6.2)."""

from __future__ import annotations

from parsec_server.blockstore import raid
from parsec_server.blockstore.base import BlockNotFound, Blockstore, BlockstoreUnavailable
from parsec_server.blockstore.postgresql import PostgreSQLBlockstore
from parsec_server.config import BlockstoreConfig
from parsec_server.storage.db import Database

__all__ = [
    "BlockNotFound",
    "Blockstore",
    "BlockstoreUnavailable",
    "build_blockstore",
    "check_blockstore_config",
]


def _store_identity(config: BlockstoreConfig) -> tuple[str, ...]:
    """Two nodes with the same identity would write to the same place."""
    if config.kind == "S3":
        return ("S3", config.s3_endpoint or "", config.s3_bucket)
    return (config.kind,)


def check_blockstore_config(config: BlockstoreConfig) -> None:
    """`ValueError` (a message for the operator) for a configuration that cannot work.

    The nodes of a RAID1 or RAID5 group must be distinct stores: two RAID5 nodes on the same
    PostgreSQL database or S3 bucket would overwrite each other's chunks of a block, and a RAID1
    mirror on one store only pretends to be redundant.
    """
    if not config.timeout > 0:
        raise ValueError(f"the blockstore timeout must be positive, not {config.timeout!r}")
    if config.kind not in {"POSTGRESQL", "S3", "RAID0", "RAID1", "RAID5"}:
        raise ValueError(f"unknown blockstore kind {config.kind!r}")
    if config.kind.startswith("RAID"):
        if not config.nodes:
            raise ValueError(f"{config.kind} needs at least one node")
        if config.kind == "RAID5" and len(config.nodes) < 3:
            raise ValueError("RAID5 needs at least 3 nodes")
        for node in config.nodes:
            if node.kind.startswith("RAID"):
                raise ValueError("a RAID node cannot itself be a RAID group")
            check_blockstore_config(node)
        if config.kind in {"RAID1", "RAID5"}:
            seen: dict[tuple[str, ...], int] = {}
            for i, node in enumerate(config.nodes):
                identity = _store_identity(node)
                if identity in seen:
                    raise ValueError(
                        f"{config.kind} nodes {seen[identity]} and {i} are the same store "
                        f"({node.describe()}): each node needs its own database or bucket"
                    )
                seen[identity] = i
    elif config.nodes:
        raise ValueError(f"a {config.kind} blockstore has no nodes")


def build_blockstore(config: BlockstoreConfig, db: Database) -> Blockstore:
    """The blockstore described by `config` (not started: call `start()`).

    `config.timeout` bounds each operation of the store; the nodes of a RAID group get the group's.
    """
    check_blockstore_config(config)
    return _build(config, db, config.timeout)


def _build(config: BlockstoreConfig, db: Database, timeout: float) -> Blockstore:
    if config.kind == "POSTGRESQL":
        return PostgreSQLBlockstore(db)
    if config.kind == "S3":
        # Imported on demand: aiobotocore takes a while to import and only S3 needs it.
        from parsec_server.blockstore.s3 import S3Blockstore

        return S3Blockstore(
            endpoint_url=config.s3_endpoint,
            region=config.s3_region,
            bucket=config.s3_bucket,
            key=config.s3_key,
            secret=config.s3_secret,
            timeout=timeout,
        )
    nodes = [_build(node, db, timeout) for node in config.nodes]
    if config.kind == "RAID0":
        return raid.Raid0Blockstore(nodes, timeout=timeout)
    if config.kind == "RAID1":
        return raid.Raid1Blockstore(nodes, timeout=timeout)
    assert config.kind == "RAID5"
    return raid.Raid5Blockstore(nodes, timeout=timeout)
