"""A PostgreSQL cluster that parsec-server starts and stops itself.

Used by `parsec-server run` without `--db` (the embedded default) and by the test suite, so both run on the
same code. The binaries are the system's PostgreSQL (found with `PARSEC_PG_BINDIR`, `pg_config --bindir`
or `/usr/lib/postgresql/<major>/bin`): they are in the base image of the machines we target and keep the
package free of a 40 MB binary wheel.

PostgreSQL refuses to run as root. When we are root, the cluster runs as an unprivileged system user
(`postgres` if it exists, else `nobody`) and its data directory is owned by that user; Python itself keeps
running as root and talks to the cluster over a Unix socket in a private directory. The postmaster is our
child process and receives SIGINT (fast shutdown) if we die, so no process is left behind;
`bound_to_parent` does the same for the other PostgreSQL tools we run (psql, pg_dump, pg_restore).
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

DEFAULT_DATABASE = "parsec"
_PR_SET_PDEATHSIG = 1


class EmbeddedPostgresError(Exception):
    """The embedded cluster could not be created, started or stopped (message is for the operator)."""


class DataDirBusy(EmbeddedPostgresError):
    """Another process (another parsec-server) holds the data directory."""


_LOCK_NAME = "parsec-server.lock"
_SOCKET_PREFIX = "parsec-pg-"


def _lock_data_dir(data_dir: Path) -> int:
    """Take the data directory's lock for the life of this process (released at exit, even by
    `kill -9`). Raises DataDirBusy naming the holder's pid when another process has it."""
    fd = os.open(data_dir / _LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise DataDirBusy(
            f"another parsec-server (pid {holder}) holds the data directory {data_dir}: stop it, "
            "or give another --data-dir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def sweep_stale_socket_dirs(min_age: float = 60.0) -> list[Path]:
    """Remove the empty socket directories (`parsec-pg-*` in the temporary directory) that a
    server killed before it could clean up left behind. A live cluster's directory holds its socket
    and lock file; one younger than `min_age` seconds may belong to a cluster starting now."""
    removed = []
    now = time.time()
    for path in Path(tempfile.gettempdir()).glob(f"{_SOCKET_PREFIX}*"):
        try:
            st = path.lstat()
            if st.st_uid != os.geteuid() or now - st.st_mtime < min_age:
                continue
            path.rmdir()  # only if empty
        except OSError:
            continue
        removed.append(path)
    return removed


def find_bindir() -> Path:
    candidates: list[Path] = []
    env = os.environ.get("PARSEC_PG_BINDIR")
    if env:
        candidates.append(Path(env))
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
            candidates.append(Path(out))
        except (OSError, subprocess.SubprocessError):
            pass

    def major(p: Path) -> int:
        try:
            return int(p.parent.name)
        except ValueError:
            return 0

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=major, reverse=True)
    candidates += [Path("/usr/local/pgsql/bin")]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for c in candidates:
        if (c / "initdb").is_file() and (c / "postgres").is_file():
            return c
    raise EmbeddedPostgresError(
        "no PostgreSQL server binaries found (install PostgreSQL, e.g. `apt-get install postgresql`, "
        "or set PARSEC_PG_BINDIR to the directory holding initdb and postgres)"
    )


def default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/parsec-server")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "parsec-server"


def _run_as_user() -> pwd.struct_passwd | None:
    """The user the cluster runs as: None means ourselves (we are not root)."""
    if os.geteuid() != 0:
        return None
    for name in (os.environ.get("PARSEC_PG_USER"), "postgres", "nobody"):
        if not name:
            continue
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise EmbeddedPostgresError(
        "running as root and no unprivileged user (postgres, nobody) to run PostgreSQL"
    )


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:  # not glibc Linux: children are not bound to our lifetime
        return None


_LIBC = _libc()  # loaded here: a forked child must not dlopen (another thread may hold the lock)


def bound_to_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A `preexec_fn` that ties a child process to this one's lifetime: the child gets `sig` as
    soon as we die, kill -9 included (Linux prctl PR_SET_PDEATHSIG; it fires when the thread that
    started the child ends, so start children from a thread that waits for them). A child whose
    parent died before prctl took effect exits at once."""
    parent = os.getpid()

    def preexec() -> None:  # runs in the child, after setuid
        if _LIBC is None:
            return
        _LIBC.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(128 + sig)

    return preexec


def _check_traversable(path: Path, user: pwd.struct_passwd) -> None:
    """Every parent directory must let `user` in (e.g. not under root's 0700 home)."""
    for parent in path.parents:
        if not parent.exists():
            continue
        st = parent.stat()
        if st.st_uid == user.pw_uid:
            continue
        if not st.st_mode & 0o001:
            raise EmbeddedPostgresError(
                f"data directory {path} is not reachable by user {user.pw_name!r} that runs PostgreSQL "
                f"({parent} is not traversable); choose another --data-dir, e.g. /var/lib/parsec-server"
            )


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _ChildOptions(TypedDict, total=False):
    preexec_fn: Callable[[], None]
    user: int
    group: int
    extra_groups: list[int]


@dataclass
class EmbeddedPostgres:
    """One cluster in `data_dir` (created on first start). `tcp_port=None` means Unix socket only."""

    data_dir: Path
    tcp_port: int | None = None
    database: str = DEFAULT_DATABASE
    fast_unsafe: bool = False  # fsync off & co: for tests only
    log_file: Path | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _socket_dir: Path | None = field(default=None, init=False, repr=False)
    _lock_fd: int | None = field(default=None, init=False, repr=False)
    created_cluster: bool = field(default=False, init=False)
    created_database: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).absolute()
        self.bindir = find_bindir()
        self.user = _run_as_user()

    # --- helpers -----------------------------------------------------------------------------------
    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    def _popen_kwargs(self) -> _ChildOptions:
        kw: _ChildOptions = {"preexec_fn": bound_to_parent(signal.SIGINT)}  # fast shutdown
        if self.user is not None:
            kw["user"], kw["group"], kw["extra_groups"] = self.user.pw_uid, self.user.pw_gid, []
        return kw

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C.UTF-8"
        if self.user is not None:
            env["HOME"] = self.user.pw_dir
        return env

    def _chown(self, path: Path) -> None:
        if self.user is not None:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    @property
    def url(self) -> str:
        if self.tcp_port is not None:
            return f"postgresql://postgres@127.0.0.1:{self.tcp_port}/{self.database}"
        assert self._socket_dir is not None, "cluster not started"
        return f"postgresql://postgres@/{self.database}?host={self._socket_dir}&port=5432"

    def url_for(self, database: str) -> str:
        base, sep, query = self.url.partition("?")
        return f"{base.rsplit('/', 1)[0]}/{database}{sep}{query}"

    # --- lifecycle ----------------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> None:
        """Start the cluster (created on first use). Raises DataDirBusy when another process
        holds the data directory; a failed start leaves no process and no temporary directory."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._chown(self.data_dir)
        if self.user is not None:
            _check_traversable(self.data_dir, self.user)
        self._lock_fd = _lock_data_dir(self.data_dir)
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        sweep_stale_socket_dirs()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        else:
            self._check_version()
        self._socket_dir = Path(tempfile.mkdtemp(prefix=_SOCKET_PREFIX))
        self._chown(self._socket_dir)
        os.chmod(self._socket_dir, 0o755)
        settings = {
            "listen_addresses": "127.0.0.1" if self.tcp_port is not None else "",
            "unix_socket_directories": str(self._socket_dir),
            "max_connections": "200",
        }
        if self.fast_unsafe:
            settings.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        args = [
            str(self.bindir / "postgres"),
            "-D",
            str(self.pgdata),
            "-p",
            str(self.tcp_port or 5432),
        ]
        for k, v in settings.items():
            args += ["-c", f"{k}={v}"]
        log = self.log_file or (self.data_dir / "postgresql.log")
        with open(log, "ab") as logf:
            self._chown(log)
            self._proc = subprocess.Popen(
                args,
                stdout=logf,
                stderr=subprocess.STDOUT,
                env=self._env(),
                cwd="/",
                **self._popen_kwargs(),
            )
        self._wait_ready(timeout, log)
        self._ensure_database()

    def _initdb(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._chown(self.pgdata)
        os.chmod(self.pgdata, 0o700)
        args = [
            str(self.bindir / "initdb"),
            "-D",
            str(self.pgdata),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ]
        if self.fast_unsafe:
            args.append("--no-sync")
        res = subprocess.run(
            args, capture_output=True, env=self._env(), cwd="/", **self._popen_kwargs()
        )
        if res.returncode != 0:
            raise EmbeddedPostgresError(
                f"initdb failed: {res.stderr.decode(errors='replace').strip()[-500:]}"
            )
        self.created_cluster = True

    def _check_version(self) -> None:
        have = (self.pgdata / "PG_VERSION").read_text().strip()
        out = subprocess.run(
            [str(self.bindir / "postgres"), "--version"], capture_output=True, text=True
        )
        m = re.search(r"(\d+)(?:\.\d+)?", out.stdout)
        if m and m.group(1) != have:
            raise EmbeddedPostgresError(
                f"data directory {self.pgdata} was created by PostgreSQL {have}, but the binaries in "
                f"{self.bindir} are PostgreSQL {m.group(1)}; set PARSEC_PG_BINDIR to PostgreSQL {have}'s binaries"
            )

    def _psql(self, sql: str, database: str = "postgres") -> str:
        psql = self.bindir / "psql"
        res = subprocess.run(
            [
                str(psql),
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                self.url_for(database),
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            env=self._env(),
            preexec_fn=bound_to_parent(),
        )
        if res.returncode != 0:
            raise EmbeddedPostgresError(f"psql failed: {res.stderr.strip()}")
        return res.stdout.strip()

    def _wait_ready(self, timeout: float, log: Path) -> None:
        deadline = time.monotonic() + timeout
        assert self._proc is not None
        while True:
            if self._proc.poll() is not None:
                tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
                raise EmbeddedPostgresError(
                    f"PostgreSQL exited at start (code {self._proc.returncode}): {tail.strip()}"
                )
            res = subprocess.run(
                [str(self.bindir / "pg_isready"), "-q", "-d", self.url_for("postgres")],
                env=self._env(),
            )
            if res.returncode == 0:
                return
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedPostgresError(
                    f"PostgreSQL did not become ready within {timeout:.0f}s (log: {log})"
                )
            time.sleep(0.05)

    def _ensure_database(self) -> None:
        exists = self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'")
        if exists != "1":
            self._psql(f'CREATE DATABASE "{self.database}"')
            self.created_database = True

    def stop(self, timeout: float = 30.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # fast shutdown: abort sessions, checkpoint, exit
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGQUIT)
                proc.wait(10)
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the data directory's lock
            self._lock_fd = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None


@contextmanager
def running_cluster(data_dir: Path, **kwargs: object) -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(data_dir, **kwargs)  # type: ignore[arg-type]
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()
