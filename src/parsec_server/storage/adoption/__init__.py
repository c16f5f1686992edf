"""Adoption of a database created by the official Parsec server (parsec-cloud 3.x), and its
hand-back: see docs/switching-from-official.md.

Stage reached in this release: detection only. `detect` reads the official server's `migration`
table (read-only) and tells which official level the database is at; `parsec-server migrate`
prints the two lineages in the official guide's format and refuses to touch an official database
(the conversion itself is not in this release).
"""

from __future__ import annotations

from parsec_server.storage.adoption.detect import (
    ADOPTABLE_RELEASE,
    OFFICIAL_MIGRATIONS_3_9,
    OfficialDatabase,
    OfficialLevel,
    OfficialTable,
    detect,
    inventory,
)
from parsec_server.storage.adoption.official_schema import OFFICIAL_SCHEMA, UNSERVED_TABLES

__all__ = [
    "ADOPTABLE_RELEASE",
    "OFFICIAL_MIGRATIONS_3_9",
    "OFFICIAL_SCHEMA",
    "UNSERVED_TABLES",
    "OfficialDatabase",
    "OfficialLevel",
    "OfficialTable",
    "detect",
    "inventory",
]
