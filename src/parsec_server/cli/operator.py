"""What the operator commands share (`export_realm`, `human_accesses`, `list_deletable_realms`,
`delete_realm`, `organization ...`, `user ...`): their database and blockstore options, a back end
like the server's (same command functions as the administration API), confirmations, deleting
blocks from the object store, and errors to exit codes."""

from __future__ import annotations

import asyncio
import datetime
import json
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from parsec_server.cli.dbtarget import database_target, fail
from parsec_server.cli.options import data_dir_option, db_option, parse_blockstore
from parsec_server.config import BlockstoreConfig, ServerConfig
from parsec_server.exit_codes import Exit

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

# Object deletions in flight at once (the object store's requests are independent).
DELETE_PARALLELISM = 8


class OperatorError(Exception):
    """An expected failure: one line for the operator and its exit code."""

    def __init__(self, message: str, code: Exit) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def database_options(f: F) -> F:
    """--db, or the embedded PostgreSQL under --data-dir (stop the server that holds it first);
    and the official commands' connection, logging and debug options, accepted (and unused) so
    that an official server's script runs unchanged."""
    f = db_option()(data_dir_option()(f))
    for decl, kwargs in _OFFICIAL_COMPAT_OPTIONS:
        f = click.option(*decl, expose_value=False, **kwargs)(f)
    return f


_COMPAT = "Accepted for compatibility with the official server; unused."
_OFFICIAL_COMPAT_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--db-min-connections",), {"type": int, "metavar": "INTEGER", "help": _COMPAT}),
    (("--db-max-connections",), {"type": int, "metavar": "INTEGER", "help": _COMPAT}),
    (("--log-level", "-l"), {"metavar": "LEVEL", "help": _COMPAT}),
    (("--log-format", "-f"), {"metavar": "FORMAT", "help": _COMPAT}),
    (("--log-file", "-o"), {"metavar": "FILE", "help": _COMPAT}),
    (("--debug",), {"is_flag": True, "help": _COMPAT}),
]


def blockstore_option(f: F) -> F:
    return click.option(
        "--blockstore",
        "-b",
        envvar="PARSEC_BLOCKSTORE",
        multiple=True,
        show_envvar=True,
        help="The server's --blockstore, where the blocks' data are (default POSTGRESQL: in the "
        "database).",
    )(f)


def organization_option(f: F) -> F:
    return click.option("--organization", "organization", required=True, metavar="ORGANIZATIONID")(
        f
    )


def yes_option(f: F) -> F:
    return click.option(
        "--yes", "-y", is_flag=True, help="Do not ask for confirmation (scripts: required)."
    )(f)


def blockstore_config(values: tuple[str, ...]) -> BlockstoreConfig:
    try:
        return parse_blockstore(values)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--blockstore") from None


def parse_realm_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(hex=value.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a realm id (32 hexadecimal digits)", param_hint="--realm"
        ) from None


def run_operator(
    db: str | None, data_dir: Path | None, main: Callable[[str], Coroutine[Any, Any, T]]
) -> T:
    """Run `main(database_url)`; expected failures become one `error:` line and their exit code."""
    from parsec_server.blockstore.base import BlockstoreUnavailable
    from parsec_server.storage.db import DatabaseUnavailable

    with database_target(db, data_dir) as target:
        try:
            return asyncio.run(main(target.url))
        except OperatorError as exc:
            fail(exc.message, exc.code)
        except DatabaseUnavailable as exc:
            fail(str(exc), Exit.CANNOT_CONNECT)
        except BlockstoreUnavailable as exc:
            fail(f"the blockstore failed: {exc}", Exit.BLOCKSTORE_FAILED)
        except KeyboardInterrupt:
            fail("interrupted", 130)
    raise AssertionError("unreachable")  # fail() exits


@asynccontextmanager
async def backend(
    url: str,
    blockstore: BlockstoreConfig | None = None,
    server_addr: str = "parsec3://localhost?no_ssl=true",
) -> AsyncIterator[Any]:
    """A `commands.context.Backend` for one CLI run: 1-2 database connections, the blockstore, a
    handshake cache of its own. Events the command functions publish reach the running servers
    (NOTIFY at commit), so they drop what they cached."""
    from parsec_server.asgi.auth import AuthCache
    from parsec_server.blockstore import build_blockstore
    from parsec_server.commands.context import Backend
    from parsec_server.events.bus import EventBus
    from parsec_server.storage.db import Database

    bs_config = blockstore or BlockstoreConfig("POSTGRESQL")
    db = await Database.open(url, 1, 2)
    try:
        store = build_blockstore(bs_config, db)
        await store.start()
        try:
            config = ServerConfig(
                db_url=url, administration_token="", server_addr=server_addr, blockstore=bs_config
            )
            yield Backend(config, db, store, EventBus(db), AuthCache())
        finally:
            await store.stop()
    finally:
        await db.close()


def confirm(question: str, yes: bool) -> None:
    """Go on when --yes was given or the operator answers yes at the terminal; else REFUSED."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise OperatorError(
            "confirmation needed: pass --yes (or --dry-run to see what would be deleted)",
            Exit.REFUSED,
        )
    if not click.confirm(question, default=False, err=True):
        raise OperatorError("not confirmed: nothing was deleted", Exit.REFUSED)


def slug(organization_id: str, block_id: uuid.UUID) -> str:
    """A block as the official `delete_realm --dump-realm-blocks` lists it."""
    return f"{organization_id}/{block_id}"


def write_slugs(path: Path, organization_id: str, block_ids: Iterable[uuid.UUID]) -> int:
    n = 0
    with open(path, "w") as f:
        for block_id in block_ids:
            f.write(slug(organization_id, block_id) + "\n")
            n += 1
    return n


async def delete_blocks(
    store: Any, organization_id: str, block_ids: list[uuid.UUID]
) -> list[uuid.UUID]:
    """Delete the blocks' data from the blockstore; returns those whose deletion failed."""
    from parsec_server.blockstore.base import BlockstoreUnavailable

    failed: list[uuid.UUID] = []
    sem = asyncio.Semaphore(DELETE_PARALLELISM)

    async def one(block_id: uuid.UUID) -> None:
        async with sem:
            try:
                await store.delete(organization_id, block_id)
            except BlockstoreUnavailable:
                failed.append(block_id)

    await asyncio.gather(*(one(b) for b in block_ids))
    return failed


def leftover_error(
    what: str, organization_id: str, failed: list[uuid.UUID], path: Path | None
) -> OperatorError:
    """The object store failed for some blocks: list them in a file and say how to finish."""
    if path is None:
        path = Path(f"parsec-blocks-left-{organization_id}-{uuid.uuid4().hex[:8]}.txt")
    write_slugs(path, organization_id, failed)
    return OperatorError(
        f"{what}, but {len(failed)} block(s) could not be deleted from the blockstore (listed in "
        f"{path}): rerun the same command to finish",
        Exit.BLOCKSTORE_FAILED,
    )


def rfc3339(value: datetime.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


def echo_json(value: object) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


__all__ = [
    "OperatorError",
    "backend",
    "blockstore_config",
    "blockstore_option",
    "confirm",
    "database_options",
    "delete_blocks",
    "echo_json",
    "leftover_error",
    "organization_option",
    "parse_realm_id",
    "rfc3339",
    "run_operator",
    "slug",
    "write_slugs",
    "yes_option",
]
