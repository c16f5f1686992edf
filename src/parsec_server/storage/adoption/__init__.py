"""Adoption of a database created by the official Parsec server (parsec-cloud 3.x), and its
hand-back: see docs/switching-from-official.md.

`detect` reads the official server's `migration` table (read-only) and tells which official level
the database is at; `convert.adopt` converts an official 3.9 database into our schema in one
transaction (`parsec-server migrate`); `official_schema` holds what both directions know of the
official schema.
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
