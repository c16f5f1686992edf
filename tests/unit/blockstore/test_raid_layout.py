"""RAID5 payload layout and RAID0 placement (protocol.md §6.2), without any store."""

from __future__ import annotations

import struct
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parsec_server.blockstore.raid import Raid0Blockstore, raid5_join, raid5_split, xor_bytes


def test_xor_bytes() -> None:
    assert xor_bytes([b"\x0f\xf0", b"\xff\x00", b"\x01\x01"]) == b"\xf1\xf1"
    assert xor_bytes([b"\x00\x00\x01"]) == b"\x00\x00\x01"  # leading zeros kept


def test_split_layout() -> None:
    # u32 BE length || block || zero padding, split into N-1 = 2 equal chunks, then XOR parity.
    chunks = raid5_split(b"abcde", 2)
    payload = struct.pack(">I", 5) + b"abcde" + b"\x00"
    assert chunks[:2] == [payload[:5], payload[5:]]
    assert chunks[2] == bytes(a ^ b for a, b in zip(payload[:5], payload[5:], strict=True))


def test_split_empty_block() -> None:
    chunks = raid5_split(b"", 3)
    assert chunks == [b"\x00\x00", b"\x00\x00", b"\x00\x00", b"\x00\x00"]
    assert raid5_join(chunks) == b""


@given(data=st.binary(max_size=3000), data_nodes=st.integers(2, 7), missing=st.integers(0, 7))
def test_join_rebuilds_any_single_missing_chunk(data: bytes, data_nodes: int, missing: int) -> None:
    chunks: list[bytes | None] = list(raid5_split(data, data_nodes))
    assert len(chunks) == data_nodes + 1
    assert len({len(c) for c in chunks if c is not None}) == 1
    assert raid5_join(chunks) == data
    chunks[missing % len(chunks)] = None
    assert raid5_join(chunks) == data


def test_join_refuses_two_missing_chunks() -> None:
    chunks: list[bytes | None] = list(raid5_split(b"hello world", 3))
    chunks[0] = chunks[2] = None
    with pytest.raises(ValueError, match="2 chunks missing"):
        raid5_join(chunks)


def test_join_detects_corruption() -> None:
    chunks: list[bytes | None] = list(raid5_split(b"hello world", 2))
    with pytest.raises(ValueError, match="different lengths"):
        raid5_join([chunks[0], b"x", chunks[2]])
    # A length prefix that does not fit the chunk size.
    bad = struct.pack(">I", 1000) + b"hello world" + b"\x00"
    with pytest.raises(ValueError, match="length prefix"):
        raid5_join([bad[:8], bad[8:], None])


def test_raid0_node_index() -> None:
    # Dummy nodes are never called: node_index only needs their number.
    raid = Raid0Blockstore([object(), object(), object()])  # type: ignore[list-item]
    for n in (0, 1, 2, 3, 2**128 - 1):
        assert raid.node_index(uuid.UUID(int=n)) == n % 3
