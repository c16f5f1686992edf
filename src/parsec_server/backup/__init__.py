"""Verified backups and restores of a parsec-server deployment (database + blockstore).

A backup is a directory, made under a temporary name and renamed into place only once complete and verified:

    <output>/
      metadata.json        format, parsec-server version, schema version, time, sizes, checksums
      database.dump        pg_dump custom format, checked with `pg_restore --list`
      blocks/<org>/<id>    the blockstore's objects, when the blockstore is not inside PostgreSQL
      blocks.sha256        their checksums (`sha256sum` format; its own checksum is in metadata.json)

The database is dumped first and the objects copied after (the order of the official admin guide): blocks are
written to the store before their metadata row commits, so every block the dump refers to is already in the store.
A restore checks everything (checksums of the dump, of every object, `pg_restore --list`) before touching the
target, then restores the objects first and the database last, in one transaction: a failure leaves the database
as it was (or emptied, with --force); objects already copied are harmless, as after a failed block_create.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from parsec_server import __version__
from parsec_server.config import BlockstoreConfig
from parsec_server.embedded_pg import EmbeddedPostgresError, bound_to_parent, find_bindir
from parsec_server.storage import db
from parsec_server.storage.migrations import engine

FORMAT = "parsec-server-backup/1"
BLOCKS_MANIFEST = "blocks.sha256"
Progress = Callable[[str], None]


class BackupError(Exception):
    """The backup could not be made or verified (message is for the operator)."""


class RestoreError(Exception):
    """The restore was refused or failed (message is for the operator)."""


@dataclass
class BackupResult:
    path: Path
    metadata: dict[str, Any]
    cleaned: list[Path] = field(default_factory=list)  # partial backups of killed runs, removed


# A backup is written into `.<name>.partial-<8 hex>` next to its output, which holds `.lock` locked
# (flock) by the writing process for the whole run: the kernel releases it when that process dies,
# kill -9 included, so the next backup into the same directory can tell a partial backup left by a
# dead run (removed, and reported) from one being written right now (left alone).
_PARTIAL = re.compile(r"^\..+\.partial-[0-9a-f]{8}$")
_LOCK = ".lock"
_UNLOCKED_GRACE_S = (
    60.0  # a partial directory without its lock file yet: being created, or very old
)


def _lock_partial(tmp: Path) -> int:
    fd = os.open(tmp / _LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def clean_partial_backups(directory: Path) -> list[Path]:
    """Remove the partial backups that dead runs left in `directory`; return them."""
    removed: list[Path] = []
    try:
        candidates = sorted(p for p in directory.iterdir() if _PARTIAL.match(p.name))
    except OSError:
        return removed
    for path in candidates:
        if path.is_symlink() or not path.is_dir():
            continue
        try:
            fd = os.open(path / _LOCK, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            try:
                if time.time() - path.stat().st_mtime < _UNLOCKED_GRACE_S:
                    continue
            except OSError:
                continue
            fd = -1
        except OSError:
            continue
        try:
            if fd >= 0:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its writer is alive
            shutil.rmtree(path, ignore_errors=True)
            if not path.exists():
                removed.append(path)
        finally:
            if fd >= 0:
                os.close(fd)
    return removed


def _bin(name: str) -> str:
    try:
        path = find_bindir() / name
    except EmbeddedPostgresError:
        found = shutil.which(name)
        if not found:
            raise BackupError(f"{name} not found: install the PostgreSQL client tools") from None
        return found
    return str(path) if path.exists() else (shutil.which(name) or str(path))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PGDATABASE", "PGSERVICE")}


def _libpq_args(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its password, and an environment carrying it (PGPASSWORD), so that the password
    never shows on a command line (`ps`)."""
    from urllib.parse import unquote, urlsplit, urlunsplit

    env = _env()
    parts = urlsplit(url)
    if parts.password is None:
        return url, env
    env["PGPASSWORD"] = unquote(parts.password)
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{netloc[1]}")), env


async def _schema_version(url: str) -> str | None:
    try:
        conn = await db.connect(url)
    except db.DatabaseUnavailable as exc:
        raise BackupError(str(exc)) from exc
    try:
        return await engine.current_version(conn)
    except asyncpg.PostgresError:
        return None
    finally:
        await conn.close()


def _watch_size(path: Path, what: str, progress: Progress, stop: threading.Event) -> None:
    while not stop.wait(2.0):
        if path.exists():
            progress(f"{what}: {path.stat().st_size / 1e6:.1f} MB written")


def _run(
    args: list[str], what: str, errcls: type[Exception], db_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = _env()
    if db_url is not None:  # passed as --dbname, its password through the environment
        safe_url, env = _libpq_args(db_url)
        args = [*args, "--dbname", safe_url]
    # bound to our lifetime: killed with us (kill -9 included), a pg_dump does not run on to its end,
    # a pg_restore does not commit a restore nobody waits for
    res = subprocess.run(
        args, capture_output=True, text=True, env=env, preexec_fn=bound_to_parent()
    )
    if res.returncode != 0:
        lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
        raise errcls(f"{what} failed: {lines[-1] if lines else f'exit code {res.returncode}'}")
    return res


async def create_backup(
    db_url: str,
    blockstore: BlockstoreConfig | None,
    output: Path,
    progress: Progress = lambda _m: None,
) -> BackupResult:
    output = output.absolute()
    if output.exists():
        raise BackupError(f"{output} already exists: choose a new --output path")
    try:
        output.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        cleaned = clean_partial_backups(output.parent)
        tmp = output.parent / f".{output.name}.partial-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(mode=0o700)  # owner-only from the start: a backup holds every organization's data
        lock_fd = _lock_partial(tmp)
    except OSError as exc:
        raise BackupError(f"cannot create {output}: {exc.strerror or exc}") from None
    if cleaned:
        progress(
            f"removed {len(cleaned)} partial backup(s) left by an interrupted run: "
            + ", ".join(str(p) for p in cleaned)
        )
    try:
        result = await _create_backup(db_url, blockstore, output, tmp, progress)
        result.cleaned = cleaned
        return result
    except OSError as exc:  # disk full, permissions...
        raise BackupError(f"cannot write the backup: {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone once renamed into place
        os.close(lock_fd)


async def _create_backup(
    db_url: str, blockstore: BlockstoreConfig | None, output: Path, tmp: Path, progress: Progress
) -> BackupResult:
    started = time.monotonic()
    schema_version = await _schema_version(db_url)
    dump = tmp / "database.dump"
    progress("database: dumping")
    stop = threading.Event()
    watcher = threading.Thread(
        target=_watch_size, args=(dump, "database", progress, stop), daemon=True
    )
    watcher.start()
    try:
        await asyncio.to_thread(
            _run,
            [
                _bin("pg_dump"),
                "--format=custom",
                "--no-owner",
                "--no-privileges",
                "--file",
                str(dump),
            ],
            "pg_dump",
            BackupError,
            db_url,
        )
    finally:
        stop.set()
    listing = await asyncio.to_thread(
        _run, [_bin("pg_restore"), "--list", str(dump)], "pg_restore --list", BackupError
    )
    toc_entries = sum(1 for ln in listing.stdout.splitlines() if ln and not ln.startswith(";"))
    progress(f"database: {dump.stat().st_size / 1e6:.1f} MB, {toc_entries} entries, verified")

    blocks_count = blocks_bytes = 0
    included = blockstore is not None and blockstore.kind != "POSTGRESQL"
    if included:
        assert blockstore is not None
        blocks_count, blocks_bytes = await _backup_blocks(
            db_url, blockstore, tmp / "blocks", tmp / BLOCKS_MANIFEST, progress
        )

    metadata = {
        "format": FORMAT,
        "parsec_server_version": __version__,
        "schema_version": schema_version,
        "created_at": datetime.now(UTC).isoformat(),
        "duration_seconds": round(time.monotonic() - started, 3),
        "database": {
            "file": "database.dump",
            "bytes": dump.stat().st_size,
            "sha256": _sha256(dump),
            "toc_entries": toc_entries,
        },
        # None: the database only (the backup `migrate` takes: migrations do not touch the blocks)
        "blockstore": {
            "kind": blockstore.kind if blockstore else None,
            "blocks": blocks_count,
            "bytes": blocks_bytes,
            "included": included,
            **(
                {"manifest": {"file": BLOCKS_MANIFEST, "sha256": _sha256(tmp / BLOCKS_MANIFEST)}}
                if included
                else {}
            ),
        },
    }
    (tmp / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    (tmp / _LOCK).unlink()  # still held through its descriptor until the rename
    _owner_only(tmp)
    _fsync_tree(tmp)
    os.rename(tmp, output)
    _fsync_dir(output.parent)
    return BackupResult(output, metadata)


def _owner_only(path: Path) -> None:
    """Directories 0700, files 0600, whatever the umask was (pg_dump's files follow it)."""
    os.chmod(path, 0o700)
    for root, dirs, files in os.walk(path):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o700)
        for name in files:
            os.chmod(os.path.join(root, name), 0o600)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for root, _dirs, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


async def _open_blockstore(db_url: str, config: BlockstoreConfig) -> tuple[Any, Any]:
    from parsec_server.blockstore import build_blockstore
    from parsec_server.storage.db import Database

    db = await Database.open(db_url, 1, 2)
    store = build_blockstore(config, db)
    await store.start()
    return db, store


async def _backup_blocks(
    db_url: str, config: BlockstoreConfig, dest: Path, manifest: Path, progress: Progress
) -> tuple[int, int]:
    from parsec_server.blockstore.base import BlockstoreUnavailable

    db, store = await _open_blockstore(db_url, config)
    count = size = 0
    last = time.monotonic()
    dest.mkdir()
    try:
        with open(manifest, "w") as sums:
            async for org_id, block_id in store.iter_blocks():
                try:
                    data = await store.read(org_id, block_id)
                except BlockstoreUnavailable as exc:
                    raise BackupError(
                        f"blockstore: cannot read block {org_id}/{block_id}: {exc}"
                    ) from exc
                d = dest / org_id
                d.mkdir(parents=True, exist_ok=True)
                (d / str(block_id)).write_bytes(data)
                sums.write(f"{hashlib.sha256(data).hexdigest()}  {org_id}/{block_id}\n")
                count += 1
                size += len(data)
                if time.monotonic() - last > 2:
                    progress(f"blocks: {count} copied ({size / 1e6:.1f} MB)")
                    last = time.monotonic()
    except BlockstoreUnavailable as exc:
        raise BackupError(f"blockstore: {exc}") from exc
    finally:
        await store.stop()
        await db.close()
    progress(f"blocks: {count} copied ({size / 1e6:.1f} MB)")
    return count, size


def verify_backup(path: Path) -> dict[str, Any]:
    """Check that a backup is complete and intact, without touching any database."""
    meta_path = path / "metadata.json"
    if not meta_path.is_file():
        raise RestoreError(f"{path} is not a parsec-server backup (no metadata.json)")
    try:
        meta = json.loads(meta_path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise RestoreError(f"{meta_path} is corrupted: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise RestoreError(f"unsupported backup format {found!r} (expected {FORMAT})")
    try:
        database, bs = meta["database"], meta["blockstore"]
        dump = path / _plain_name(database["file"])
        expected_sha = str(database["sha256"])
        included = bool(bs["included"])
        if included:
            manifest = path / _plain_name(bs["manifest"]["file"])
            manifest_sha, blocks, size = (
                str(bs["manifest"]["sha256"]),
                int(bs["blocks"]),
                int(bs["bytes"]),
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise RestoreError(f"{meta_path} is corrupted: missing or invalid {exc}") from None
    if not dump.is_file():
        raise RestoreError(f"backup incomplete: {dump.name} is missing")
    if _sha256(dump) != expected_sha:
        raise RestoreError(f"backup corrupted: {dump.name} does not match its checksum")
    _run([_bin("pg_restore"), "--list", str(dump)], "pg_restore --list", RestoreError)
    if included:
        _verify_blocks(path / "blocks", manifest, manifest_sha, blocks, size)
    return meta


def _plain_name(name: Any) -> str:
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise ValueError(f"file name {name!r}")
    return name


def _verify_blocks(
    blocks_dir: Path, manifest: Path, manifest_sha: str, count: int, size: int
) -> None:
    if not manifest.is_file():
        raise RestoreError(f"backup incomplete: {manifest.name} is missing")
    if _sha256(manifest) != manifest_sha:
        raise RestoreError(f"backup corrupted: {manifest.name} does not match its checksum")
    expected: dict[str, str] = {}
    for line in manifest.read_text().splitlines():
        digest, _, name = line.partition("  ")
        expected[name] = digest
    files = (
        {p.relative_to(blocks_dir).as_posix(): p for p in blocks_dir.rglob("*") if p.is_file()}
        if blocks_dir.is_dir()
        else {}
    )
    missing = sorted(set(expected) - set(files))
    if missing or len(expected) != count:
        raise RestoreError(
            f"backup incomplete: {len(missing) or count - len(expected)} block file(s) missing "
            f"(first: blocks/{missing[0] if missing else '?'})"
        )
    extra = sorted(set(files) - set(expected))
    if extra:
        raise RestoreError(f"backup corrupted: unexpected file blocks/{extra[0]}")
    total = 0
    for name, digest in expected.items():
        total += files[name].stat().st_size
        if _sha256(files[name]) != digest:
            raise RestoreError(f"backup corrupted: blocks/{name} does not match its checksum")
    if total != size:
        raise RestoreError(f"backup corrupted: {total} bytes of blocks, metadata says {size}")


async def _database_is_empty(conn: asyncpg.Connection) -> bool:
    n = await conn.fetchval(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' "
        "AND c.relkind IN ('r', 'p', 'v', 'm', 'S')"
    )
    return int(n) == 0


# --force: drop everything in the `public` schema, recreating it with its owner, privileges and comment
# (PostgreSQL 15 gives it to pg_database_owner with USAGE for everybody; a bare CREATE SCHEMA would not).
_EMPTY_PUBLIC_SCHEMA = """
DO $$
DECLARE
    owner text;
    acl aclitem[];
    note text;
    g record;
BEGIN
    SELECT n.nspowner::regrole::text, n.nspacl, obj_description(n.oid, 'pg_namespace')
        INTO owner, acl, note FROM pg_namespace n WHERE n.nspname = 'public';
    DROP SCHEMA IF EXISTS public CASCADE;
    EXECUTE format('CREATE SCHEMA public AUTHORIZATION %s', coalesce(owner, 'CURRENT_USER'));
    FOR g IN SELECT a.grantee, a.privilege_type FROM aclexplode(acl) a LOOP
        EXECUTE format('GRANT %s ON SCHEMA public TO %s', g.privilege_type,
                       CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE g.grantee::regrole::text END);
    END LOOP;
    EXECUTE format('COMMENT ON SCHEMA public IS %L', note);
END
$$
"""


def _maintenance_url(db_url: str) -> tuple[str, str]:
    """(URL of the `postgres` database of the same server, name of the database of `db_url`)."""
    parts = urlsplit(db_url)
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise RestoreError(f"no database name in {engine.redact_url(db_url)}")
    return urlunsplit(parts._replace(path="/postgres")), name


async def _create_database(db_url: str) -> str:
    """CREATE DATABASE for a restore target that does not exist yet, connected to `postgres`."""
    admin_url, name = _maintenance_url(db_url)
    try:
        conn = await db.connect(admin_url)
    except db.DatabaseUnavailable as exc:
        raise RestoreError(
            f"the database {name!r} does not exist and {exc}; create it first: "
            f'createdb {name!r} (or CREATE DATABASE "{name}" in psql)'
        ) from None
    try:
        quoted = '"' + name.replace('"', '""') + '"'
        await conn.execute(f"CREATE DATABASE {quoted}")
    except asyncpg.PostgresError as exc:
        raise RestoreError(
            f"the database {name!r} does not exist and could not be created ({exc}): create it "
            f"first (createdb {name!r}, as a role allowed to), then rerun restore"
        ) from None
    finally:
        await conn.close()
    return name


async def restore_backup(
    db_url: str,
    blockstore: BlockstoreConfig | None,
    path: Path,
    force: bool = False,
    progress: Progress = lambda _m: None,
) -> dict[str, Any]:
    meta = verify_backup(path)
    progress("backup verified")
    bs = meta["blockstore"]
    if bs["included"] and (blockstore is None or blockstore.kind == "POSTGRESQL"):
        raise RestoreError(
            "the backup holds blockstore objects: give the --blockstore to restore them into"
        )
    created = False
    try:
        conn = await db.connect(db_url)
    except db.DatabaseUnavailable as exc:
        if not isinstance(exc.__cause__, asyncpg.InvalidCatalogNameError):
            raise RestoreError(str(exc)) from exc
        name = await _create_database(db_url)
        progress(f"database: created {name!r} (it did not exist)")
        created = True
        conn = await db.connect(db_url)
    try:
        empty = await _database_is_empty(conn)
    finally:
        await conn.close()
    if not empty and not force:
        raise RestoreError(
            "the target database is not empty: restore into a new database, "
            "or pass --force to replace its content"
        )
    report: dict[str, Any] = {
        "database": "restored",
        "schema_version": meta.get("schema_version"),
        "blocks": 0,
        "created_at": meta.get("created_at"),
        "created_database": created,
    }
    if bs["included"]:  # objects first: a failure below leaves only unreferenced objects behind
        assert blockstore is not None
        report["blocks"] = await _restore_blocks(db_url, blockstore, path / "blocks", progress)
    if not empty:
        progress("database: --force given, dropping the existing schema")
        conn = await asyncpg.connect(db_url, timeout=10)
        try:
            await conn.execute(_EMPTY_PUBLIC_SCHEMA)
        finally:
            await conn.close()
    progress("database: restoring")
    await asyncio.to_thread(
        _run,
        [
            _bin("pg_restore"),
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
            str(path / meta["database"]["file"]),
        ],
        "pg_restore",
        RestoreError,
        db_url,
    )
    progress("database: restored")
    return report


async def _restore_blocks(
    db_url: str, config: BlockstoreConfig, src: Path, progress: Progress
) -> int:
    from parsec_server.blockstore.base import BlockstoreUnavailable

    db, store = await _open_blockstore(db_url, config)
    count = 0
    try:
        for org_dir in sorted(p for p in src.iterdir() if p.is_dir()):
            for f in sorted(org_dir.iterdir()):
                await store.create(org_dir.name, uuid.UUID(f.name), f.read_bytes())
                count += 1
    except BlockstoreUnavailable as exc:
        raise RestoreError(f"blockstore: {exc}") from exc
    finally:
        await store.stop()
        await db.close()
    progress(f"blocks: {count} restored")
    return count
