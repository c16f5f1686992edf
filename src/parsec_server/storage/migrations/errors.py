"""Errors of the migration engine. Each carries the CLI exit code and a one-line message for the
operator.

MigrationError (exit_code, message)
├── InvalidMigrations     the shipped files are inconsistent (gap, duplicate, empty, bad header)
├── CannotConnect         the database could not be reached
├── MigrationLockTimeout  another migrate held the migration lock past --lock-wait
├── MigrationFailed       a migration failed; it was rolled back (earlier ones stay applied)
├── ChecksumDrift         an applied migration's file changed since it was applied
├── DatabaseAhead         the database holds migrations this release does not know (not compatible)
├── SchemaNotReady        migrations are pending (server start-up check)
├── BackupFailed          the backup taken before migrating failed: nothing was applied
└── DataLossRefused       a down step would discard data and --allow-data-loss was not given
"""

from __future__ import annotations

from parsec_server.exit_codes import Exit


class MigrationError(Exception):
    exit_code: Exit = Exit.MIGRATION_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidMigrations(MigrationError):
    exit_code = Exit.MIGRATION_FAILED


class CannotConnect(MigrationError):
    exit_code = Exit.CANNOT_CONNECT


class MigrationLockTimeout(MigrationError):
    exit_code = Exit.LOCKED


class MigrationFailed(MigrationError):
    exit_code = Exit.MIGRATION_FAILED

    def __init__(
        self, message: str, *, migration: str | None = None, sqlstate: str | None = None
    ) -> None:
        super().__init__(message)
        self.migration = migration
        self.sqlstate = sqlstate


class ChecksumDrift(MigrationError):
    exit_code = Exit.CHECKSUM_DRIFT

    def __init__(self, message: str, *, names: list[str]) -> None:
        super().__init__(message)
        self.names = names


class DatabaseAhead(MigrationError):
    exit_code = Exit.DB_AHEAD

    def __init__(self, message: str, *, names: list[str]) -> None:
        super().__init__(message)
        self.names = names


class SchemaNotReady(MigrationError):
    exit_code = Exit.SCHEMA_NOT_READY

    def __init__(self, message: str, *, pending: list[str]) -> None:
        super().__init__(message)
        self.pending = pending


class BackupFailed(MigrationError):
    exit_code = Exit.BACKUP_FAILED


class DataLossRefused(MigrationError):
    exit_code = Exit.DATA_LOSS_REFUSED

    def __init__(self, message: str, *, names: list[str]) -> None:
        super().__init__(message)
        self.names = names
