"""Errors of the migration engine. Each carries a one-line message for the operator and its `kind`;
the CLI maps the kind to its exit code (`parsec_server.cli.migrate.common.exit_code_for`): storage does not
know about processes and exit codes.

MigrationError (kind, message)
├── InvalidMigrations     the shipped files are inconsistent (gap, duplicate, empty, bad header)
├── BadTarget             `--to` names no migration (a usage error)
├── CannotConnect         the database could not be reached
├── MigrationLockTimeout  another migrate held the migration lock past --lock-wait
├── MigrationFailed       a migration failed; it was rolled back (earlier ones stay applied)
│   └── SchemaConflict    an object the migration would create exists with another definition
├── ChecksumDrift         an applied migration's file changed since it was applied
├── DatabaseAhead         the database holds migrations this release does not know (not compatible)
├── SchemaNotReady        migrations are pending (server start-up check)
├── BackupFailed          the backup taken before migrating failed: nothing was applied
└── DataLossRefused       a down step would discard data and --allow-data-loss was not given
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class Failure(StrEnum):
    INVALID_MIGRATIONS = "invalid_migrations"
    BAD_TARGET = "bad_target"
    CANNOT_CONNECT = "cannot_connect"
    LOCKED = "locked"
    MIGRATION_FAILED = "migration_failed"
    SCHEMA_CONFLICT = "schema_conflict"
    CHECKSUM_DRIFT = "checksum_drift"
    DB_AHEAD = "db_ahead"
    SCHEMA_NOT_READY = "schema_not_ready"
    BACKUP_FAILED = "backup_failed"
    DATA_LOSS_REFUSED = "data_loss_refused"


class MigrationError(Exception):
    kind: ClassVar[Failure] = Failure.MIGRATION_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidMigrations(MigrationError):
    kind = Failure.INVALID_MIGRATIONS


class BadTarget(MigrationError):
    kind = Failure.BAD_TARGET


class CannotConnect(MigrationError):
    kind = Failure.CANNOT_CONNECT


class MigrationLockTimeout(MigrationError):
    kind = Failure.LOCKED


class MigrationFailed(MigrationError):
    kind = Failure.MIGRATION_FAILED

    def __init__(
        self, message: str, *, migration: str | None = None, sqlstate: str | None = None
    ) -> None:
        super().__init__(message)
        self.migration = migration
        self.sqlstate = sqlstate


class SchemaConflict(MigrationFailed):
    kind = Failure.SCHEMA_CONFLICT

    def __init__(self, message: str, *, migration: str, obj: str) -> None:
        super().__init__(message, migration=migration)
        self.obj = obj


class ChecksumDrift(MigrationError):
    kind = Failure.CHECKSUM_DRIFT

    def __init__(self, message: str, *, names: list[str]) -> None:
        super().__init__(message)
        self.names = names


class DatabaseAhead(MigrationError):
    kind = Failure.DB_AHEAD

    def __init__(self, message: str, *, names: list[str]) -> None:
        super().__init__(message)
        self.names = names


class SchemaNotReady(MigrationError):
    kind = Failure.SCHEMA_NOT_READY

    def __init__(self, message: str, *, pending: list[str]) -> None:
        super().__init__(message)
        self.pending = pending


class BackupFailed(MigrationError):
    kind = Failure.BACKUP_FAILED


class DataLossRefused(MigrationError):
    kind = Failure.DATA_LOSS_REFUSED

    def __init__(self, message: str, *, names: list[str]) -> None:
        super().__init__(message)
        self.names = names
