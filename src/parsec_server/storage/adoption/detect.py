"""Is this database the official Parsec server's, and at which level?

The official server (parsec-cloud) records its schema history in a table named `migration`
(`_id` INTEGER, `name` VARCHAR, `applied` TIMESTAMPTZ): one row per applied file of its own
lineage, `0001_initial.sql` ... Ours is `schema_migration`. The two never coexist in a database
parsec-server created, so the presence of the official table (with its three columns) and the
absence of ours is what marks an official database. Everything here only reads.

Levels (the official file names are public facts of its releases, listed here to compare):
- 3.9.x: exactly the 24 files of 3.9 (`0001_initial` ... `0024_rename_minimum_archiving_period`):
  the level parsec-server adopts.
- an older 3.x: a proper prefix of those 24: upgrade with the official server to 3.9.x first.
- a newer 3.x (3.10 adds 0025, 0026): the 24 and more: not adoptable by this release.
- 2.x: its lineage has `0002_add_migration_table` (its 3.x successor restarted the numbering):
  upgrade with the official server to 3.x, then 3.9.x, first.
- anything else in a `migration` table: unknown, refused alike.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import asyncpg

from parsec_server.storage.adoption.official_schema import (
    CONVERTED_INTO,
    OFFICIAL_TABLES,
    UNSERVED_TABLES,
)

ADOPTABLE_RELEASE = "3.9"

OFFICIAL_MIGRATIONS_3_9: tuple[str, ...] = (
    "0001_initial.sql",
    "0002_user_human_always_present.sql",
    "0003_user_current_profile.sql",
    "0004_non_blocking_invitation.sql",
    "0005_remove_old_invite_transport.sql",
    "0006_tos.sql",
    "0007_shamir.sql",
    "0008_fix_sequester_service.sql",
    "0009_external_service_for_invitation.sql",
    "0010_always_kept_realm_key_bundle_access.sql",
    "0011_remove_realm_created_by_outsider.sql",
    "0012_allowed_client_agent_and_account_vault_strategy.sql",
    "0013_account.sql",
    "0014_block_realm_based_unique_index.sql",
    "0015_drop_email_unicode_support.sql",
    "0016_pki_enrollment_add_sign_algo.sql",
    "0017_rm_pki_enrollment_submit_der_cert_sha1.sql",
    "0018_remove_per_organization_config.sql",
    "0019_certificate_table.sql",
    "0020_async_enrollment.sql",
    "0021_totp.sql",
    "0022_realm_archiving_flags.sql",
    "0023_remove_legacy_pki.sql",
    "0024_rename_minimum_archiving_period.sql",
)

_V2_MARKER = "0002_add_migration_table.sql"


class OfficialLevel(enum.Enum):
    V3_9 = "3.9"  # adoptable
    OLDER_3 = "older-3.x"
    NEWER_3 = "newer-3.x"
    V2 = "2.x"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class OfficialDatabase:
    """An official server's database: its applied migrations (file names, in order) and level."""

    applied: tuple[str, ...]
    level: OfficialLevel

    @property
    def last(self) -> str:
        return self.applied[-1] if self.applied else "no migration"

    def upgrade_advice(self) -> str:
        """One sentence for a level parsec-server does not adopt: what to do first."""
        guide = (
            "with the official server's upgrade procedure (its image tag set to "
            f"v{ADOPTABLE_RELEASE}.3, `migrate --dry-run`, `migrate`)"
        )
        if self.level is OfficialLevel.OLDER_3:
            return (
                f"this is an official Parsec server database at {self.last} (an older 3.x "
                f"release): upgrade it to the official Parsec server {ADOPTABLE_RELEASE}.x first "
                f"{guide}, then run parsec-server migrate; nothing was changed"
            )
        if self.level is OfficialLevel.NEWER_3:
            extra = ", ".join(self.applied[len(OFFICIAL_MIGRATIONS_3_9) :])
            return (
                f"this is an official Parsec server database newer than {ADOPTABLE_RELEASE}.x (it "
                f"holds {extra}, e.g. 3.10): parsec-server adopts only an official "
                f"{ADOPTABLE_RELEASE}.x database; keep the official server, or restore a backup "
                f"taken at {ADOPTABLE_RELEASE}.x; nothing was changed"
            )
        if self.level is OfficialLevel.V2:
            return (
                f"this is an official Parsec server 2.x database (at {self.last}): upgrade it to "
                f"the official Parsec server 3.x, then to {ADOPTABLE_RELEASE}.x, first {guide}, then "
                "run parsec-server migrate; nothing was changed"
            )
        return (
            f"the database has an official-style `migration` table whose history ({self.last}) "
            f"is no official Parsec server {ADOPTABLE_RELEASE}.x one: bring it to the official "
            f"server {ADOPTABLE_RELEASE}.x first; nothing was changed"
        )


def classify(applied: tuple[str, ...]) -> OfficialLevel:
    ref = OFFICIAL_MIGRATIONS_3_9
    if len(applied) >= 2 and applied[1] == _V2_MARKER:
        return OfficialLevel.V2
    common = len(ref) if len(applied) >= len(ref) else len(applied)
    if applied[:common] != ref[:common] or not applied:
        return OfficialLevel.UNKNOWN
    if len(applied) == len(ref):
        return OfficialLevel.V3_9
    if len(applied) < len(ref):
        return OfficialLevel.OLDER_3
    return OfficialLevel.NEWER_3


def _file_name(number: int, name: str) -> str:
    """The official table keeps the part after `NNNN_` (without `.sql`); accept a full name too."""
    stem = name.removesuffix(".sql")
    prefix = f"{number:04d}_"
    if not stem.startswith(prefix):
        stem = prefix + stem
    return stem + ".sql"


_OFFICIAL_TABLE_COLUMNS = """
SELECT array_agg(column_name::text ORDER BY column_name)
FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = 'migration'
"""


async def detect(conn: asyncpg.Connection) -> OfficialDatabase | None:
    """The official database behind `conn`, or None (ours, empty, or anything else). Reads only."""
    if await conn.fetchval("SELECT to_regclass('schema_migration') IS NOT NULL"):
        return None
    if not await conn.fetchval("SELECT to_regclass('migration') IS NOT NULL"):
        return None
    columns = await conn.fetchval(_OFFICIAL_TABLE_COLUMNS)
    if columns is None or not {"_id", "name", "applied"} <= set(columns):
        return None
    rows = await conn.fetch("SELECT _id, name FROM migration ORDER BY _id")
    applied = tuple(_file_name(int(r["_id"]), str(r["name"])) for r in rows)
    return OfficialDatabase(applied=applied, level=classify(applied))


ROW_COUNT_CAP = 1_000_000  # counting stops there (a dry run stays quick on a big database)


@dataclass(frozen=True, slots=True)
class OfficialTable:
    name: str
    rows: int  # exact, or ROW_COUNT_CAP when there are at least that many
    collides: bool  # parsec-server's schema has a table of that name
    unserved: bool  # holds data of a feature parsec-server does not serve

    @property
    def rows_text(self) -> str:
        return f"{self.rows}+" if self.rows >= ROW_COUNT_CAP else str(self.rows)


def _unserved(name: str, ours: frozenset[str]) -> bool:
    """An official table whose data this release has nowhere to put (no target table of ours)."""
    if name in UNSERVED_TABLES:
        return True
    targets = CONVERTED_INTO.get(name, ())
    return OFFICIAL_TABLES.get(name) == "converted" and not any(t in ours for t in targets)


async def inventory(conn: asyncpg.Connection, ours: frozenset[str]) -> list[OfficialTable]:
    """The official database's tables with their row counts (capped), read-only."""
    names = await conn.fetch(
        "SELECT c.relname::text AS name FROM pg_class c"
        " WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')"
        " ORDER BY 1"
    )
    tables: list[OfficialTable] = []
    for r in names:
        name: str = r["name"]
        ident = '"' + name.replace('"', '""') + '"'
        rows = int(
            await conn.fetchval(
                f"SELECT count(*) FROM (SELECT 1 FROM {ident} LIMIT {ROW_COUNT_CAP}) AS t"
            )
        )
        tables.append(
            OfficialTable(
                name=name, rows=rows, collides=name in ours, unserved=_unserved(name, ours)
            )
        )
    return tables
