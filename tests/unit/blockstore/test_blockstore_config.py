"""Which blockstore configurations `build_blockstore` accepts (protocol.md §6.2)."""

from __future__ import annotations

import pytest

from parsec_server.blockstore import check_blockstore_config
from parsec_server.config import BlockstoreConfig

PG = BlockstoreConfig("POSTGRESQL")


def s3(bucket: str, endpoint: str | None = "http://127.0.0.1:9000") -> BlockstoreConfig:
    return BlockstoreConfig("S3", s3_endpoint=endpoint, s3_region="r", s3_bucket=bucket)


@pytest.mark.parametrize(
    "config",
    [
        PG,
        s3("b"),
        BlockstoreConfig("RAID0", nodes=(PG,)),
        BlockstoreConfig("RAID0", nodes=(PG, PG)),  # pointless but harmless
        BlockstoreConfig("RAID1", nodes=(PG, s3("a"), s3("b"))),
        BlockstoreConfig("RAID1", nodes=(s3("a"), s3("a", endpoint="http://other:9000"))),
        BlockstoreConfig("RAID5", nodes=(PG, s3("a"), s3("b"))),
    ],
)
def test_accepted(config: BlockstoreConfig) -> None:
    check_blockstore_config(config)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (BlockstoreConfig("MOCKED"), "unknown blockstore kind"),
        (BlockstoreConfig("RAID1"), "at least one node"),
        (BlockstoreConfig("RAID5", nodes=(PG, s3("a"))), "at least 3 nodes"),
        (BlockstoreConfig("RAID5", nodes=(PG, s3("a"), PG)), "nodes 0 and 2 are the same store"),
        (BlockstoreConfig("RAID1", nodes=(s3("a"), s3("a"))), "nodes 0 and 1 are the same store"),
        (
            BlockstoreConfig("RAID1", nodes=(PG, BlockstoreConfig("RAID0", nodes=(PG,)))),
            "cannot itself be a RAID",
        ),
        (BlockstoreConfig("POSTGRESQL", nodes=(PG,)), "has no nodes"),
        (BlockstoreConfig("POSTGRESQL", timeout=0), "timeout must be positive"),
        (BlockstoreConfig("RAID1", nodes=(PG,), timeout=-1), "timeout must be positive"),
    ],
)
def test_refused(config: BlockstoreConfig, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_blockstore_config(config)
