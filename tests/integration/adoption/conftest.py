"""Fixtures of the adoption tests: databases made by the official 3.9.3 `parsec migrate`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from adoption_support import official_migrate


@pytest.fixture(scope="module")
def official_template(pg_cluster: Any) -> Iterator[str]:
    """A database migrated by the official server 3.9.3 (`parsec migrate`), made once per module
    (skipped without .venv-compat)."""
    name = pg_cluster.create_database()
    official_migrate(pg_cluster.url_for(name))
    yield name
    pg_cluster.drop_database(name)


@pytest.fixture
def official_url(pg_cluster: Any, official_template: str) -> Iterator[str]:
    """A copy of `official_template` for one test."""
    name = pg_cluster.create_database(template=official_template)
    yield pg_cluster.url_for(name)
    pg_cluster.drop_database(name)
