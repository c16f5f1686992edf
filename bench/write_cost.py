"""PostgreSQL's own CPU per vlob write, and what each part of the write statement costs.

    .venv/bin/python bench/write_cost.py [--writes 2000] [--rounds 3] [--durable] [--variants ...]

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

from parsec_server.embedded_pg import EmbeddedPostgres, free_tcp_port  # noqa: E402
from parsec_server.protocol.codec import now  # noqa: E402
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


def _ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--writes", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--durable", action="store_true", help="fsync and synchronous_commit on")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args()
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
        uvloop.run(measure(pg.url, args.writes, args.rounds, args.variants.split(",")))
        print(f"({time.perf_counter() - t0:.0f} s)")
    finally:
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
