"""Finding the migration files, reading their headers, computing their checksums.

A migration is `NNNN_snake_name.sql` (up) plus `NNNN_snake_name.down.sql` (down), numbered 0001,
0002... without gaps. The header is the comment block at the top of the file; the engine reads these
keys (anything else in the block is free text, e.g. `-- Why: ...`):

    -- compat: expand | breaking     can the previous release still run on the schema this produces?
    -- transaction: on | off         off = run statement by statement (CREATE INDEX CONCURRENTLY)
    -- lock_timeout: 2s              lock wait per statement before rolling back and retrying
    -- statement_timeout: 10min      optional
    -- lock_retries: 10              attempts when a lock cannot be taken in lock_timeout
    -- data-loss: yes | no           down files only: does reverting discard data?

The checksum is the sha256 of the file with line endings unified, trailing blanks dropped and a
UTF-8 BOM removed (`CHECKSUM_VERSION` 1). It is defined here, on our own normalisation, so that
upgrading a library never changes it; changing the normalisation requires a new version number.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Literal

from parsec_server.storage.migrations import sqltext
from parsec_server.storage.migrations.errors import InvalidMigrations

CHECKSUM_VERSION = 1
DEFAULT_PACKAGE = "parsec_server.storage.migrations"
REFERENCE_SCHEMA = "schema.sql"

Compat = Literal["expand", "breaking"]
MigrationsSource = str | os.PathLike[str] | Traversable | None

_UP = re.compile(r"^(\d{4})_([a-z0-9]+(?:_[a-z0-9]+)*)\.sql$")
_DOWN = re.compile(r"^(\d{4})_([a-z0-9]+(?:_[a-z0-9]+)*)\.down\.sql$")
_HEADER_LINE = re.compile(r"^--\s*([A-Za-z][A-Za-z_-]*)\s*:\s*(.*?)\s*$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|min|h)?$")
_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "min": 60.0,
    "h": 3600.0,
    None: 0.001,
}  # bare number: ms, as PostgreSQL
KNOWN_KEYS = {
    "compat",
    "transaction",
    "lock_timeout",
    "statement_timeout",
    "lock_retries",
    "data-loss",
}


def normalise(content: bytes | str) -> str:
    text = content.decode("utf-8") if isinstance(content, bytes) else content
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"


def checksum(content: bytes | str) -> str:
    return hashlib.sha256(normalise(content).encode("utf-8")).hexdigest()


def parse_duration(value: str) -> float:
    """`2s` -> 2.0, `500ms` -> 0.5 (the PostgreSQL spellings we accept in headers and options)."""
    m = _DURATION.match(value.strip())
    if m is None:
        raise ValueError(f"invalid duration {value!r} (examples: 500ms, 2s, 1min)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def pg_duration(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


@dataclass(frozen=True, slots=True)
class Header:
    values: dict[str, str] = field(default_factory=dict)  # known keys declared in the file
    line_of: dict[str, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, filename: str) -> Header:
        values: dict[str, str] = {}
        line_of: dict[str, int] = {}
        for lineno, raw in enumerate(text.split("\n"), start=1):
            line = raw.strip()
            if not line:
                continue
            if not line.startswith("--"):
                break
            m = _HEADER_LINE.match(line)
            if m is None:
                continue
            key = m.group(1).lower().replace("data_loss", "data-loss")
            if key not in KNOWN_KEYS:
                continue  # free text such as `-- Why: ...`
            value = (m.group(2).split() or [""])[0].lower()
            if key in values:
                raise InvalidMigrations(f"{filename}:{lineno}: header `{key}` declared twice")
            values[key] = value
            line_of[key] = lineno
        header = cls(values, line_of)
        header._validate(filename)
        return header

    def _validate(self, filename: str) -> None:
        def bad(key: str, expected: str) -> InvalidMigrations:
            return InvalidMigrations(
                f"{filename}:{self.line_of[key]}: header `{key}: {self.values[key]}` is invalid "
                f"(expected {expected})"
            )

        v = self.values
        if "compat" in v and v["compat"] not in ("expand", "breaking"):
            raise bad("compat", "expand or breaking")
        if "transaction" in v and v["transaction"] not in ("on", "off"):
            raise bad("transaction", "on or off")
        if "data-loss" in v and v["data-loss"] not in ("yes", "no"):
            raise bad("data-loss", "yes or no")
        for key in ("lock_timeout", "statement_timeout"):
            if key in v:
                try:
                    parse_duration(v[key])
                except ValueError:
                    raise bad(key, "a duration such as 500ms, 2s, 1min") from None
        if "lock_retries" in v and not v["lock_retries"].isdigit():
            raise bad("lock_retries", "a number of attempts")

    def duration(self, key: str) -> float | None:
        return parse_duration(self.values[key]) if key in self.values else None


@dataclass(frozen=True, slots=True)
class Script:
    """One file: an up migration or its down counterpart."""

    index: int
    name: str  # `0002_block_usage_indexes` (no extension): the name stored in the history
    filename: str  # `0002_block_usage_indexes.sql` / `.down.sql`
    sql: str
    checksum: str
    header: Header

    @property
    def transactional(self) -> bool:
        return self.header.values.get("transaction", "on") == "on"

    @property
    def lock_timeout(self) -> float | None:
        return self.header.duration("lock_timeout")

    @property
    def statement_timeout(self) -> float | None:
        return self.header.duration("statement_timeout")

    @property
    def lock_retries(self) -> int | None:
        r = self.header.values.get("lock_retries")
        return int(r) if r is not None else None

    def statements(self) -> list[sqltext.Statement]:
        return sqltext.split(self.sql)


@dataclass(frozen=True, slots=True)
class Migration(Script):
    down: Script | None = None

    @property
    def compat(self) -> Compat:
        # Undeclared means breaking: the safe assumption (the linter asks for an explicit header).
        return "expand" if self.header.values.get("compat") == "expand" else "breaking"

    @property
    def down_data_loss(self) -> bool:
        # Undeclared means "yes": refusing a harmless step beats silently dropping a table.
        return self.down is None or self.down.header.values.get("data-loss", "yes") != "no"


def _entries(source: MigrationsSource) -> Iterable[Traversable]:
    if source is None:
        root: Traversable = importlib.resources.files(DEFAULT_PACKAGE)
    elif isinstance(source, str | os.PathLike):
        root = Path(source)
        if not root.is_dir():
            raise InvalidMigrations(f"migrations directory {root} does not exist")
    else:
        root = source
    return root.iterdir()


def _read(entry: Traversable, filename: str) -> str:
    try:
        return normalise(entry.read_bytes())
    except UnicodeDecodeError as exc:
        raise InvalidMigrations(f"{filename}: not valid UTF-8 ({exc.reason})") from None


def discover(source: MigrationsSource = None) -> list[Migration]:
    """All migrations of `source` (default: the package's), sorted; refuses an inconsistent set."""
    ups: dict[int, tuple[str, Traversable]] = {}
    downs: dict[int, tuple[str, Traversable]] = {}
    for entry in _entries(source):
        filename = entry.name
        if not filename.endswith(".sql") or filename == REFERENCE_SCHEMA or not entry.is_file():
            continue
        m_down = _DOWN.match(filename)
        m_up = None if m_down else _UP.match(filename)
        m = m_down or m_up
        if m is None:
            raise InvalidMigrations(
                f"{filename}: not a migration file name (expected NNNN_snake_case_name.sql "
                "or NNNN_snake_case_name.down.sql)"
            )
        index = int(m.group(1))
        if index == 0:
            raise InvalidMigrations(f"{filename}: migration numbers start at 0001")
        table = downs if m_down else ups
        if index in table:
            raise InvalidMigrations(
                f"duplicate migration number {index:04d}: {table[index][0]} and {filename}"
            )
        table[index] = (filename, entry)

    for index, (filename, _) in downs.items():
        up = ups.get(index)
        if up is None or up[0].removesuffix(".sql") != filename.removesuffix(".down.sql"):
            raise InvalidMigrations(
                f"{filename}: no matching up migration {filename.replace('.down', '')}"
            )

    expected = list(range(1, len(ups) + 1))
    if sorted(ups) != expected:
        missing = sorted(set(range(1, max(ups) + 1)) - set(ups))
        raise InvalidMigrations(
            "migration numbers have a gap: missing " + ", ".join(f"{i:04d}" for i in missing)
        )

    result: list[Migration] = []
    for index in expected:
        filename, entry = ups[index]
        sql = _read(entry, filename)
        if not sqltext.has_code(sql):
            raise InvalidMigrations(f"{filename}: empty migration (only comments or blanks)")
        down: Script | None = None
        if index in downs:
            dfilename, dentry = downs[index]
            dsql = _read(dentry, dfilename)
            if not sqltext.has_code(dsql):
                raise InvalidMigrations(
                    f"{dfilename}: empty down migration (only comments or blanks)"
                )
            down = Script(
                index=index,
                name=filename.removesuffix(".sql"),
                filename=dfilename,
                sql=dsql,
                checksum=checksum(dsql),
                header=Header.parse(dsql, dfilename),
            )
        result.append(
            Migration(
                index=index,
                name=filename.removesuffix(".sql"),
                filename=filename,
                sql=sql,
                checksum=checksum(sql),
                header=Header.parse(sql, filename),
                down=down,
            )
        )
    return result


def reference_schema_path(source: MigrationsSource = None) -> Path:
    if source is None:
        return Path(str(importlib.resources.files(DEFAULT_PACKAGE).joinpath(REFERENCE_SCHEMA)))
    return Path(str(source)) / REFERENCE_SCHEMA
