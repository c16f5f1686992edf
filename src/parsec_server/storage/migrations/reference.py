"""The reference schema (schema.sql): pg_dump --schema-only of a fresh install, normalised."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from parsec_server.embedded_pg import bound_to_parent
from parsec_server.storage.migrations.connection import redact_url
from parsec_server.storage.migrations.errors import CannotConnect, MigrationError
from parsec_server.storage.migrations.source import MigrationsSource, reference_schema_path


def _pg_dump_binary() -> str:
    env = os.environ.get("PARSEC_PG_DUMP")
    if env:
        return env
    try:
        from parsec_server.embedded_pg import find_bindir

        candidate = find_bindir() / "pg_dump"
        if candidate.is_file():
            return str(candidate)
    except Exception:
        pass
    found = shutil.which("pg_dump")
    if found:
        return found
    raise MigrationError("pg_dump not found (install the PostgreSQL client or set PARSEC_PG_DUMP)")


SCHEMA_HEADER = (
    "-- Reference schema of a fresh install: pg_dump --schema-only after every migration, "
    "normalised.\n"
    "-- Generated, do not edit. Regenerate with\n"
    "--   parsec-server migrate dump-schema --apply --db <empty database> --output <this file>\n"
    "-- or\n"
    "--   PARSEC_UPDATE_SCHEMA=1 pytest \\\n"
    "--     tests/integration/migrations/test_migrate_reference_schema.py -k fresh_install\n"
    "\n"
)


def normalise_dump(dump: str) -> str:
    """pg_dump output without its comments, session settings and version-specific noise."""
    out: list[str] = []
    for line in dump.splitlines():
        s = line.rstrip()
        if s.startswith(
            ("--", "SET ", "SELECT pg_catalog.set_config(", "\\restrict", "\\unrestrict")
        ):
            continue
        if not s and (not out or not out[-1]):
            continue
        out.append(s)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n"


async def dump_schema(url: str) -> str:
    """`pg_dump --schema-only` of the database, normalised (the format of schema.sql)."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise CannotConnect(f"invalid database URL {redact_url(url)!r}")
    proc = await asyncio.create_subprocess_exec(
        _pg_dump_binary(),
        "--schema-only",
        "--no-owner",
        "--no-privileges",
        "--no-tablespaces",
        # an adopted database keeps the official server's tables there, unused (docs/dev/adoption.md)
        "--exclude-schema=parsec_official",
        f"--dbname={url}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("PG")}
        | {"PGCONNECT_TIMEOUT": "10"},
        preexec_fn=bound_to_parent(),
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise CannotConnect(
            f"pg_dump failed on {redact_url(url)}: {' '.join(err.decode(errors='replace').split())}"
        )
    return normalise_dump(out.decode())


def reference_schema(source: MigrationsSource = None) -> str:
    return Path(reference_schema_path(source)).read_text()
