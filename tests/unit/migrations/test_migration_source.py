from pathlib import Path

import pytest

from parsec_server.storage.migrations import source
from parsec_server.storage.migrations.errors import InvalidMigrations

UP = "-- compat: expand\nCREATE TABLE t (id int);\n"
DOWN = "-- data-loss: yes\nDROP TABLE t;\n"


def write(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    return tmp_path


def test_project_migrations_are_consistent_and_all_have_down_files() -> None:
    migrations = source.discover()
    assert [m.index for m in migrations] == list(range(1, len(migrations) + 1))
    assert len(migrations) >= 2
    for m in migrations:
        assert m.down is not None, m.filename
        assert "compat" in m.header.values and "data-loss" in m.down.header.values
    assert migrations[0].filename == "0001_initial.sql"
    assert not migrations[1].transactional  # 0002 builds its indexes CONCURRENTLY


def test_discovery_orders_and_reads_headers(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "0002_second.sql": (
                "-- Why: free text: ignored\n-- compat: breaking\n"
                "-- transaction: off\n"
                "-- lock_timeout: 500ms\n-- lock_retries: 3\nSELECT 1;\n"
            ),
            "0001_first.sql": UP,
            "0001_first.down.sql": DOWN,
            "schema.sql": "ignored",
            "README.txt": "ignored",
        },
    )
    first, second = source.discover(tmp_path)
    assert (first.name, first.compat, first.transactional) == ("0001_first", "expand", True)
    assert (
        first.down is not None
        and first.down_data_loss is True
        and first.down.filename == "0001_first.down.sql"
    )
    assert (second.compat, second.transactional, second.lock_timeout, second.lock_retries) == (
        "breaking",
        False,
        0.5,
        3,
    )
    assert second.down is None and second.down_data_loss is True  # no down: treated as lossy


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"0001_a.sql": UP, "0003_c.sql": UP}, "gap: missing 0002"),
        ({"0001_a.sql": UP, "0001_b.sql": UP}, "duplicate migration number 0001"),
        ({"0001_a.sql": "-- only a comment\n\n/* and this */\n"}, "empty migration"),
        ({"0000_zero.sql": UP}, "start at 0001"),
        ({"0001-bad-name.sql": UP}, "not a migration file name"),
        ({"0001_a.sql": UP, "0001_b.down.sql": DOWN}, "no matching up migration"),
        ({"0001_a.sql": "-- compat: maybe\nSELECT 1;"}, "`compat: maybe` is invalid"),
        (
            {"0001_a.sql": "-- transaction: sometimes\nSELECT 1;"},
            "`transaction: sometimes` is invalid",
        ),
        ({"0001_a.sql": "-- lock_timeout: soon\nSELECT 1;"}, "`lock_timeout: soon` is invalid"),
        (
            {"0001_a.sql": UP, "0001_a.down.sql": "-- data-loss: perhaps\nSELECT 1;"},
            "`data-loss: perhaps`",
        ),
        ({"0001_a.sql": UP, "0001_a.down.sql": "-- data-loss: no\n"}, "empty down migration"),
        ({"0001_a.sql": "-- compat: expand\n-- compat: breaking\nSELECT 1;"}, "declared twice"),
    ],
)
def test_discovery_rejects_inconsistent_sets(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    write(tmp_path, files)
    with pytest.raises(InvalidMigrations, match=message.replace("(", r"\(").replace("`", "`")):
        source.discover(tmp_path)


def test_non_utf8_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_bytes(b"SELECT '\xff';")
    with pytest.raises(InvalidMigrations, match="not valid UTF-8"):
        source.discover(tmp_path)


def test_checksum_ignores_line_endings_trailing_blanks_and_bom_only() -> None:
    base = "-- compat: expand\nCREATE TABLE t (id int);\n"
    same = [
        "\ufeff" + base,
        base.replace("\n", "\r\n"),
        base.replace("\n", "\r"),
        base.replace("\n", "  \n") + "\n\n",
    ]
    for variant in same:
        assert source.checksum(variant) == source.checksum(base)
        assert source.checksum(variant.encode()) == source.checksum(base)
    assert source.checksum(base.replace("id int", "id  int")) != source.checksum(base)
    assert source.checksum(base + "-- note\n") != source.checksum(base)


def test_durations() -> None:
    assert source.parse_duration("2s") == 2.0
    assert source.parse_duration("500ms") == 0.5
    assert source.parse_duration("1min") == 60.0
    assert source.parse_duration("250") == 0.25  # bare number: milliseconds, like PostgreSQL
    with pytest.raises(ValueError):
        source.parse_duration("2 parsecs")
    assert source.pg_duration(1.5) == "1500ms"
