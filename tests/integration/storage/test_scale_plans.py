"""Plans that must not grow with the database (issue 17, docs/dev/performance.md "Data scale").

The server's pool runs generic plans (storage/db.py: `plan_cache_mode = force_generic_plan`). In a
generic plan a filter such as `$3 IS NULL OR certified_on > $3` is no index bound: the index scan
then reads every row of the prefix (every certificate of the organization) and filters them. These
tests plan the statements as the pool does, on an empty migrated schema with sequential scans
disabled (so the index is used whatever the table statistics), and check which columns bound the
index scans.
"""

from __future__ import annotations

import re

import asyncpg

from parsec_server.storage import certificate, organization, realm, vlob


async def _generic_plan(
    db_url: str, query: str, types: str, args: str, settings: str = ""
) -> list[str]:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off;"
            " SET enable_bitmapscan = off;" + settings
        )
        await conn.execute(f"PREPARE q {f'({types})' if types else ''} AS {query}")
        return [r[0] for r in await conn.fetch(f"EXPLAIN EXECUTE q {f'({args})' if args else ''}")]
    finally:
        await conn.close()


def _index_conds(plan: list[str], index: str) -> list[str]:
    """The `Index Cond` of every scan of `index` in a text plan."""
    conds = []
    for k, line in enumerate(plan):
        if re.search(rf"Index (Only )?Scan (Backward )?using {index} ", line):
            cond = next((ln for ln in plan[k + 1 :] if "Index Cond:" in ln), "")
            conds.append(cond)
    return conds


async def test_certificate_get_after_bounds_the_index_scans(db_url: str) -> None:
    """certificate_get with timestamps (a client that is up to date asks for what is new): the
    timestamps bound the scans of both certificate indexes, in the generic plan."""
    plan = await _generic_plan(
        db_url,
        certificate._Q_GET,
        "bigint, bigint, timestamptz, timestamptz, timestamptz, uuid[], timestamptz[]",
        "1, 1, now(), now(), now(), ARRAY[gen_random_uuid()], ARRAY[now()]",
    )
    topic_conds = _index_conds(plan, "certificate_organization_topic")
    realm_conds = _index_conds(plan, "certificate_realm")
    assert len(topic_conds) == 3, "\n".join(plan)  # common, sequester, shamir_recovery
    assert len(realm_conds) == 1, "\n".join(plan)
    for cond in topic_conds + realm_conds:
        assert "certified_on >" in cond, "\n".join(plan)


def _unbounded_scans(plan: list[str], table: str) -> list[str]:
    """Scans of `table` that read it whole: sequential scans, and index scans without a condition."""
    found = []
    for k, line in enumerate(plan):
        if re.search(rf"Seq Scan on {table} ", line):
            found.append(line)
        elif re.search(rf"Index (Only )?Scan (Backward )?using \w+ on {table} ", line):
            depth = len(line) - len(line.lstrip())
            detail = []
            for ln in plan[k + 1 :]:
                if "->" in ln or len(ln) - len(ln.lstrip()) <= depth:
                    break
                detail.append(ln)
            if not any("Index Cond:" in ln for ln in detail):
                found.append(line)
    return found


async def test_realm_get_keys_bundle_reads_one_sharing(db_url: str) -> None:
    """realm_get_keys_bundle: the sharing that gave an access is read by its id, not joined (on
    a big database the generic plan of the join hashed every realm_user_role row of the server;
    nested loops are disabled here to plan as PostgreSQL did there, whatever the statistics)."""
    plan = await _generic_plan(
        db_url,
        realm._Q_GET_KEYS_BUNDLE,
        "bigint, uuid, bigint, int",
        "1, gen_random_uuid(), 1, 1",
        "SET enable_nestloop = off",
    )
    assert _unbounded_scans(plan, "realm_user_role") == [], "\n".join(plan)
    assert "realm_user_role" in "\n".join(plan)


async def test_stats_now_read_the_kept_totals_once(db_url: str) -> None:
    """Administration stats now (of one organization, of all): each organization's sizes are
    summed once (a materialized CTE: the inlined sums were computed again per organization), from
    the totals the writes keep (0008: `realm.vlob_bytes`, `realm_block_usage`), never from the
    vlob_atom or block rows (before 0008: index-only scans of every row's size, growing with the
    data)."""
    for query, types, args in (
        (organization._Q_STATS_ORG, "text", "'org'"),
        (organization._Q_STATS_ALL, "", ""),
    ):
        plan = await _generic_plan(
            db_url, query, types, args, "SET enable_hashjoin = off; SET enable_mergejoin = off"
        )
        text = "\n".join(plan)
        assert "CTE sizes" in text, text
        assert "realm_block_usage" in text, text
        assert "vlob_atom" not in text and " on block " not in text, text
        assert "IS NULL" not in text, text


async def test_vlob_read_versions_looks_each_item_up(db_url: str) -> None:
    """vlob_read_versions: one index lookup per (vlob, version), never a scan of the realm's
    versions hashed against the items (the generic plan chose that where realms are small on
    average: every version of a big realm read for 10 items). Nested loops are disabled here to
    plan as PostgreSQL did there."""
    plan = await _generic_plan(
        db_url,
        vlob._Q_READ_VERSIONS,
        "bigint, bigint, uuid, uuid[], int[]",
        "1, 1, gen_random_uuid(), ARRAY[gen_random_uuid()], ARRAY[1]",
        "SET enable_nestloop = off",
    )
    conds = _index_conds(plan, r"\w+ on vlob_atom")
    assert conds and "Seq Scan on vlob_atom" not in "\n".join(plan), "\n".join(plan)
    for cond in conds:
        assert "vlob_id =" in cond and "version =" in cond, "\n".join(plan)


async def test_invite_list_reads_only_the_rows_its_invitations_point_to(db_url: str) -> None:
    """invite_list: the invitations through indexes bounded by the organization or the author,
    their authors and claimers by primary key. On a big database the generic plan of the joined
    statement hashed every user_ and human row of the server (and the devices); hash joins are
    forced here (nested and merge joins disabled) to plan as PostgreSQL did there."""
    from parsec_server.storage import invite

    plan = await _generic_plan(
        db_url,
        invite._Q_LIST,
        "bigint, bigint",
        "1, 1",
        "SET enable_nestloop = off; SET enable_mergejoin = off",
    )
    text = "\n".join(plan)
    for table in (
        "invitation",
        "user_",
        "human",
        "device",
        "organization",
        "shamir_recovery_setup",
        "shamir_recovery_share",
    ):
        assert _unbounded_scans(plan, table) == [], text
        assert re.search(rf" on {table} ", text), (table, text)


async def test_stats_now_count_users_in_heap_order_without_a_lookup_per_user(db_url: str) -> None:
    """Administration stats now: each user's profile is the one user_ keeps (no lookup of its
    last profile update per user), and the organization's users are read in heap order (a
    bitmap or sequential scan), not through an index one heap page per user: the generic plan
    expects an average organization's few users and did that for an organization of 50,000
    (50,226 pages read, 79 ms of PostgreSQL per request at bench/scale.py's xlarge size).
    Sequential scans are disabled here so that the old statement planned an index scan."""
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off")
        for query, args in (
            (organization._Q_STATS_ORG, ("org",)),
            (organization._Q_STATS_ALL, ()),
        ):
            rows = await organization._fetch_stats(conn, f"EXPLAIN {query}", *args)
            text = "\n".join(r[0] for r in rows)
            assert "user_profile_update" not in text, text
            assert re.search(r"(Bitmap Heap|Seq) Scan on user_ ", text), text
            assert not re.search(r"Index (Only )?Scan (Backward )?using \w+ on user_ ", text), text
    finally:
        await conn.close()


async def test_author_role_is_one_exact_lookup(db_url: str) -> None:
    """The author's role (`realm_member WHERE realm = ? AND user_ = ?`, in every realm-scoped
    statement) is read through an index bound by both columns: before 0009 the generic plans used
    the index on (user_) alone with the realm as a filter, reading every membership of the author
    (cost growing with the realms he is in). No index of realm_member has user_ alone any more."""
    conn = await asyncpg.connect(db_url)
    try:
        indexes = await conn.fetch(
            "SELECT indexrelid::regclass::text AS name, "
            "array(SELECT a.attname FROM unnest(indkey) WITH ORDINALITY AS k(attnum, n) "
            "JOIN pg_attribute a ON a.attrelid = indrelid AND a.attnum = k.attnum "
            "ORDER BY k.n) AS cols "
            "FROM pg_index WHERE indrelid = 'realm_member'::regclass"
        )
    finally:
        await conn.close()
    assert sorted(r["cols"] for r in indexes) == [["realm", "user_"], ["user_", "realm"]], indexes
    plan = await _generic_plan(
        db_url,
        vlob._Q_READ_BATCH,
        "bigint, bigint, uuid, uuid[], timestamptz",
        "1, 1, gen_random_uuid(), ARRAY[gen_random_uuid()], NULL",
    )
    conds = [
        cond
        for index in ("realm_member_pkey", "realm_member_user_realm")
        for cond in _index_conds(plan, index)
    ]
    assert conds, "\n".join(plan)
    for cond in conds:
        assert "realm =" in cond and "user_ =" in cond, "\n".join(plan)
