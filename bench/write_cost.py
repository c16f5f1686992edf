"""PostgreSQL's own CPU per vlob write, and what each part of the write statement costs.

    .venv/bin/python bench/write_cost.py [--writes 2000] [--rounds 3] [--durable] [--variants ...]
    .venv/bin/python bench/write_cost.py --block 524288 [--blocks 300] [--rounds 3] [--variants ...]

Starts a throwaway PostgreSQL cluster, builds the ParsecApp (its event bus LISTENs, as in
production), creates an organization and a realm, then runs the statement of `storage.vlob.write`
(`_Q_WRITE`, what vlob_create/vlob_update run; a fixed event payload head) from ONE connection, one write after the other, and prints per write:
the CPU time (utime+stime, /proc/PID/stat) of that connection's backend and of the LISTEN
connection's backend, and the WAL bytes (pg_current_wal_lsn). One writer: no lock wait, no
multixact; the minimum of --rounds rounds is kept (a busy machine only adds time).

Each variant removes one part, to read its cost by elimination (a measurement, never a
configuration to run): `no_notify` (pg_notify replaced by the same text built and dropped),
`no_topic_lock` (the topic rows read without FOR SHARE), `no_fk` (the three foreign keys the
write checks: vlob_atom.realm, vlob_atom.author, realm_vlob_update.realm), `no_size_index`
(vlob_atom_realm_size), `no_log` (no realm_vlob_update row); `insert_only` is the floor: the
vlob_atom row alone (one INSERT, its indexes and foreign keys, the commit).

`--block SIZE` (e.g. 524288) measures a block write and read of SIZE random bytes instead, from one
connection, per block: backend CPU, the cluster's background processes' CPU (WAL writer,
checkpointer...), this process's CPU (asyncpg and the event loop: what a server spends around the
statement), WAL bytes, and the minor page faults of the backend and of this process (`be faults`,
`cl faults`: fresh memory touched; a 512 KiB buffer in new pages is 128 faults). This process's
allocator is set as the server sets its own (cli/allocator.py) unless `--default-allocator`. Variants (`--variants`, default all): `floor_external` (a bare INSERT
into a one-column table, `STORAGE EXTERNAL`, commit), `floor_extended` (the same with the default
storage: PostgreSQL tries to compress), `floor_8k_rows` (an experiment: the block as ~8 KB rows
of a `STORAGE PLAIN` table, no TOAST), `official` (the official server's block_data table, its
block insert and its check statement run before it, as its block_create does), `ours`
(`storage.block.create_with_data`, what block_create runs with the POSTGRESQL blockstore),
`ours_blockstore` (`blockstore/postgresql.py`'s insert, what the RAID blockstore runs), and the
reads: `read_floor` (SELECT of the bytea by integer key), `read_official` (their block_data
SELECT), `read_ours` (`storage.block.read_with_data`). Tables are emptied between rounds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "integration" / "commands"))
sys.path.insert(0, str(REPO / "src"))

import asyncpg  # noqa: E402
import uvloop  # noqa: E402
from core_helpers import running_server  # noqa: E402
from test_realm import new_realm  # noqa: E402

from parsec_server.blockstore import postgresql as pg_blockstore  # noqa: E402
from parsec_server.cli import allocator  # noqa: E402
from parsec_server.embedded_pg import EmbeddedPostgres, free_tcp_port  # noqa: E402
from parsec_server.protocol.codec import now  # noqa: E402
from parsec_server.storage import block as block_storage  # noqa: E402
from parsec_server.storage import vlob as vlob_storage  # noqa: E402

VARIANTS = (
    "baseline",
    "no_notify",
    "no_topic_lock",
    "no_fk",
    "no_size_index",
    "no_log",
    "insert_only",
    "baseline",
)
_SQL = {
    "no_fk": "ALTER TABLE vlob_atom DROP CONSTRAINT vlob_atom_realm_fkey,"
    " DROP CONSTRAINT vlob_atom_author_fkey;"
    " ALTER TABLE realm_vlob_update DROP CONSTRAINT realm_vlob_update_realm_fkey",
    "no_size_index": "DROP INDEX vlob_atom_realm_size",
}
_UNDO = {
    "no_fk": "ALTER TABLE vlob_atom ADD FOREIGN KEY (realm) REFERENCES realm (id) ON DELETE CASCADE,"
    " ADD FOREIGN KEY (author) REFERENCES device (id);"
    " ALTER TABLE realm_vlob_update ADD FOREIGN KEY (realm) REFERENCES realm (id) ON DELETE CASCADE",
    "no_size_index": "CREATE INDEX vlob_atom_realm_size ON vlob_atom (realm) INCLUDE (size)",
}


def _statement(variant: str) -> str:
    q = vlob_storage._Q_WRITE
    if variant == "insert_only":  # the floor: the version row alone, no check, no lock, no event
        return (
            "INSERT INTO vlob_atom (realm, vlob_id, version, key_index, author, created_on, size,"
            " blob) SELECT r.id, $5::uuid, $10::int, $6::int, $3::bigint, $7::timestamptz,"
            " octet_length($8::bytea), $8::bytea FROM realm r"
            " WHERE r.organization = $1 AND r.realm_id = $4 AND $2::bigint IS NOT NULL"
            " AND $9::bool AND $11::text IS NOT NULL AND $12::text IS NOT NULL AND NOT $13::bool"
            " RETURNING TRUE AS ok"
        )
    if variant == "no_notify":
        old = "SELECT pg_notify($11, "
        assert old in q
        q = q.replace(old, "SELECT length($11 || ")
    elif variant == "no_topic_lock":
        old = "    FOR SHARE\n"
        assert old in q
        q = q.replace(old, "")
    elif variant == "no_log":
        old = (
            "INSERT INTO realm_vlob_update (realm, checkpoint, vlob_id, version)\n"
            "    SELECT upd.id, upd.vlob_checkpoint, $5, $10 FROM upd"
        )
        assert old in q
        q = q.replace(old, "SELECT upd.id FROM upd")
    return q


BLOCK_VARIANTS = (
    "floor_external",
    "floor_extended",
    "floor_8k_rows",
    "official",
    "ours",
    "ours_blockstore",
    "read_floor",
    "read_official",
    "read_ours",
)
# The tables of the block variants that are not the server's own (created by this script).
_BLOCK_TABLES = """
CREATE TABLE bench_floor_ext (data BYTEA NOT NULL);
ALTER TABLE bench_floor_ext ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE TABLE bench_floor_extd (data BYTEA NOT NULL);
CREATE TABLE bench_rows (id BIGINT NOT NULL, part INT NOT NULL, data BYTEA NOT NULL,
    PRIMARY KEY (id, part));
ALTER TABLE bench_rows ALTER COLUMN data SET STORAGE PLAIN;
CREATE TABLE bench_read (id BIGINT PRIMARY KEY, data BYTEA NOT NULL);
ALTER TABLE bench_read ALTER COLUMN data SET STORAGE EXTERNAL;
-- the official server's block_data (parsec-cloud 3.9.3 datamodel), under another name
CREATE TABLE bench_official_block_data (
    _id SERIAL PRIMARY KEY,
    organization_id VARCHAR NOT NULL,
    block_id UUID NOT NULL,
    data BYTEA NOT NULL,
    UNIQUE (organization_id, block_id)
);
"""
ROW_BYTES = 8000  # a PLAIN row must fit in an 8 KB page with its header


def _ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _minflt(pid: int) -> int:
    """Minor page faults of a process so far (fresh memory touched: a new mmap, a grown heap)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])


async def measure(db_url: str, writes: int, rounds: int, variants: list[str]) -> None:
    async with running_server(db_url) as server:
        org = await server.bootstrap_org()
        alice = org.alice
        realm_id = await new_realm(alice)
        conn = await asyncpg.connect(db_url)
        ids = await conn.fetchrow(
            "SELECT o.id AS org, d.user_ AS user_, d.id AS device FROM organization o"
            " JOIN device d ON d.organization = o.id AND d.device_id = $1"
            " WHERE o.organization_id = $2",
            alice.device_id,
            org.organization_id,
        )
        listener = await conn.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN%' OR query = 'SELECT 1'"
            " ORDER BY backend_start LIMIT 1"
        )
        backend = conn.get_server_pid()
        tick_us = 1e6 / os.sysconf("SC_CLK_TCK") / writes
        blob = os.urandom(512)
        print(f"{'variant':14} {'backend us':>10} {'listener us':>11} {'WAL B':>6}   per write")
        for variant in variants:
            if variant in _SQL:
                await conn.execute(_SQL[variant])
            query = _statement(variant)
            best: tuple[float, float, float] | None = None
            for _ in range(rounds):
                batch = [uuid.uuid4() for _ in range(writes)]
                wal0 = await conn.fetchval("SELECT pg_current_wal_lsn() - '0/0'")
                b0, l0 = _ticks(backend), _ticks(listener) if listener else 0
                for vlob_id in batch:
                    row = await conn.fetchrow(
                        query,
                        ids["org"],
                        ids["user_"],
                        ids["device"],
                        realm_id,
                        vlob_id,
                        1,
                        now(),
                        blob,
                        True,
                        1,
                        "parsec_events",
                        '{"id":"x","org":"bench","type":"VLOB","blob":null'
                        ',"last_common_certificate_timestamp":',
                        False,
                    )
                    assert row is not None and row["ok"], row
                b1, l1 = _ticks(backend), _ticks(listener) if listener else 0
                wal = float(await conn.fetchval("SELECT pg_current_wal_lsn() - '0/0'") - wal0)
                result = (tick_us * (b1 - b0), tick_us * (l1 - l0), wal / writes)
                best = result if best is None or result[0] < best[0] else best
            assert best is not None
            print(f"{variant:14} {best[0]:10.0f} {best[1]:11.0f} {best[2]:6.0f}", flush=True)
            if variant in _UNDO:
                await conn.execute(_UNDO[variant])
        await conn.close()


def _children_ticks(postmaster: int) -> int:
    """CPU ticks of every child of the postmaster (backends and background processes)."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total


async def measure_blocks(
    db_url: str, postmaster: int, size: int, blocks: int, rounds: int, variants: list[str]
) -> None:
    async with running_server(db_url) as server:
        org = await server.bootstrap_org()
        alice = org.alice
        realm_id = await new_realm(alice)
        conn = await asyncpg.connect(db_url)
        await conn.execute(_BLOCK_TABLES)
        ids = await conn.fetchrow(
            "SELECT o.id AS org, d.user_ AS user_, d.id AS device FROM organization o"
            " JOIN device d ON d.organization = o.id AND d.device_id = $1"
            " WHERE o.organization_id = $2",
            alice.device_id,
            org.organization_id,
        )
        org_id = org.organization_id
        backend = conn.get_server_pid()
        data = os.urandom(size)
        parts = [data[k : k + ROW_BYTES] for k in range(0, size, ROW_BYTES)]
        tick_us = 1e6 / os.sysconf("SC_CLK_TCK") / blocks
        # the official server's check (block_create step 1), reduced to what it reads
        official_check = (
            "SELECT (SELECT is_expired FROM organization WHERE id = $1) AS e,"
            " (SELECT revoked_on FROM user_ WHERE id = $2) AS r,"
            " EXISTS (SELECT 1 FROM block WHERE organization = $1 AND block_id = $3) AS x"
        )
        read_ids: list[uuid.UUID] = []

        async def one(variant: str, i: int, block_id: uuid.UUID) -> None:
            if variant == "floor_external":
                await conn.execute("INSERT INTO bench_floor_ext (data) VALUES ($1)", data)
            elif variant == "floor_extended":
                await conn.execute("INSERT INTO bench_floor_extd (data) VALUES ($1)", data)
            elif variant == "floor_8k_rows":
                await conn.execute(
                    "INSERT INTO bench_rows (id, part, data)"
                    " SELECT $1, p.n, p.d FROM unnest($2::bytea[]) WITH ORDINALITY AS p(d, n)",
                    i,
                    parts,
                )
            elif variant == "official":
                await conn.fetchrow(official_check, ids["org"], ids["user_"], block_id)
                await conn.execute(
                    "INSERT INTO bench_official_block_data (organization_id, block_id, data)"
                    " VALUES ($1, $2, $3)",
                    org_id,
                    block_id,
                    data,
                )
            elif variant == "ours":
                out = await block_storage.create_with_data(
                    conn,
                    org_internal_id=ids["org"],
                    organization_id=org_id,
                    user_internal_id=ids["user_"],
                    device_internal_id=ids["device"],
                    realm_id=realm_id,
                    block_id=block_id,
                    key_index=1,
                    data=data,
                    now=now(),
                )
                assert out is not None and out.written, out
            elif variant == "ours_blockstore":
                await conn.execute(pg_blockstore._Q_CREATE, org_id, block_id, data)
            elif variant == "read_floor":
                got = await conn.fetchval("SELECT data FROM bench_read WHERE id = $1", i % 10)
                assert len(got) == size
            elif variant == "read_official":
                got = await conn.fetchval(
                    "SELECT data FROM bench_official_block_data"
                    " WHERE organization_id = $1 AND block_id = $2",
                    org_id,
                    read_ids[i % 10],
                )
                assert len(got) == size
            elif variant == "read_ours":
                out = await block_storage.read_with_data(
                    conn, ids["org"], org_id, ids["user_"], realm_id, read_ids[i % 10]
                )
                assert isinstance(out, block_storage.BlockData), out
            else:
                raise SystemExit(f"unknown variant {variant}")

        async def empty() -> None:
            await conn.execute(
                "TRUNCATE bench_floor_ext, bench_floor_extd, bench_rows, bench_read,"
                " bench_official_block_data, block_data; DELETE FROM block"
            )
            read_ids.clear()
            # 10 blocks to read, written by each side's own statement
            for k in range(10):
                block_id = uuid.uuid4()
                await conn.execute("INSERT INTO bench_read VALUES ($1, $2)", k, data)
                await one("official", k, block_id)
                await one("ours", k, block_id)
                read_ids.append(block_id)

        print(
            f"{size} B blocks, {blocks} per round, best of {rounds}; per block:\n"
            f"{'variant':16} {'backend us':>10} {'bg us':>6} {'client us':>9} {'WAL B':>8}"
            f" {'be faults':>9} {'cl faults':>9}"
        )
        best: dict[str, tuple[float, float, float, float, float, float]] = {}
        # rounds outside, variants inside: a load that drifts during the run hits every variant
        for round_ in range(rounds):
            for variant in variants:
                await empty()
                await conn.execute("CHECKPOINT")
                batch = [uuid.uuid4() for _ in range(blocks)]
                wal0 = await conn.fetchval("SELECT pg_current_wal_lsn() - '0/0'")
                f0, g0 = _minflt(backend), _minflt(os.getpid())
                b0, a0, c0 = _ticks(backend), _children_ticks(postmaster), time.process_time()
                for i, block_id in enumerate(batch):
                    await one(variant, i, block_id)
                c1 = time.process_time()
                b1, a1 = _ticks(backend), _children_ticks(postmaster)
                f1, g1 = _minflt(backend), _minflt(os.getpid())
                wal = float(await conn.fetchval("SELECT pg_current_wal_lsn() - '0/0'") - wal0)
                result = (
                    tick_us * (b1 - b0),
                    tick_us * ((a1 - a0) - (b1 - b0)),
                    1e6 * (c1 - c0) / blocks,
                    wal / blocks,
                    (f1 - f0) / blocks,
                    (g1 - g0) / blocks,
                )
                if variant not in best or result[0] < best[variant][0]:
                    best[variant] = result
                if round_ == rounds - 1:
                    b = best[variant]
                    print(
                        f"{variant:16} {b[0]:10.0f} {b[1]:6.0f} {b[2]:9.0f} {b[3]:8.0f}"
                        f" {b[4]:9.0f} {b[5]:9.0f}",
                        flush=True,
                    )
        await conn.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--writes", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--durable", action="store_true", help="fsync and synchronous_commit on")
    ap.add_argument("--variants", help="comma-separated (default: all)")
    ap.add_argument("--block", type=int, help="block mode: bytes per block (e.g. 524288)")
    ap.add_argument("--blocks", type=int, default=300, help="block mode: blocks per round")
    ap.add_argument(
        "--default-allocator",
        action="store_true",
        help="leave glibc's allocator as it is (default: set as `parsec-server run` does)",
    )
    args = ap.parse_args()
    if not args.default_allocator:
        allocator.tune()
    work = Path(tempfile.mkdtemp(prefix="parsec-writecost-", dir="/tmp"))
    os.chmod(work, 0o755)
    pg = EmbeddedPostgres(work / "pg", tcp_port=free_tcp_port(), fast_unsafe=not args.durable)
    pg.start()
    try:
        subprocess.run(
            [
                str(REPO / ".venv" / "bin" / "parsec-server"),
                "migrate",
                "--db",
                pg.url,
                "--no-backup",
            ],
            check=True,
            capture_output=True,
        )
        t0 = time.perf_counter()
        if args.block:
            variants = (args.variants or ",".join(BLOCK_VARIANTS)).split(",")
            assert pg.pid is not None
            uvloop.run(
                measure_blocks(pg.url, pg.pid, args.block, args.blocks, args.rounds, variants)
            )
        else:
            variants = (args.variants or ",".join(VARIANTS)).split(",")
            uvloop.run(measure(pg.url, args.writes, args.rounds, variants))
        print(f"({time.perf_counter() - t0:.0f} s)")
    finally:
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
