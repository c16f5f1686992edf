"""`parsec-server backup`: a consistent, verified backup written atomically, its metadata, the
blockstore copy when it is not inside PostgreSQL, --json, and failures as one line with exit code
8."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backup_support import backup, move_blocks_to, objects, one_error_line, restore
from upgrade_support import (
    LATEST,
    assert_data_kept,
    build_database,
    history,
    ok,
    reference_schema,
    schema,
    snapshot,
)

from parsec_server.backup import _bin
from parsec_server.embedded_pg import free_tcp_port
from parsec_server.exit_codes import Exit
from parsec_server.storage.migrations import engine

LATEST_NAME = engine.discover()[-1].name


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_backup_of_a_database_then_restore_into_a_new_one(
    db_factory: Callable[[], str], work_dir: Path, tmp_path: Path
) -> None:
    source = db_factory()
    build_database(source, LATEST, work_dir)  # data of every release, blocks in PostgreSQL
    out = tmp_path / "backups" / "nightly"
    res = ok(backup(source, out, "--json"))

    doc = json.loads(res.stdout)  # one JSON document on stdout
    assert doc["status"] == "ok" and doc["path"] == str(out)
    assert doc["format"] == "parsec-server-backup/1" and doc["schema_version"] == LATEST_NAME
    dump = out / "database.dump"
    assert sorted(p.name for p in out.iterdir()) == ["database.dump", "metadata.json"]
    assert doc["database"]["bytes"] == dump.stat().st_size and doc["database"]["sha256"] == sha256(
        dump
    )
    listing = subprocess.run(
        [_bin("pg_restore"), "--list", str(dump)], capture_output=True, text=True, check=True
    )
    assert doc["database"]["toc_entries"] == sum(
        1 for ln in listing.stdout.splitlines() if ln and ln[0] != ";"
    )
    assert "TABLE DATA public block_data" in listing.stdout  # the blocks are in the dump
    assert doc["blockstore"]["included"] is False
    assert json.loads((out / "metadata.json").read_text()) == {
        k: v for k, v in doc.items() if k not in ("status", "path", "cleaned")
    }
    assert [p.name for p in out.parent.iterdir()] == ["nightly"]  # nothing partial left next to it
    progress = [
        json.loads(line) for line in res.stderr.splitlines()
    ]  # --json: progress as JSON lines
    assert all(p["event"] == "progress" for p in progress)
    assert any("verified" in p["message"] for p in progress), progress

    target = db_factory()
    restored = ok(restore(target, out))
    assert restored.stdout.startswith(f"restored {out}: database at schema version {LATEST_NAME}")
    assert schema(target) == reference_schema() and history(target) == history(source)
    assert_data_kept(snapshot(source), snapshot(target), exact=True)


def test_backup_failures_are_one_line_and_leave_nothing(
    db_factory: Callable[[], str], tmp_path: Path
) -> None:
    url = db_factory()
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep").write_text("mine")
    res = backup(url, existing)
    assert res.returncode == Exit.BACKUP_FAILED and "already exists" in one_error_line(res)
    assert [p.name for p in existing.iterdir()] == ["keep"]

    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    res = backup(url, not_a_dir / "backup")
    assert res.returncode == Exit.BACKUP_FAILED and "cannot create" in one_error_line(res)

    dead = f"postgresql://postgres@127.0.0.1:{free_tcp_port()}/nope"
    out = tmp_path / "out"
    out.mkdir()
    res = backup(dead, out / "backup")
    assert (
        res.returncode == Exit.BACKUP_FAILED
        and "cannot connect to the database" in one_error_line(res)
    )
    assert list(out.iterdir()) == []  # no partial directory left behind


def test_backup_copies_the_s3_blockstore(
    db_factory: Callable[[], str],
    work_dir: Path,
    tmp_path: Path,
    new_bucket: Callable[[], str],
    s3: Any,
) -> None:
    url = db_factory()
    build_database(url, LATEST, work_dir)
    bucket = new_bucket()
    blocks = move_blocks_to(url, bucket)
    assert len(blocks) >= 6 and objects(s3, bucket) == blocks
    out = tmp_path / "with-blocks"
    res = ok(backup(url, out, "--blockstore", bucket))
    assert res.stdout.splitlines()[0] == f"backup written to {out}"
    assert f"{len(blocks)} blockstore objects" in res.stdout
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["blockstore"]["included"] is True and meta["blockstore"]["kind"] == "S3"
    assert (meta["blockstore"]["blocks"], meta["blockstore"]["bytes"]) == (
        len(blocks),
        sum(len(b) for b in blocks.values()),
    )
    copied = {
        p.relative_to(out / "blocks").as_posix(): p.read_bytes()
        for p in (out / "blocks").rglob("*")
        if p.is_file()
    }
    assert copied == blocks
    manifest = (out / "blocks.sha256").read_text().splitlines()
    assert sorted(manifest) == sorted(
        f"{hashlib.sha256(d).hexdigest()}  {k}" for k, d in blocks.items()
    )
    assert meta["blockstore"]["manifest"]["sha256"] == sha256(out / "blocks.sha256")
    assert (
        "backup-tests-secret" not in (out / "metadata.json").read_text()
    )  # no credentials in the backup
