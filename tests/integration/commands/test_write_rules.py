"""The SQL `ok` condition of a realm write is true exactly when `write_refusal()` finds no refusal.

Generated facts (what a write statement reads: realm status, role, key index, topic timestamps,
current version, author state) and generated requests are evaluated by the real PostgreSQL, through
the very condition the write statements embed (`write_ok_sql`, over a VALUES row), and by
`write_refusal()` in Python: both must agree, for vlob-like writes (timestamped, versioned or
created) and block-like writes (no timestamp).
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterator

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsec_server.storage.write_rules import Refusal, WriteFacts, write_ok_sql, write_refusal

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
# A few instants, so that equal and neighbouring timestamps come up often.
TIMES = st.sampled_from([T0 + datetime.timedelta(microseconds=d) for d in (-1, 0, 1)])
# Weighted towards what lets a write through, so that accepted writes come up too.
STATUSES = st.sampled_from(["AVAILABLE"] * 4 + ["ARCHIVED", "DELETION_PLANNED", "DELETED"])
ROLES = st.sampled_from([None, "OWNER", "MANAGER", "CONTRIBUTOR", "READER"])
KEY_INDEXES = st.integers(0, 1)
VERSIONS = st.none() | st.integers(1, 2)


@st.composite
def write_facts(draw: st.DrawFn) -> WriteFacts:
    if not draw(st.booleans()):
        return WriteFacts(False, None, None, None, None, None, None)
    return WriteFacts(
        realm_found=True,
        status=draw(STATUSES),
        role=draw(ROLES),
        key_index=draw(KEY_INDEXES),
        common_ts=draw(TIMES),
        realm_ts=draw(TIMES),
        current_version=draw(VERSIONS),
    )


def _query(timestamped: bool) -> str:
    cond = write_ok_sql(
        "f",
        key_index="$10::int",
        version="$11::int",
        update="$12::bool",
        timestamp="$13::timestamptz" if timestamped else None,
        in_ballpark="$14::bool" if timestamped else None,
    )
    # Parameters a condition leaves unused still need a type: the extra columns give them one.
    return f"""
SELECT ({cond}) IS TRUE, $13::timestamptz, $14::bool
FROM (VALUES (
    $1::bool, $2::bool, $3::bool, $4::text, $5::text, $6::int, $7::timestamptz, $8::timestamptz,
    $9::int
)) AS f(is_expired, revoked, stale, status, role, key_index, common_ts, realm_ts, current_version)
"""


@pytest.fixture
def conn_loop(db_url: str) -> Iterator[tuple[asyncio.AbstractEventLoop, asyncpg.Connection]]:
    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(asyncpg.connect(db_url))
    try:
        yield loop, conn
    finally:
        loop.run_until_complete(conn.close())
        loop.close()


@pytest.mark.parametrize("timestamped", [True, False], ids=["vlob", "block"])
def test_sql_ok_exactly_when_no_refusal(
    conn_loop: tuple[asyncio.AbstractEventLoop, asyncpg.Connection], timestamped: bool
) -> None:
    loop, conn = conn_loop
    query = _query(timestamped)
    seen: set[Refusal | None] = set()

    @settings(
        max_examples=1500,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        facts=write_facts(),
        is_expired=st.booleans(),
        revoked=st.booleans(),
        stale=st.booleans(),
        key_index=KEY_INDEXES,
        expect=st.just("create") | st.integers(1, 3),
        timestamp=st.sampled_from([T0, T0 + datetime.timedelta(microseconds=2)]),
        in_ballpark=st.booleans(),
    )
    def check(
        facts: WriteFacts,
        is_expired: bool,
        revoked: bool,
        stale: bool,
        key_index: int,
        expect: int | str,
        timestamp: datetime.datetime,
        in_ballpark: bool,
    ) -> None:
        update = expect != "create"
        refusal = write_refusal(
            facts,
            key_index=key_index,
            expect=expect if isinstance(expect, int) else "create",
            timestamp=timestamp if timestamped else None,
            in_ballpark=in_ballpark,
            key_index_first=not timestamped,  # block_create's order
        )
        seen.add(refusal)
        sql_ok, _, _ = loop.run_until_complete(
            conn.fetchrow(
                query,
                is_expired,
                revoked,
                stale,
                facts.status,
                facts.role,
                facts.key_index,
                facts.common_ts,
                facts.realm_ts,
                facts.current_version,
                key_index,
                expect if isinstance(expect, int) else 1,
                update,
                timestamp,
                in_ballpark,
            )
        )
        expected = refusal is None and not (is_expired or revoked or stale)
        assert sql_ok is expected, (refusal, is_expired, revoked, stale)

    check()
    # The generated cases reached every rule (a strategy gone narrow would prove nothing).
    expected_seen = set(Refusal) | {None}
    if not timestamped:
        expected_seen -= {
            Refusal.TIMESTAMP_OUT_OF_BALLPARK,
            Refusal.REQUIRE_GREATER_COMMON_TIMESTAMP,
            Refusal.REQUIRE_GREATER_REALM_TIMESTAMP,
        }
    assert seen == expected_seen, expected_seen - seen


def test_refusal_order() -> None:
    """The first rule broken wins, in the official order."""
    facts = WriteFacts(True, "ARCHIVED", "READER", 1, T0, T0, None)
    kw = {"key_index": 0, "timestamp": T0, "in_ballpark": False}
    assert write_refusal(facts, expect=3, **kw) is Refusal.REALM_ARCHIVED  # type: ignore[arg-type]
    facts = WriteFacts(True, "AVAILABLE", "READER", 1, T0, T0, None)
    assert write_refusal(facts, expect=3, **kw) is Refusal.AUTHOR_NOT_ALLOWED  # type: ignore[arg-type]
    facts = WriteFacts(True, "AVAILABLE", "OWNER", 1, T0, T0, None)
    assert write_refusal(facts, expect=3, **kw) is Refusal.BAD_KEY_INDEX  # type: ignore[arg-type]
    facts = WriteFacts(True, "AVAILABLE", "OWNER", 0, T0, T0, 1)
    assert write_refusal(facts, expect=3, **kw) is Refusal.BAD_VLOB_VERSION  # type: ignore[arg-type]
    assert write_refusal(facts, expect=2, **kw) is Refusal.TIMESTAMP_OUT_OF_BALLPARK  # type: ignore[arg-type]
    later = T0 + datetime.timedelta(seconds=1)
    facts = WriteFacts(True, "AVAILABLE", "OWNER", 0, later, later, 1)
    assert (
        write_refusal(facts, expect="create", key_index=0, timestamp=T0, in_ballpark=True)
        is Refusal.REQUIRE_GREATER_COMMON_TIMESTAMP
    )
    facts = WriteFacts(True, "AVAILABLE", "OWNER", 0, T0, T0, 1)
    assert (
        write_refusal(facts, expect="create", key_index=0, timestamp=later, in_ballpark=True)
        is Refusal.ALREADY_EXISTS
    )
