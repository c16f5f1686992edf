"""The releases manifest (parsec_server/storage/migrations/releases.py) against the shipped
migrations and the data fixtures: a released migration never changes, every release can be rolled
back to, and every release has its representative data."""

from __future__ import annotations

import itertools
import re

import pytest
from upgrade_support import fixture_path

from parsec_server.storage.migrations import engine
from parsec_server.storage.migrations.releases import RELEASES, SchemaRelease, previous, release

MIGRATIONS = {m.filename: m for m in engine.discover()}


def test_releases_are_ordered_and_named_after_their_newest_migration() -> None:
    numbers = [r.number for r in RELEASES]
    assert numbers == sorted(set(numbers)) and numbers[0] >= 1
    covered: list[str] = []
    for r in RELEASES:
        newest = f"{r.number:04d}_"
        assert r.name.startswith(newest) and f"{r.name}.sql" in MIGRATIONS, r
        assert r.added[-1][0] == f"{r.name}.sql", r
        covered += [name for name, _ in r.added]
    # each migration up to the last release was added by exactly one release, in order
    assert covered == [m.filename for m in engine.discover() if m.index <= RELEASES[-1].number]
    assert release(RELEASES[0].number) is RELEASES[0] and previous(RELEASES[0].number) is None
    for before, after in itertools.pairwise(RELEASES):
        assert previous(after.number) is before


@pytest.mark.parametrize("rel", RELEASES, ids=lambda r: r.name)
def test_released_migrations_are_unchanged(rel: SchemaRelease) -> None:
    """Every database that applied a released migration stores its checksum: editing the file would
    make each of them report drift. A change to a released schema is a new migration."""
    for name, checksum in rel.added:
        assert MIGRATIONS[name].checksum == checksum, (
            f"{name} changed after it was released in {rel.tag}: revert the edit and write a "
            "new migration"
        )


@pytest.mark.parametrize("rel", RELEASES, ids=lambda r: r.name)
def test_released_migrations_can_be_rolled_back(rel: SchemaRelease) -> None:
    for name, _ in rel.added:
        m = MIGRATIONS[name]
        assert m.header.values.get("compat") in ("expand", "breaking"), (
            f"{name}: compat not declared"
        )
        assert m.down is not None, f"{name} has no down file"
        assert m.down.header.values.get("data-loss") in ("yes", "no"), (
            f"{m.down.filename}: data-loss not declared"
        )


@pytest.mark.parametrize("rel", RELEASES, ids=lambda r: r.name)
def test_each_release_has_its_data_fixture(rel: SchemaRelease) -> None:
    path = fixture_path(rel.number)
    assert path.is_file(), f"{path.name} missing: run make_fixture.py {rel.number} (README.md)"
    text = path.read_text()
    assert f"schema release {rel.name}" in text.splitlines()[0]
    # data only: the schema comes from the migrations of that release
    statements = [s for s in re.findall(r"^[A-Z][A-Z ]+", text, re.MULTILINE)]
    assert not [s for s in statements if s.startswith(("CREATE", "DROP", "TRUNCATE"))]
    ddl = {s.strip() for s in re.findall(r"^ALTER TABLE [^;]*;", text, re.MULTILINE)}
    assert all(s.endswith(("DISABLE TRIGGER ALL;", "ENABLE TRIGGER ALL;")) for s in ddl), ddl
    # most tables of the data model at that release get rows
    assert len(set(re.findall(r"^INSERT INTO public\.(\w+) ", text, re.MULTILINE))) >= 20
