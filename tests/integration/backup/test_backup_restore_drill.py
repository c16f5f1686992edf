"""The restore drill: a server in use (S3 blockstore) is backed up while it serves, written to
again, and the backup restored into a new database and a new bucket; a server started on them serves
exactly the data of the backup (checked through the administration API and the authenticated API),
and nothing written after it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from backup_support import backup, objects, restore
from release_data import Dataset
from upgrade_support import (
    LATEST,
    ServerProcess,
    assert_data_kept,
    authenticated,
    migrate,
    ok,
    query,
    snapshot,
    value,
)

from parsec_server.protocol.codec import now


def test_backup_more_writes_restore_serve(
    db_factory: Callable[[], str], new_bucket: Callable[[], str], s3: Any, tmp_path: Path
) -> None:
    url, bucket = db_factory(), new_bucket()
    ok(migrate(url))
    drill = Dataset(LATEST, tag="Drill")
    later = Dataset(LATEST, tag="DrillLater")
    doc = drill.vlobs["doc"]
    with ServerProcess(url, blockstore=(bucket,)) as server:
        drill.write(server)
        stats = server.admin_json("GET", "/stats")
        at_backup = snapshot(url)
        blocks_at_backup = objects(s3, bucket)
        made = ok(backup(url, tmp_path / "backup", "--blockstore", bucket))  # while serving
        assert f"{len(drill.blocks)} blockstore objects" in made.stdout

        # written after the backup: a new organization, and changes in the backed-up one
        later.write(server)
        drill.rpc_ok(
            server,
            "alice",
            "vlob_update",
            realm_id=drill.realms["shared"],
            vlob_id=doc.vlob_id,
            key_index=2,
            timestamp=now(),
            version=len(doc.versions) + 1,
            blob=b"written after the backup",
        )
        new_block = uuid.uuid4()
        drill.rpc_ok(
            server,
            "alice",
            "block_create",
            block_id=new_block,
            realm_id=drill.realms["shared"],
            key_index=2,
            block=b"after the backup",
        )
        drill.rpc_ok(
            server, "alice", "invite_new_user", claimer_email="late@example.com", send_email=False
        )
        server.admin_json(
            "POST",
            f"/organizations/{drill.org_id}/users/freeze",
            json={"user_email": drill.bob.email, "frozen": True},
        )

    restored_url, restored_bucket = db_factory(), new_bucket()
    ok(restore(restored_url, tmp_path / "backup", "--blockstore", restored_bucket))
    assert_data_kept(at_backup, snapshot(restored_url), exact=True)
    assert objects(s3, restored_bucket) == blocks_at_backup

    with ServerProcess(restored_url, blockstore=(restored_bucket,)) as server:
        drill.check_served(
            server
        )  # doc at its backed-up version, bob not frozen, blocks from the new bucket
        assert server.admin_json("GET", "/stats") == stats
        assert server.admin("GET", f"/organizations/{later.org_id}").status_code == 404
        rep = drill.rpc(
            server, "alice", "block_read", block_id=new_block, realm_id=drill.realms["shared"]
        )
        assert rep["status"] == "block_not_found", rep
        invited = {
            i.get("claimer_email")
            for i in drill.rpc_ok(server, "alice", "invite_list")["invitations"]
        }
        assert "late@example.com" not in invited


def test_backup_while_writes_go_on_is_consistent(
    db_factory: Callable[[], str], new_bucket: Callable[[], str], s3: Any, tmp_path: Path
) -> None:
    """Blocks and vlobs written while the backup runs: the restored database refers only to blocks
    the restored bucket holds (the dump is taken first, and a block is stored before its row), and
    every realm's vlob checkpoint matches its change log (the dump is one snapshot)."""
    url, bucket = db_factory(), new_bucket()
    ok(migrate(url))
    busy = Dataset(LATEST, tag="Busy")
    realm = busy.realms["shared"]
    with ServerProcess(url, blockstore=(bucket,)) as server:
        busy.write(server)
        stop = threading.Event()
        writes: list[float] = []
        errors: list[BaseException] = []

        def writer() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as http:
                alice = busy.alice
                try:
                    while not stop.is_set():
                        for cmd, fields in (
                            (
                                "block_create",
                                {"block_id": uuid.uuid4(), "block": uuid.uuid4().bytes * 64},
                            ),
                            (
                                "vlob_create",
                                {"vlob_id": uuid.uuid4(), "timestamp": now(), "blob": b"v"},
                            ),
                        ):
                            rep = authenticated(
                                http,
                                busy.org_id,
                                alice.device_id,
                                alice.key,
                                cmd,
                                realm_id=realm,
                                key_index=2,
                                **fields,
                            )
                            assert rep == {"status": "ok"}, rep
                            writes.append(time.monotonic())
                except BaseException as exc:  # reported by the test thread
                    errors.append(exc)

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            time.sleep(0.3)
            started = time.monotonic()
            ok(backup(url, tmp_path / "backup", "--blockstore", bucket))
            ended = time.monotonic()
            time.sleep(0.2)
        finally:
            stop.set()
            thread.join(30)
        assert not errors, errors
        assert any(started <= t <= ended for t in writes), "no write happened during the backup"

    restored_url, restored_bucket = db_factory(), new_bucket()
    ok(restore(restored_url, tmp_path / "backup", "--blockstore", restored_bucket))
    stored = objects(s3, restored_bucket)
    rows = query(
        restored_url,
        "SELECT o.organization_id, b.block_id, b.size FROM block b "
        "JOIN realm r ON r.id = b.realm JOIN organization o ON o.id = r.organization",
    )
    assert len(rows) > len(busy.blocks)
    for r in rows:
        assert len(stored[f"{r['organization_id']}/{r['block_id']}"]) == r["size"]
    realms = query(
        restored_url,
        "SELECT r.vlob_checkpoint, count(u.*) AS n, coalesce(max(u.checkpoint), 0) AS top "
        "FROM realm r LEFT JOIN realm_vlob_update u ON u.realm = r.id GROUP BY r.id",
    )
    assert all(r["vlob_checkpoint"] == r["n"] == r["top"] for r in realms), realms
    atoms = value(restored_url, "SELECT count(*) FROM vlob_atom")
    assert atoms == sum(r["n"] for r in realms)
