"""Schema releases: the schema versions that shipped, so that databases in the wild may be at them.

A schema release is named after its newest migration. Every database a parsec-server installation
ever created is at one of these versions (or between two of them, after an interrupted `migrate`),
so each must upgrade to the latest schema, and the latest must go back to the release before it,
without losing data. The upgrade-path tests (tests/integration/upgrade/) prove it for every entry: a
database taken through the history up to that release, filled at each release with the data that
release wrote (tests/integration/upgrade/fixtures/release_NNNN.sql), is migrated to the latest
schema, compared with the reference schema.sql and with its data, served, and moved back to the
previous release.

Each entry also records the checksum of the migrations it added (engine's `source.checksum`): once
released, a migration file must never change, since every database that applied it would report
checksum drift. The tests compare the shipped files with these checksums.

Tagging a release whose newest migration is not the last entry:
1. append its entry (`python -m parsec_server.storage.migrations.releases` prints the entry to add);
2. write its data fixture with that release's code:
   `.venv/bin/python tests/integration/upgrade/make_fixture.py NNNN` (see the README there);
3. run `.venv/bin/python -m pytest tests/integration/upgrade tests/integration/backup`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SchemaRelease:
    number: int  # newest migration of the release
    name: str  # its name, as stored in schema_migration (`0002_usage_size_indexes`)
    added: tuple[tuple[str, str], ...]  # (file name, checksum) of the migrations this release added

    @property
    def tag(self) -> str:
        return f"schema-{self.number:04d}"


RELEASES: tuple[SchemaRelease, ...] = (
    SchemaRelease(
        number=1,
        name="0001_initial",
        added=(
            (
                "0001_initial.sql",
                "5c09bddcbe964e10c84d66b9a8fe48d04975908181f486e077e5b4080d3b062c",
            ),
        ),
    ),
    SchemaRelease(
        number=2,
        name="0002_usage_size_indexes",
        added=(
            (
                "0002_usage_size_indexes.sql",
                "f382ea032929c4e232f54ddf5d4ed6688d2eab1662c3bb18c6df3e32b74c77b7",
            ),
        ),
    ),
    SchemaRelease(
        number=3,
        name="0003_block_organization",
        added=(
            (
                "0003_block_organization.sql",
                "59f53c498f8706aa2b786f2545bb414f235e3c5bf048555d5f002f6c18d4bda7",
            ),
        ),
    ),
)


def release(number: int) -> SchemaRelease:
    for r in RELEASES:
        if r.number == number:
            return r
    raise KeyError(f"no schema release {number:04d}")


def previous(number: int) -> SchemaRelease | None:
    """The release before schema `number` (None for the first one)."""
    earlier = [r for r in RELEASES if r.number < number]
    return earlier[-1] if earlier else None


def _next_entry() -> str:
    from parsec_server.storage.migrations.source import discover

    last = RELEASES[-1].number if RELEASES else 0
    new = [m for m in discover() if m.index > last]
    if not new:
        return f"# every shipped migration is released (last: {RELEASES[-1].name})"
    added = ",\n".join(f'            ("{m.filename}", "{m.checksum}")' for m in new)
    return (
        f'    SchemaRelease(\n        number={new[-1].index},\n        name="{new[-1].name}",\n'
        f"        added=(\n{added},\n        ),\n    ),"
    )


if __name__ == "__main__":  # prints the entry to append when tagging a release
    print(_next_entry())
