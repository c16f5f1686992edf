"""Fixtures of the upgrade-path tests (helpers: upgrade_support.py, the releases' data:
release_data.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from upgrade_support import migrate, ok, release_dir, schema


@pytest.fixture(scope="session")
def releases_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where `release_dir(releases_dir, N)` makes the migrations folder of each release (once per
    run)."""
    return tmp_path_factory.mktemp("releases")


@pytest.fixture
def new_db(pg_cluster: Any) -> Iterator[Callable[[], str]]:
    """`new_db()`: the URL of a new empty database (dropped after the test)."""
    made: list[str] = []

    def make() -> str:
        name = pg_cluster.create_database()
        made.append(name)
        return pg_cluster.url_for(name)

    yield make
    for name in made:
        pg_cluster.drop_database(name)


@pytest.fixture(scope="session")
def schema_at(pg_cluster: Any, releases_dir: Path) -> Callable[[int], str]:
    """`schema_at(N)`: the schema a fresh install of release N has (normalised dump), made once."""
    cache: dict[int, str] = {}

    def get(number: int) -> str:
        if number not in cache:
            name = pg_cluster.create_database()
            try:
                url = pg_cluster.url_for(name)
                ok(migrate(url, migrations_dir=release_dir(releases_dir, number)))
                cache[number] = schema(url)
            finally:
                pg_cluster.drop_database(name)
        return cache[number]

    return get
