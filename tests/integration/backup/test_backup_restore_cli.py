"""`parsec-server restore`: into a new database and bucket, refusing a non-empty database without
--force, and checking the whole backup before touching anything: a damaged backup is refused with
one line and exit code 9, the target database and bucket left exactly as they were."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from backup_support import backup, move_blocks_to, objects, one_error_line, relations, restore
from upgrade_support import (
    LATEST,
    assert_data_kept,
    build_database,
    execute,
    history,
    ok,
    query,
    reference_schema,
    schema,
    snapshot,
)

from parsec_server.exit_codes import Exit


@dataclass(frozen=True)
class S3Backup:
    source: str  # database URL
    bucket: str  # --blockstore value
    path: Path
    blocks: dict[str, bytes]


@pytest.fixture(scope="module")
def s3_backup(
    db_factory: Callable[[], str],
    work_dir: Path,
    new_bucket: Callable[[], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> S3Backup:
    """One backup of a database with data of every release, its blocks in an S3 bucket."""
    url = db_factory()
    build_database(url, LATEST, work_dir)
    bucket = new_bucket()
    blocks = move_blocks_to(url, bucket)
    path = tmp_path_factory.mktemp("s3-backup") / "backup"
    ok(backup(url, path, "--blockstore", bucket))
    return S3Backup(url, bucket, path, blocks)


def test_restore_into_a_new_database_and_bucket(
    s3_backup: S3Backup, db_factory: Callable[[], str], new_bucket: Callable[[], str], s3: Any
) -> None:
    target, bucket = db_factory(), new_bucket()
    res = ok(restore(target, s3_backup.path, "--blockstore", bucket, "--json"))
    report = json.loads(res.stdout)
    assert report["status"] == "ok" and report["blocks"] == len(s3_backup.blocks)
    assert report["schema_version"] == history(s3_backup.source)[-1]
    assert objects(s3, bucket) == s3_backup.blocks
    assert schema(target) == reference_schema() and history(target) == history(s3_backup.source)
    assert_data_kept(snapshot(s3_backup.source), snapshot(target), exact=True)
    progress = [json.loads(line)["message"] for line in res.stderr.splitlines()]
    assert (
        progress[0] == "backup verified" and f"blocks: {len(s3_backup.blocks)} restored" in progress
    )


def test_a_non_empty_database_needs_force(
    s3_backup: S3Backup,
    db_factory: Callable[[], str],
    new_bucket: Callable[[], str],
    work_dir: Path,
) -> None:
    target, bucket = db_factory(), new_bucket()
    build_database(target, 1, work_dir)  # another deployment's data
    execute(
        target,
        "CREATE TABLE operator_notes (note TEXT); INSERT INTO operator_notes VALUES ('keep')",
    )
    before = snapshot(target)
    res = restore(target, s3_backup.path, "--blockstore", bucket)
    assert res.returncode == Exit.RESTORE_FAILED and "--force" in one_error_line(res)
    assert_data_kept(before, snapshot(target), exact=True)

    ok(restore(target, s3_backup.path, "--blockstore", bucket, "--force"))
    assert schema(target) == reference_schema()  # everything replaced, the extra table too
    public = (
        "SELECT nspowner::regrole::text, nspacl::text, obj_description(oid) FROM pg_namespace "
        "WHERE nspname = 'public'"
    )
    assert query(target, public) == query(
        s3_backup.source, public
    )  # owner, privileges, comment kept
    assert_data_kept(snapshot(s3_backup.source), snapshot(target), exact=True)


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _edit_metadata(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    meta = json.loads((path / "metadata.json").read_text())
    edit(meta)
    (path / "metadata.json").write_text(json.dumps(meta))


def _truncate_dump_and_fix_checksum(path: Path) -> None:
    import hashlib

    dump = path / "database.dump"
    dump.write_bytes(dump.read_bytes()[:200])

    def fix(meta: dict[str, Any]) -> None:
        meta["database"]["sha256"] = hashlib.sha256(dump.read_bytes()).hexdigest()

    _edit_metadata(path, fix)


def _first_block(path: Path) -> Path:
    return sorted(p for p in (path / "blocks").rglob("*") if p.is_file())[0]


DAMAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "dump byte flipped": (
        lambda p: _flip_byte(p / "database.dump", 5000),
        "database.dump does not match its checksum",
    ),
    "dump missing": (lambda p: (p / "database.dump").unlink(), "database.dump is missing"),
    "dump unreadable, checksum fixed": (
        _truncate_dump_and_fix_checksum,
        "pg_restore --list failed",
    ),
    "metadata not json": (
        lambda p: (p / "metadata.json").write_text("{not json"),
        "metadata.json is corrupted",
    ),
    "metadata without checksum": (
        lambda p: _edit_metadata(p, lambda m: m["database"].pop("sha256")),
        "metadata.json is corrupted",
    ),
    "metadata of another format": (
        lambda p: _edit_metadata(p, lambda m: m.update(format="other/9")),
        "unsupported backup format 'other/9'",
    ),
    "metadata missing": (lambda p: (p / "metadata.json").unlink(), "is not a parsec-server backup"),
    "block file missing": (lambda p: _first_block(p).unlink(), "block file(s) missing"),
    "block byte flipped": (lambda p: _flip_byte(_first_block(p), 3), "does not match its checksum"),
    "block checksums edited": (
        lambda p: (p / "blocks.sha256").write_text("0" * 64 + "  x/y\n"),
        "blocks.sha256 does not match its checksum",
    ),
    "unexpected block file": (
        lambda p: (_first_block(p).parent / "intruder").write_bytes(b"x"),
        "unexpected file blocks/",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_backup_is_refused_before_touching_anything(
    damage: str,
    s3_backup: S3Backup,
    db_factory: Callable[[], str],
    new_bucket: Callable[[], str],
    s3: Any,
    tmp_path: Path,
) -> None:
    damaged = tmp_path / "damaged"
    shutil.copytree(s3_backup.path, damaged)
    do, message = DAMAGES[damage]
    do(damaged)
    target, bucket = db_factory(), new_bucket()
    res = restore(target, damaged, "--blockstore", bucket)
    assert res.returncode == Exit.RESTORE_FAILED, res.stderr
    assert message in one_error_line(res)
    assert relations(target) == 0 and objects(s3, bucket) == {}  # nothing touched


def test_blocks_in_the_backup_need_a_blockstore(
    s3_backup: S3Backup, db_factory: Callable[[], str]
) -> None:
    target = db_factory()
    res = restore(target, s3_backup.path)  # the default blockstore: POSTGRESQL
    assert res.returncode == Exit.RESTORE_FAILED and "--blockstore" in one_error_line(res)
    assert relations(target) == 0
