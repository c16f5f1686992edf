"""The linter on a corpus of migrations with known findings, and on the project's own migrations."""

from pathlib import Path

import pytest

from parsec_server.storage.migrations import lint

BASE = {
    "0001_base.sql": (
        "-- compat: breaking\nCREATE TABLE t (id int, v text, w int);\n"
        "CREATE INDEX t_v ON t (v);\n"
        "ALTER TABLE t ADD CONSTRAINT t_w CHECK (w > 0);\n"
    ),  # new table: anything goes
    "0001_base.down.sql": "-- data-loss: yes\nDROP TABLE t;\n",
}


def findings(
    tmp_path: Path, second: str, compat: str = "breaking", extra: dict[str, str] | None = None
) -> list[tuple[int, str]]:
    files = {
        **BASE,
        "0002_change.sql": f"-- compat: {compat}\n{second}",
        "0002_change.down.sql": "-- data-loss: no\nSELECT 1;\n",
        **(extra or {}),
    }
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    return [(f.line, f.rule) for f in lint.lint(tmp_path) if f.file == "0002_change.sql"]


def test_project_migrations_lint_clean() -> None:
    assert [str(f) for f in lint.lint()] == []


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("CREATE INDEX t_w ON t (w);", ["index-not-concurrent"]),
        ("CREATE UNIQUE INDEX t_w ON public.t USING btree (w);", ["index-not-concurrent"]),
        ("CREATE INDEX CONCURRENTLY t_w ON t (w);", ["concurrently-in-transaction"]),
        ("ALTER TABLE t ADD CONSTRAINT c CHECK (w > 1);", ["constraint-not-valid"]),
        (
            "ALTER TABLE t ADD CONSTRAINT c FOREIGN KEY (w) REFERENCES t (id);",
            ["constraint-not-valid"],
        ),
        ("ALTER TABLE t ADD CONSTRAINT u UNIQUE (v);", ["unique-constraint"]),
        ("ALTER TABLE t ADD COLUMN x timestamptz DEFAULT clock_timestamp();", ["volatile-default"]),
        ("ALTER TABLE t ADD COLUMN x uuid DEFAULT gen_random_uuid();", ["volatile-default"]),
        ("ALTER TABLE t ADD COLUMN x bigserial;", ["volatile-default"]),
        ("ALTER TABLE t ADD COLUMN x int GENERATED ALWAYS AS IDENTITY;", ["volatile-default"]),
        ("ALTER TABLE t ALTER COLUMN w TYPE bigint;", ["column-type-rewrite"]),
        ("ALTER TABLE t ALTER COLUMN w SET NOT NULL;", ["set-not-null"]),
        ("ALTER TABLE t ADD COLUMN x int NOT NULL;", ["add-required-column"]),
        ("ALTER TABLE t ADD COLUMN x int REFERENCES t (id);", ["constraint-not-valid"]),
        ("VACUUM FULL t;", ["table-rewrite"]),
        (
            "BEGIN;\nALTER TABLE t ADD COLUMN x int;\nCOMMIT;",
            ["transaction-control", "transaction-control"],
        ),
        ("DROP TABLE t;", ["destructive"]),
    ],
)
def test_dangerous_ddl_on_existing_tables_is_flagged(
    tmp_path: Path, sql: str, expected: list[str]
) -> None:
    assert sorted(rule for _, rule in findings(tmp_path, sql)) == sorted(expected)


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE t ADD COLUMN x text DEFAULT 'x';",  # constant default: no rewrite since PG 11
        "ALTER TABLE t ADD COLUMN x int NOT NULL DEFAULT 0;",
        "ALTER TABLE t ADD COLUMN x timestamptz DEFAULT now();",  # stable, not volatile
        "ALTER TABLE t ADD COLUMN x text;",
        "ALTER TABLE t ALTER COLUMN v TYPE text;",
        "ALTER TABLE t ADD CONSTRAINT c CHECK (w > 1) NOT VALID;\n"
        "ALTER TABLE t VALIDATE CONSTRAINT c;",
        "ALTER TABLE t ADD CONSTRAINT c CHECK (w IS NOT NULL) NOT VALID;\n"
        "ALTER TABLE t VALIDATE CONSTRAINT c;\nALTER TABLE t ALTER COLUMN w SET NOT NULL;",
        "CREATE TABLE n (id int);\nCREATE INDEX n_id ON n (id);\n"
        "ALTER TABLE n ADD CONSTRAINT u UNIQUE (id);",
        "ALTER TABLE t ADD CONSTRAINT u UNIQUE USING INDEX t_v_unique;",
        "SELECT 'CREATE INDEX x ON t (v)';  -- text in a literal is not DDL",
        "-- lint: allow index-not-concurrent\nCREATE INDEX t_w ON t (w);",
        "CREATE INDEX t_w ON t (w);  -- lint: allow index-not-concurrent",
    ],
)
def test_safe_ddl_is_not_flagged(tmp_path: Path, sql: str) -> None:
    assert findings(tmp_path, sql) == []


def test_concurrent_index_in_a_non_transactional_file_is_fine(tmp_path: Path) -> None:
    sql = "-- transaction: off\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t_w ON t (w);\n"
    assert findings(tmp_path, sql, compat="expand") == []


def test_breaking_changes_in_an_expand_migration(tmp_path: Path) -> None:
    sql = "ALTER TABLE t DROP COLUMN w;\nALTER TABLE t RENAME COLUMN v TO label;\n"
    got = findings(tmp_path, sql, compat="expand")
    assert (2, "breaking-in-expand") in got and (3, "breaking-in-expand") in got
    assert "breaking-in-expand" not in {r for _, r in findings(tmp_path, sql, compat="breaking")}


def test_file_rules(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("CREATE TABLE a (id int);\n")
    (tmp_path / "0002_b.sql").write_text("-- compat: expand\nCREATE TABLE b (id int);\n")
    (tmp_path / "0002_b.down.sql").write_text("DROP TABLE b;\n")
    rules = {(f.file, f.rule) for f in lint.lint(tmp_path)}
    assert rules == {
        ("0001_a.sql", "missing-compat"),
        ("0001_a.sql", "missing-down"),
        ("0002_b.down.sql", "down-data-loss-undeclared"),
    }
