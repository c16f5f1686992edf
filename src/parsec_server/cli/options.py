"""Options shared by several commands, with the official server's names and PARSEC_* variables."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from parsec_server.config import BlockstoreConfig

F = TypeVar("F", bound=Callable[..., Any])


class DbUrl(click.ParamType[str]):
    name = "URL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        v = str(value)
        if not re.match(r"^postgres(ql)?://", v):
            self.fail(
                f"{v!r} is not a PostgreSQL URL (expected postgresql://user:password@host:port/database)",
                param,
                ctx,
            )
        return v


def parse_blockstore(values: tuple[str, ...]) -> BlockstoreConfig:
    """`POSTGRESQL`, `s3:[<endpoint>]:<region>:<bucket>:<key>:<secret>`, or `RAIDn:<node>:<config>` repeated.

    Raises ValueError (a message for the operator) for a value that cannot work."""
    from parsec_server.blockstore import check_blockstore_config

    config = _parse_blockstore(values)
    check_blockstore_config(config)
    return config


def _parse_blockstore(values: tuple[str, ...]) -> BlockstoreConfig:
    if not values:
        return BlockstoreConfig("POSTGRESQL")
    if len(values) == 1 and not values[0].upper().startswith("RAID"):
        return _parse_single_blockstore(values[0])
    mode = None
    nodes: dict[int, BlockstoreConfig] = {}
    for v in values:
        m = re.match(r"^(RAID[015]):(\d+):(.+)$", v, re.IGNORECASE)
        if not m:
            raise ValueError(
                f"{v!r}: with several blockstores each must be RAID0|RAID1|RAID5:<node>:<config>"
            )
        if mode is not None and m.group(1).upper() != mode:
            raise ValueError("all blockstores must use the same RAID mode")
        mode = m.group(1).upper()
        idx = int(m.group(2))
        if idx in nodes:
            raise ValueError(f"RAID node {idx} given twice")
        nodes[idx] = _parse_single_blockstore(m.group(3))
    assert mode is not None
    if sorted(nodes) != list(range(len(nodes))):
        raise ValueError("RAID node indexes must be contiguous from 0")
    if mode == "RAID5" and len(nodes) < 3:
        raise ValueError("RAID5 needs at least 3 nodes")
    return BlockstoreConfig(mode, nodes=tuple(nodes[i] for i in range(len(nodes))))


def _split_escaped(value: str) -> list[str]:
    parts, cur, i = [], "", 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            cur += value[i + 1]
            i += 2
            continue
        if c == ":":
            parts.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    parts.append(cur)
    return parts


def _parse_single_blockstore(value: str) -> BlockstoreConfig:
    if value.upper() == "POSTGRESQL":
        return BlockstoreConfig("POSTGRESQL")
    if value.lower().startswith("s3:"):
        parts = _split_escaped(value[3:])
        if len(parts) == 4:
            endpoint = None
            region, bucket, key, secret = parts
        elif len(parts) == 5:
            endpoint, region, bucket, key, secret = parts
            if endpoint and "://" not in endpoint:
                endpoint = f"https://{endpoint}"
            endpoint = endpoint or None
        else:
            raise ValueError(
                "S3 blockstore must be s3:[<endpoint_url>]:<region>:<bucket>:<key>:<secret> "
                "(escape ':' in the endpoint as '\\:')"
            )
        if not bucket:
            raise ValueError("S3 blockstore needs a bucket name")
        return BlockstoreConfig(
            "S3",
            s3_endpoint=endpoint,
            s3_region=region,
            s3_bucket=bucket,
            s3_key=key,
            s3_secret=secret,
        )
    if value.upper() == "MOCKED":
        raise ValueError("MOCKED is not supported: use POSTGRESQL (the default) or S3")
    raise ValueError(
        f"unknown blockstore {value.split(':', 1)[0]!r} (expected POSTGRESQL or s3:...)"
    )


def db_option(required: bool = False, *, embedded: bool = True) -> Callable[[F], F]:
    """`--db URL` (checked: postgres:// or postgresql://). `embedded`: the command falls back on the
    embedded PostgreSQL under --data-dir when it is not given (else the command requires it itself,
    e.g. after looking at its parent group's options)."""
    return click.option(
        "--db",
        envvar="PARSEC_DB",
        type=DbUrl(),
        required=required,
        show_envvar=True,
        help="PostgreSQL URL (postgresql://user:password@host:port/database)."
        + (
            " Without it, the embedded PostgreSQL under --data-dir is used."
            if embedded and not required
            else ""
        ),
    )


def data_dir_option() -> Callable[[F], F]:
    return click.option(
        "--data-dir",
        envvar="PARSEC_DATA_DIR",
        type=click.Path(file_okay=False, path_type=Path),
        show_envvar=True,
        help="Where the embedded PostgreSQL keeps its data when --db is not given "
        "[default: /var/lib/parsec-server as root, else ~/.local/share/parsec-server].",
    )


def log_options(f: F) -> F:
    f = click.option(
        "--log-format",
        "-f",
        envvar="PARSEC_LOG_FORMAT",
        show_envvar=True,
        show_default=True,
        type=click.Choice(["console", "json"], case_sensitive=False),
        default="console",
        help="Log lines as readable text or as JSON objects (one per line, on stderr).",
    )(f)
    f = click.option(
        "--log-level",
        "-l",
        envvar="PARSEC_LOG_LEVEL",
        show_envvar=True,
        show_default=True,
        type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
        default="info",
        help="Minimum level of the log lines.",
    )(f)
    return f
