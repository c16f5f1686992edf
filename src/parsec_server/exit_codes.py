"""Exit codes of every `parsec-server` command (documented in docs/cli.md).

0 success; 2 bad usage or configuration (click's own code). Each expected failure has its own code so that
scripts and orchestrators can tell them apart without parsing text.
"""

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    MIGRATION_FAILED = 1  # a migration failed and was rolled back; earlier ones stay applied
    USAGE = 2  # bad option value, missing required option (click)
    LOCKED = 3  # another migrate held the migration lock past --lock-wait
    CHECKSUM_DRIFT = 4  # an applied migration file was edited since it was applied
    DB_AHEAD = 5  # the database holds migrations this release does not know (and is not compatible)
    CANNOT_CONNECT = 6  # the database could not be reached
    SCHEMA_NOT_READY = 7  # `run` on a database with pending migrations
    BACKUP_FAILED = 8  # the backup (alone, or before migrating) failed: nothing was changed
    RESTORE_FAILED = 9  # restore refused or failed
    DATA_LOSS_REFUSED = 10  # a down step would discard data and --allow-data-loss was not given
    EMBEDDED_POSTGRES = 11  # the embedded PostgreSQL could not be created or started
    SERVER_ERROR = 12  # the server failed at start (e.g. port in use)
    SCHEMA_CONFLICT = 13  # an object a migration would create exists with another definition
    NOT_FOUND = 14  # operator commands: the organization, realm or user named does not exist
    REFUSED = 15  # operator commands: not allowed in this state, or the confirmation was declined
    BLOCKSTORE_FAILED = 16  # operator commands: the object store failed (what is left is listed)
    OFFICIAL_LEVEL = 17  # migrate: an official Parsec server database at a level we do not adopt
    ADOPTION_FAILED = 18  # migrate: converting an official 3.9 database failed (rolled back)
