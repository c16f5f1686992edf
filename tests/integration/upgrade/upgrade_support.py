"""Helpers of the upgrade-safety tests (tests/integration/upgrade and tests/integration/backup).

* the `parsec-server` CLI as real subprocesses (`cli`, `migrate`), and `ServerProcess`:
`parsec-server run`
  on loopback, stopped with SIGTERM like a service manager would;
* "the server at release N": `release_dir()` makes a folder holding only the migrations of release
N,
  given to the commands through the hidden `PARSEC_MIGRATIONS_DIR` (honoured by `migrate` and
  `run`);
* database helpers: SQL, a data snapshot of every table (compared on the columns two schemas share),
  the normalised schema dump, loading a release's data fixture (fixtures/release_NNNN.sql);
* a small synchronous Parsec client (signed auth tokens, msgpack) for the administration API and the
  authenticated API over real HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.resources
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nacl.signing
import zstandard

from parsec_server.crypto.tokens import generate_authenticated_token
from parsec_server.embedded_pg import free_tcp_port
from parsec_server.protocol.codec import packb, unpackb
from parsec_server.protocol.registry import decode_rep
from parsec_server.storage.migrations import engine
from parsec_server.storage.migrations.releases import RELEASES

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
EXE = [sys.executable, "-m", "parsec_server.cli.main"]
ADMIN_TOKEN = "upgrade-tests-admin-token"
API_HEADERS = {"Api-Version": "5.5", "Content-Type": "application/msgpack"}
ENGINE_TABLES = ("schema_migration", "schema_migration_event", "schema_migration_progress")
LATEST = len(engine.discover())


# --- CLI ------------------------------------------------------------------------------------------


def base_env(migrations_dir: Path | None = None, **extra: str) -> dict[str, str]:
    # PARSEC_BACKUP_DIR stays: the test run's own (tests/conftest.py), not /var/lib/parsec-server
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PARSEC_") or k == "PARSEC_BACKUP_DIR"
    }
    env["PYTHONUNBUFFERED"] = "1"
    if migrations_dir is not None:
        env["PARSEC_MIGRATIONS_DIR"] = str(migrations_dir)
    env.update(extra)
    return env


def cli(
    *args: str,
    migrations_dir: Path | None = None,
    timeout: float = 120,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`parsec-server ARGS...` as a subprocess (the release given by `migrations_dir`, else this
    one)."""
    return subprocess.run(
        [*EXE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**base_env(migrations_dir), **(env or {})},
    )


def migrate(
    url: str, *args: str, migrations_dir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return cli("migrate", "--db", url, *args, migrations_dir=migrations_dir)


def ok(res: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert res.returncode == 0, f"exit {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    return res


def release_dir(parent: Path, number: int) -> Path:
    """A migrations folder holding the shipped migrations 0001..`number` only (the files of release
    N)."""
    dest = parent / f"migrations-{number:04d}"
    if dest.exists():
        return dest
    tmp = parent / f".migrations-{number:04d}-{uuid.uuid4().hex[:6]}"
    tmp.mkdir(parents=True)
    package = importlib.resources.files("parsec_server.storage.migrations")
    for m in engine.discover():
        if m.index > number:
            continue
        for name in (m.filename, m.down.filename if m.down else None):
            if name:
                (tmp / name).write_bytes(package.joinpath(name).read_bytes())
    tmp.rename(dest)
    return dest


# --- database -------------------------------------------------------------------------------------


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def query(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return _run(go())


def execute(url: str, sql: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    _run(go())


def value(url: str, sql: str, *args: Any) -> Any:
    rows = query(url, sql, *args)
    return rows[0][0] if rows else None


def history(url: str) -> list[str]:
    if not value(url, "SELECT to_regclass('schema_migration') IS NOT NULL"):
        return []
    return [r["name"] for r in query(url, "SELECT name FROM schema_migration ORDER BY number")]


def schema(url: str) -> str:
    """The normalised schema dump (the format of the reference schema.sql)."""
    return str(_run(engine.dump_schema(url)))


def reference_schema() -> str:
    from parsec_server.storage.migrations import source

    return str(engine.normalise_dump(source.reference_schema_path().read_text()))


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]  # sorted

    def project(self, columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
        idx = [self.columns.index(c) for c in columns]
        return sorted((tuple(r[i] for i in idx) for r in self.rows), key=repr)


Snapshot = dict[str, Table]


def snapshot(url: str) -> Snapshot:
    """Every row of every table of the data model (not the engine's history tables)."""

    async def go() -> Snapshot:
        conn = await asyncpg.connect(url)
        try:
            tables = [
                r["tablename"]
                for r in await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
                )
            ]
            out: Snapshot = {}
            for t in tables:
                if t in ENGINE_TABLES:
                    continue
                cols = tuple(
                    r["attname"]
                    for r in await conn.fetch(
                        "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass "
                        "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                        t,
                    )
                )
                rows = [tuple(r) for r in await conn.fetch(f'SELECT * FROM "{t}"')]
                out[t] = Table(cols, tuple(sorted(rows, key=repr)))
            return out
        finally:
            await conn.close()

    return dict(_run(go()))


def data_differences(before: Snapshot, after: Snapshot, *, exact: bool = False) -> list[str]:
    """Rows of `before` that `after` lost or changed, on the tables and columns both schemas have
    (a newer schema may add tables and columns; an older one only holds what it has columns for).
    Rows only in `after` (written since) count only when `exact`."""
    problems: list[str] = []
    for name, old in before.items():
        new = after.get(name)
        if new is None:
            if old.rows:
                problems.append(f"table {name} ({len(old.rows)} rows) is gone")
            continue
        common = tuple(c for c in old.columns if c in new.columns)
        a, b = old.project(common), new.project(common)
        remaining = list(b)
        lost = []
        for row in a:
            try:
                remaining.remove(row)
            except ValueError:
                lost.append(row)
        if lost or (exact and remaining):
            problems.append(
                f"table {name}: {len(lost)} of {len(a)} rows lost or changed (first: "
                f"{repr(lost[:1])[:300]}), {len(remaining)} rows only after"
            )
    if exact:
        problems += [
            f"table {name} only after" for name, t in after.items() if name not in before and t.rows
        ]
    return problems


def assert_data_kept(before: Snapshot, after: Snapshot, *, exact: bool = False) -> None:
    """Every row of `before` is in `after` (`exact`: and nothing else)."""
    problems = data_differences(before, after, exact=exact)
    assert not problems, "data changed:\n" + "\n".join(problems)


def row_count(snap: Snapshot) -> int:
    return sum(len(t.rows) for t in snap.values())


def fixture_path(number: int) -> Path:
    return FIXTURES / f"release_{number:04d}.sql"


def load_fixture(url: str, number: int) -> None:
    """Insert the data release `number` wrote (the database must be at that release, or later but
    still able to hold it)."""
    execute(url, fixture_path(number).read_text())


def build_database(url: str, number: int, workdir: Path) -> None:
    """An empty database taken through the releases' history up to release `number` (LATEST: up to
    this code's schema): at each release its migrations, then the data that release wrote (so the
    result holds data of every era)."""
    for release in RELEASES:
        if release.number > number:
            break
        ok(migrate(url, "--no-backup", migrations_dir=release_dir(workdir, release.number)))
        load_fixture(url, release.number)
    if number == LATEST:  # and this code's migrations, released or not yet
        ok(migrate(url, "--no-backup"))


# --- servers --------------------------------------------------------------------------------------


class ServerExited(AssertionError):
    def __init__(self, code: int | None, stderr: str) -> None:
        super().__init__(f"parsec-server run exited with {code}: {stderr.strip()[-2000:]}")
        self.code = code
        self.stderr = stderr


class ServerProcess:
    """`parsec-server run --db URL` on 127.0.0.1 (as release N with `migrations_dir`)."""

    def __init__(
        self,
        db_url: str,
        *,
        migrations_dir: Path | None = None,
        blockstore: tuple[str, ...] = (),
        port: int | None = None,
    ) -> None:
        self.db_url = db_url
        self.migrations_dir = migrations_dir
        self.blockstore = blockstore
        self.port = port or free_tcp_port()
        self.proc: subprocess.Popen[str] | None = None
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.http = httpx.Client(base_url=self.url, timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def args(self) -> list[str]:
        args = [
            *EXE,
            "run",
            "--db",
            self.db_url,
            "--administration-token",
            ADMIN_TOKEN,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--server-addr",
            f"parsec3://127.0.0.1:{self.port}?no_ssl=true",
        ]
        for b in self.blockstore:
            args += ["--blockstore", b]
        return args

    def start(self, timeout: float = 60) -> ServerProcess:
        self.proc = subprocess.Popen(
            self.args(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=base_env(self.migrations_dir, PARSEC_VALIDATE_REPLIES="1"),
        )
        threading.Thread(
            target=self._pump, args=(self.proc.stdout, self.stdout, True), daemon=True
        ).start()
        threading.Thread(
            target=self._pump, args=(self.proc.stderr, self.stderr, False), daemon=True
        ).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:  # stdout closed: the process ended
                code = self.proc.wait(10)
                time.sleep(0.1)
                raise ServerExited(code, "".join(self.stderr))
            if line.startswith("press Ctrl-C"):
                return self
        self.kill()
        raise AssertionError(f"server did not start in {timeout}s: {self.stdout} {self.stderr}")

    def _pump(self, stream: Any, sink: list[str], signal_lines: bool) -> None:
        for line in stream:
            sink.append(line)
            if signal_lines:
                self._lines.put(line)
        if signal_lines:
            self._lines.put(None)

    @property
    def log(self) -> str:
        return "".join(self.stderr)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        self.http.close()
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.http.close()

    def __enter__(self) -> ServerProcess:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            code = self.stop()
            if exc[0] is None:
                assert code == 0, f"server stopped with exit code {code}: {self.log[-2000:]}"
        self.kill()

    # administration API
    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(
            method,
            f"/administration{path}",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            **kwargs,
        )

    def admin_json(self, method: str, path: str, **kwargs: Any) -> Any:
        r = self.admin(method, path, **kwargs)
        assert r.status_code == 200, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()


@contextlib.contextmanager
def running(db_url: str, **kwargs: Any) -> Iterator[ServerProcess]:
    with ServerProcess(db_url, **kwargs) as server:
        yield server


# --- Parsec client --------------------------------------------------------------------------------

_ZSTD = zstandard.ZstdCompressor()


def signing_key(*parts: str) -> nacl.signing.SigningKey:
    """A deterministic Ed25519 key (the fixtures' devices: tests derive the same keys)."""
    return nacl.signing.SigningKey(hashlib.sha256("/".join(parts).encode()).digest())


_NS = uuid.UUID("5d0f61c2-93a4-4c1e-8f0e-7b9a2c4d6e81")


def uid(*parts: str) -> uuid.UUID:
    return uuid.uuid5(_NS, "/".join(parts))


def sign(key: nacl.signing.SigningKey, content: dict[str, Any]) -> bytes:
    """A signed certificate: `signature || 0x00 || zstd(msgpack(content))`."""
    serialized = b"\x00" + _ZSTD.compress(packb(content))
    return key.sign(serialized).signature + serialized


class RpcHttpError(AssertionError):
    def __init__(self, cmd: str, response: httpx.Response) -> None:
        super().__init__(f"{cmd}: HTTP {response.status_code} {response.content[:200]!r}")
        self.status_code = response.status_code


def anonymous(http: httpx.Client, organization_id: str, cmd: str, **fields: Any) -> dict[str, Any]:
    r = http.post(
        f"/anonymous/{organization_id}", content=packb({"cmd": cmd, **fields}), headers=API_HEADERS
    )
    if r.status_code != 200:
        raise RpcHttpError(cmd, r)
    return decode_rep(r.content)


def authenticated(
    http: httpx.Client,
    organization_id: str,
    device_id: uuid.UUID,
    key: nacl.signing.SigningKey,
    cmd: str,
    *,
    tos: bool = False,
    **fields: Any,
) -> dict[str, Any]:
    """An authenticated command (`tos`: one of the terms-of-service family,
    /authenticated/<org>/tos)."""
    token = generate_authenticated_token(device_id, int(time.time()), bytes(key))
    path = f"/authenticated/{organization_id}" + ("/tos" if tos else "")
    r = http.post(
        path,
        content=packb({"cmd": cmd, **fields}),
        headers={**API_HEADERS, "Authorization": f"Bearer {token}"},
    )
    if r.status_code != 200:
        raise RpcHttpError(cmd, r)
    return decode_rep(r.content)


def bootstrap_token(bootstrap_url: str) -> bytes | None:
    import base64
    from urllib.parse import parse_qs, urlsplit

    p = parse_qs(urlsplit(bootstrap_url).query)["p"][0]
    token: bytes | None = unpackb(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    return token
