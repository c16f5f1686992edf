"""Merging the sorted block listings of RAID nodes (raid.merge_sorted)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from parsec_server.blockstore import BlockstoreUnavailable
from parsec_server.blockstore.raid import merge_sorted

A, B, C, D = (uuid.UUID(int=n) for n in (1, 2, 3, 4))


async def listing(
    items: list[tuple[str, uuid.UUID]], fail_after: int | None = None
) -> AsyncIterator[tuple[str, uuid.UUID]]:
    for k, item in enumerate(items):
        if k == fail_after:
            raise BlockstoreUnavailable("node went away")
        yield item
    if fail_after is not None and fail_after >= len(items):
        raise BlockstoreUnavailable("node went away")


async def collect(it: AsyncIterator[tuple[str, uuid.UUID]]) -> list[tuple[str, uuid.UUID]]:
    return [item async for item in it]


async def test_merge_dedup() -> None:
    merged = merge_sorted(
        [
            listing([("a", A), ("a", C), ("b", A)]),
            listing([("a", B), ("a", C)]),
            listing([]),
            listing([("a", A), ("b", A), ("b", D)]),
        ],
        tolerance=0,
        what="test",
    )
    assert await collect(merged) == [("a", A), ("a", B), ("a", C), ("b", A), ("b", D)]


async def test_failure_within_tolerance() -> None:
    merged = merge_sorted(
        [listing([("a", A), ("a", B)], fail_after=1), listing([("a", A), ("a", B), ("a", C)])],
        tolerance=1,
        what="test",
    )
    assert await collect(merged) == [("a", A), ("a", B), ("a", C)]


@pytest.mark.parametrize("fail_after", [0, 1, 2])
async def test_failure_beyond_tolerance(fail_after: int) -> None:
    merged = merge_sorted(
        [listing([("a", A), ("a", B)], fail_after=fail_after), listing([("a", C)])],
        tolerance=0,
        what="test listing",
    )
    with pytest.raises(BlockstoreUnavailable, match="test listing failed on node 0"):
        await collect(merged)


async def test_early_exit_closes_sources() -> None:
    closed = []

    async def source() -> AsyncIterator[tuple[str, uuid.UUID]]:
        try:
            yield ("a", A)
            yield ("a", B)
        finally:
            closed.append(True)

    merged = merge_sorted([source(), source()], tolerance=0, what="test")
    async for _ in merged:
        break
    await merged.aclose()
    assert closed == [True, True]
