"""Which database a command works on: `--db URL`, or the embedded PostgreSQL under `--data-dir`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import click

from parsec_server.embedded_pg import EmbeddedPostgres, EmbeddedPostgresError, default_data_dir
from parsec_server.exit_codes import Exit


@dataclass
class DbTarget:
    url: str
    embedded: EmbeddedPostgres | None

    @property
    def brand_new(self) -> bool:
        """An embedded database created just now (the only kind migrated implicitly)."""
        return self.embedded is not None and self.embedded.created_database


def fail(message: str, code: int) -> None:
    """One readable line on stderr and a distinct exit code; never a traceback."""
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)


@contextmanager
def database_target(db: str | None, data_dir: Path | None) -> Iterator[DbTarget]:
    if db:
        yield DbTarget(db, None)
        return
    pg = EmbeddedPostgres(data_dir or default_data_dir())
    try:
        pg.start()
    except EmbeddedPostgresError as exc:
        fail(f"embedded PostgreSQL: {exc}", Exit.EMBEDDED_POSTGRES)
    except PermissionError as exc:
        fail(f"embedded PostgreSQL: {exc}", Exit.EMBEDDED_POSTGRES)
    try:
        yield DbTarget(pg.url, pg)
    finally:
        pg.stop()
