"""Concurrent runs: one applies, the others wait and report; starting servers never see a duplicate
key."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
from migration_helpers import BASIC, events, history, spawn_migrate, write_migrations

from parsec_server.storage.migrations import engine
from parsec_server.storage.migrations.errors import SchemaNotReady

SLOW = {
    **BASIC,
    # slow enough that the five runs overlap; the CONCURRENTLY index (0003) is built while the
    # others poll
    "0002_item_note.sql": (
        "-- compat: expand\nALTER TABLE item ADD COLUMN note TEXT;\nSELECT pg_sleep(2);\n"
    ),
}


def test_five_concurrent_migrate_processes(empty_db_url: str, tmp_path: Path) -> None:
    mdir = write_migrations(tmp_path / "m", SLOW)
    procs = [
        spawn_migrate(
            "--db", empty_db_url, "--migrations-dir", str(mdir), "--json", "--lock-wait", "60"
        )
        for _ in range(5)
    ]
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=90)
        outputs.append((p.returncode, out, err))
    assert [rc for rc, _, _ in outputs] == [0] * 5, outputs
    for _, _, err in outputs:
        assert "duplicate key" not in err and "error" not in err.lower()
    names = ["0001_items.sql", "0002_item_note.sql", "0003_item_label_index.sql"]
    applied_by: dict[str, int] = {}
    waited = 0
    for _, out, _ in outputs:
        evs = [json.loads(line) for line in out.splitlines()]
        summary = evs[-1]
        assert summary["event"] == "summary" and summary["pending"] == []
        for name in summary["applied"]:
            applied_by[name] = applied_by.get(name, 0) + 1
        if summary["applied_by_other"]:
            waited += 1
            assert any(e["event"] == "lock_acquired" for e in evs)
    assert applied_by == {n: 1 for n in names}  # each migration applied by exactly one process
    assert waited >= 1  # at least one run waited, then reported what the winner applied
    assert history(empty_db_url) == [n.removesuffix(".sql") for n in names]
    assert sorted(e["name"] for e in events(empty_db_url, "apply")) == [
        n.removesuffix(".sql") for n in names
    ]


def test_concurrent_apply_all_and_startup_checks(empty_db_url: str, tmp_path: Path) -> None:
    """Servers starting together on a brand-new database: no duplicate-key error, ever."""
    mdir = write_migrations(tmp_path / "m", SLOW)

    async def checker(stop: asyncio.Event) -> int:
        seen_not_ready = 0
        conn = await asyncpg.connect(empty_db_url)
        try:
            while not stop.is_set():
                try:
                    assert await engine.check_for_serving(conn, source=mdir) == []
                except SchemaNotReady:
                    seen_not_ready += 1
                await asyncio.sleep(0.02)
        finally:
            await conn.close()
        return seen_not_ready

    async def main() -> int:
        stop = asyncio.Event()
        check = asyncio.create_task(checker(stop))
        await asyncio.gather(*(engine.apply_all(empty_db_url, source=mdir) for _ in range(4)))
        stop.set()
        return await check

    assert asyncio.run(main()) >= 1
    assert len(history(empty_db_url)) == 3
