"""Planning decisions (pure: no database): drift, unknown migrations, --to, data loss."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from parsec_server.storage.migrations import engine, source
from parsec_server.storage.migrations.errors import (
    BadTarget,
    ChecksumDrift,
    DatabaseAhead,
    DataLossRefused,
    MigrationFailed,
)
from parsec_server.storage.migrations.history import Applied

FILES = {
    "0001_a.sql": "-- compat: breaking\nCREATE TABLE a (id int);\n",
    "0001_a.down.sql": "-- data-loss: yes\nDROP TABLE a;\n",
    "0002_b.sql": "-- compat: expand\nALTER TABLE a ADD COLUMN b int;\n",
    "0002_b.down.sql": "-- data-loss: yes\nALTER TABLE a DROP COLUMN b;\n",
    "0003_c.sql": (
        "-- compat: expand\n-- transaction: off\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS a_b ON a (b);\n"
    ),
    "0003_c.down.sql": (
        "-- data-loss: no\n-- transaction: off\nDROP INDEX CONCURRENTLY IF EXISTS a_b;\n"
    ),
}


@pytest.fixture
def migrations(tmp_path: Path) -> list[source.Migration]:
    for name, content in FILES.items():
        (tmp_path / name).write_text(content)
    return source.discover(tmp_path)


def row(
    m: source.Migration | None = None,
    *,
    number: int = 0,
    name: str = "",
    checksum: str | None = None,
    compat: str | None = None,
    down_sql: str | None = None,
    down_data_loss: bool = True,
) -> Applied:
    return Applied(
        number=m.index if m else number,
        name=m.name if m else name,
        checksum=checksum or (m.checksum if m else "x"),
        checksum_version=1,
        compat=compat or (m.compat if m else "breaking"),
        transactional=True,
        applied_on=datetime.now(UTC),
        duration_ms=1,
        attempts=1,
        server_version="0",
        applied_by="t",
        down_sql=down_sql if down_sql is not None else (m.down.sql if m and m.down else None),
        down_data_loss=down_data_loss,
        repairs=[],
    )


def test_fresh_database_plans_every_migration(migrations: list[source.Migration]) -> None:
    plan = engine.make_plan(migrations, [], None)
    assert [s.filename for s in plan.steps] == ["0001_a.sql", "0002_b.sql", "0003_c.sql"]
    assert plan.check(allow_data_loss=False) == []


def test_target_up_and_down(migrations: list[source.Migration]) -> None:
    assert [s.number for s in engine.make_plan(migrations, [], 2).steps] == [1, 2]
    rows = [row(m) for m in migrations]
    plan = engine.make_plan(migrations, rows, 1)
    assert plan.direction == "down"
    assert [(s.filename, s.data_loss) for s in plan.steps] == [
        ("0003_c.down.sql", False),
        ("0002_b.down.sql", True),
    ]
    with pytest.raises(DataLossRefused, match=r"0002_b\.down\.sql"):
        plan.check(allow_data_loss=False)
    assert plan.check(allow_data_loss=True) == []
    assert (
        engine.make_plan(migrations, rows, 2).check(allow_data_loss=False) == []
    )  # only 0003: lossless
    with pytest.raises(BadTarget, match="no such migration"):  # a usage error: exit code 2
        engine.make_plan(migrations, rows, 9)


def test_drift_and_conflicting_names_are_refused(migrations: list[source.Migration]) -> None:
    plan = engine.make_plan(migrations, [row(migrations[0], checksum="0" * 64)], None)
    with pytest.raises(ChecksumDrift, match=r"0001_a\.sql") as info:
        plan.check(allow_data_loss=False)
    assert info.value.names == ["0001_a.sql"]
    plan = engine.make_plan(migrations, [row(number=1, name="0001_other")], None)
    with pytest.raises(
        ChecksumDrift, match=r"applied 0001_other where this release ships 0001_a\.sql"
    ):
        plan.check(allow_data_loss=False)


def test_unknown_migrations_compat_window(migrations: list[source.Migration]) -> None:
    known = [row(m) for m in migrations]
    expand = row(number=4, name="0004_future", compat="expand")
    breaking = row(number=5, name="0005_contract", compat="breaking")
    warnings = engine.make_plan(migrations, [*known, expand], None).check(allow_data_loss=False)
    assert len(warnings) == 1 and "0004_future" in warnings[0]
    with pytest.raises(DatabaseAhead, match="0005_contract") as info:
        engine.make_plan(migrations, [*known, expand, breaking], None).check(allow_data_loss=False)
    assert info.value.names == ["0005_contract.sql"]


def test_unknown_migrations_are_reverted_with_their_stored_down_script(
    migrations: list[source.Migration],
) -> None:
    known = [row(m) for m in migrations]
    future = row(
        number=4,
        name="0004_future",
        compat="expand",
        down_sql="-- data-loss: no\nSELECT 1;",
        down_data_loss=False,
    )
    plan = engine.make_plan(migrations, [*known, future], 3)
    (step,) = plan.steps
    assert (
        step.migration is None and step.script is not None and step.script.sql.endswith("SELECT 1;")
    )
    assert plan.check(allow_data_loss=False) == []
    lost = row(number=4, name="0004_future", down_sql="")
    with pytest.raises(MigrationFailed, match="no down migration"):
        engine.make_plan(migrations, [*known, lost], 3).check(allow_data_loss=True)


def test_out_of_order_pending_migration_is_refused(migrations: list[source.Migration]) -> None:
    plan = engine.make_plan(migrations, [row(migrations[0]), row(migrations[2])], None)
    with pytest.raises(MigrationFailed, match="out-of-order"):
        plan.check(allow_data_loss=False)


def test_redact_url() -> None:
    assert (
        engine.redact_url("postgresql://bob:s3cr3t@db:5432/parsec")
        == "postgresql://bob:***@db:5432/parsec"
    )
    assert engine.redact_url("postgresql://bob@db/parsec") == "postgresql://bob@db/parsec"
