"""`parsec-server migrate lint`: flag DDL that would lock or rewrite a busy table, and header
mistakes.

The rules are about *existing* tables: a table created earlier in the same file is new (empty,
unused), so anything goes there; tables created by earlier migrations are live. Statement rules
(PostgreSQL ≥ 12):

    index-not-concurrent      CREATE INDEX on an existing table blocks writes for the whole build
    concurrently-in-transaction  CONCURRENTLY cannot run in a transaction: `-- transaction: off`
    drop-index-not-concurrent DROP INDEX takes an ACCESS EXCLUSIVE lock on the table
    constraint-not-valid      ADD CONSTRAINT CHECK / FOREIGN KEY validated under the ALTER's lock:
                              add it NOT VALID, then VALIDATE CONSTRAINT (weaker lock) later
    unique-constraint         ADD UNIQUE / PRIMARY KEY builds the index under ACCESS EXCLUSIVE:
                              build it CONCURRENTLY, then ADD CONSTRAINT ... USING INDEX
    volatile-default          ADD COLUMN with a volatile default, SERIAL, identity or stored
                              generated column rewrites the whole table
    column-type-rewrite       ALTER COLUMN TYPE rewrites the table (except to text / wider varchar)
    set-not-null              SET NOT NULL scans the table under ACCESS EXCLUSIVE unless a validated
                              CHECK (col IS NOT NULL) exists
    add-required-column       ADD COLUMN NOT NULL without DEFAULT fails on a table that has rows
    table-rewrite             VACUUM FULL, CLUSTER, SET TABLESPACE, SET LOGGED/UNLOGGED
    transaction-control       BEGIN/COMMIT/ROLLBACK in a file: the engine owns transactions
    breaking-in-expand        DROP / RENAME / type change / NOT NULL in a `compat: expand` file
    destructive               DROP TABLE / DROP COLUMN / TRUNCATE of an existing table (warning)
    unverified-if-not-exists  IF NOT EXISTS other than CREATE INDEX (CREATE TABLE, ADD COLUMN,
                              SEQUENCE, SCHEMA...): a squatter of that name would be taken for the
                              result; the engine verifies only indexes (verify.py)
File rules: missing-compat, missing-down, down-data-loss-undeclared.

Silence a finding with a comment on the statement or the line before it: `-- lint: allow <rule>`
(several rules: comma-separated), or for a whole file in its header.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Literal

from parsec_server.storage.migrations import sqltext
from parsec_server.storage.migrations.source import Migration, MigrationsSource, Script, discover

Severity = Literal["error", "warning"]

_ALLOW = re.compile(r"--\s*lint:\s*allow\s+([\w,\s-]+)", re.IGNORECASE)
_IDENT = r'(?:"[^"]+"|[A-Z_][A-Z0-9_$]*)'
_QNAME = rf"{_IDENT}(?:\.{_IDENT})?"
_CREATE_TABLE = re.compile(
    r"^CREATE (?:(?:GLOBAL |LOCAL )?(?:TEMP|TEMPORARY|UNLOGGED) )?TABLE (?:IF NOT EXISTS "
    rf")?({_QNAME})"
)
_CREATE_INDEX = re.compile(
    rf"^CREATE (?:UNIQUE )?INDEX (CONCURRENTLY )?(?:IF NOT EXISTS )?(?:{_QNAME} )?ON (?:ONLY "
    rf")?({_QNAME})"
)
_ALTER_TABLE = re.compile(rf"^ALTER TABLE (?:IF EXISTS )?(?:ONLY )?({_QNAME}) (.*)$")
_DROP_INDEX = re.compile(r"^DROP INDEX (CONCURRENTLY )?")
_DROP_TABLE = re.compile(rf"^DROP TABLE (?:IF EXISTS )?((?:{_QNAME}(?: , |, |,| )?)+)")
_TRUNCATE = re.compile(rf"^TRUNCATE (?:TABLE )?(?:ONLY )?((?:{_QNAME}(?: , |, |,| )?)+)")
_TX = re.compile(r"^(BEGIN|COMMIT|ROLLBACK|START TRANSACTION|END|SAVEPOINT|RELEASE|ABORT)\b")
_VOLATILE = re.compile(
    r"\b(CLOCK_TIMESTAMP|RANDOM|GEN_RANDOM_UUID|UUID_GENERATE_V[14]\w*|TIMEOFDAY|NEXTVAL|TXID_CURRENT"
    r"|PG_CURRENT_XACT_ID|STATEMENT_TIMESTAMP)\s*\("
)
_NO_REWRITE_TYPES = re.compile(r"^(TEXT|VARCHAR|CHARACTER VARYING)\b(?!\s*\()")
_WIDENABLE_TYPES = re.compile(r"^(VARCHAR|CHARACTER VARYING|NUMERIC|DECIMAL)\s*\(")


@dataclass(frozen=True, slots=True)
class Finding:
    file: str
    line: int
    rule: str
    severity: Severity
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.severity} [{self.rule}] {self.message}"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _name(raw: str) -> str:
    return raw.replace('"', "").upper().removeprefix("PUBLIC.")


def _split_top_level(text: str, sep: str = ",") -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        parts.append("".join(cur).strip())
    return parts


@dataclass
class _State:
    """What earlier statements established, across files (in order)."""

    tables: set[str]
    not_null_checks: dict[tuple[str, str], str]  # (table, constraint) -> column, added NOT VALID
    validated_not_null: set[tuple[str, str]]  # (table, column) with a validated IS NOT NULL check


class _FileLinter:
    def __init__(self, script: Script, state: _State, *, compat: str | None) -> None:
        self.script = script
        self.state = state
        self.compat = compat
        self.findings: list[Finding] = []
        self.new_tables: set[str] = set()
        lines = script.sql.split("\n")
        self.allow_by_line: dict[int, set[str]] = {}
        for no, line in enumerate(lines, start=1):
            m = _ALLOW.search(line)
            if m:
                self.allow_by_line[no] = {
                    r.strip().lower() for r in m.group(1).replace(",", " ").split()
                }
        header_end = next(
            (
                i
                for i, line in enumerate(lines, 1)
                if line.strip() and not line.strip().startswith("--")
            ),
            1,
        )
        self.file_allow = (
            set().union(*(v for k, v in self.allow_by_line.items() if k < header_end))
            if self.allow_by_line
            else set()
        )
        self._prev_end = header_end - 1
        self._cur: sqltext.Statement | None = None

    def add(self, rule: str, severity: Severity, message: str, line: int | None = None) -> None:
        if rule in self.file_allow:
            return
        st = self._cur
        if st is not None:
            end = st.line + st.text.count("\n")
            for ln, rules in self.allow_by_line.items():
                if self._prev_end < ln <= end and rule in rules:
                    return
        self.findings.append(
            Finding(self.script.filename, line or (st.line if st else 1), rule, severity, message)
        )

    def existing(self, table: str) -> bool:
        return table not in self.new_tables

    def run(self) -> list[Finding]:
        for st in self.script.statements():
            self._cur = st
            self.statement(st)
            self._prev_end = st.line + st.text.count("\n")
        self._cur = None
        self.state.tables |= self.new_tables
        return self.findings

    # --- statements -----------------------------------------------------------------------------

    def statement(self, st: sqltext.Statement) -> None:
        w = st.words
        if " IF NOT EXISTS " in f" {w} " and not _CREATE_INDEX.match(w):
            self.add(
                "unverified-if-not-exists",
                "error",
                "IF NOT EXISTS skips whatever already has that name, and the engine cannot check "
                "that it matches this statement (it verifies CREATE INDEX only): drop IF NOT EXISTS "
                "so that a conflicting object fails the migration",
            )
        if _TX.match(w):
            self.add(
                "transaction-control",
                "error",
                "do not manage transactions in a migration: the engine runs each file in its own "
                "transaction (or statement by statement with `-- transaction: off`)",
            )
            return
        if "CONCURRENTLY" in w.split(" ") and self.script.transactional:
            self.add(
                "concurrently-in-transaction",
                "error",
                "CONCURRENTLY cannot run inside a transaction: declare `-- transaction: off` in "
                "the header "
                "(and keep such statements in a file of their own)",
            )
        if m := _CREATE_TABLE.match(w):
            self.new_tables.add(_name(m.group(1)))
            return
        if m := _CREATE_INDEX.match(w):
            table = _name(m.group(2))
            if not m.group(1) and self.existing(table):
                self.add(
                    "index-not-concurrent",
                    "error",
                    f"CREATE INDEX on existing table {table.lower()} blocks writes while it "
                    "builds: use "
                    "CREATE INDEX CONCURRENTLY IF NOT EXISTS in a `-- transaction: off` file",
                )
            return
        if m := _DROP_INDEX.match(w):
            if not m.group(1):
                self.add(
                    "drop-index-not-concurrent",
                    "warning",
                    "DROP INDEX locks its table (ACCESS EXCLUSIVE): prefer DROP INDEX CONCURRENTLY "
                    "IF EXISTS in a `-- transaction: off` file",
                )
            return
        if m := _DROP_TABLE.match(w):
            tables = [
                _name(t)
                for t in re.split(r"\s*,\s*|\s+", m.group(1).strip())
                if t and t not in ("CASCADE", "RESTRICT")
            ]
            existing = [t for t in tables if self.existing(t)]
            if existing:
                self._breaking(f"DROP TABLE {', '.join(t.lower() for t in existing)}")
                self.add(
                    "destructive",
                    "warning",
                    f"drops table(s) {', '.join(t.lower() for t in existing)} and their data",
                )
            self.state.tables -= set(tables)
            return
        if m := _TRUNCATE.match(w):
            self.add(
                "destructive",
                "warning",
                "TRUNCATE discards data and locks the table (ACCESS EXCLUSIVE)",
            )
            return
        if (w.startswith("VACUUM") and " FULL" in w) or w.startswith("CLUSTER"):
            self.add(
                "table-rewrite",
                "error",
                f"{w.split(' ')[0]} rewrites the table under an ACCESS EXCLUSIVE lock",
            )
            return
        if w.startswith("REINDEX") and "CONCURRENTLY" not in w:
            self.add(
                "drop-index-not-concurrent",
                "warning",
                "REINDEX blocks writes (use REINDEX ... CONCURRENTLY in a `-- transaction: off` "
                "file)",
            )
            return
        if m := _ALTER_TABLE.match(w):
            table = _name(m.group(1))
            rest = m.group(2)
            if rest.startswith("RENAME"):
                self._breaking("RENAME")
                return
            if self.existing(table):
                for action in _split_top_level(rest):
                    self.action(table, action)
            else:
                for action in _split_top_level(rest):
                    self._track_constraints(table, action)

    def _breaking(self, what: str) -> None:
        if self.compat == "expand":
            self.add(
                "breaking-in-expand",
                "error",
                f"{what} breaks the previous release, which still runs on an `expand` schema: "
                "declare "
                "`-- compat: breaking` (or split: expand now, contract in a later release)",
            )

    def _track_constraints(self, table: str, action: str) -> None:
        m = re.match(
            rf"^ADD (?:CONSTRAINT ({_IDENT}) )?CHECK \(\s*({_IDENT}) IS NOT NULL\s*\)( NOT VALID)?",
            action,
        )
        if m and m.group(1):
            if m.group(3):
                self.state.not_null_checks[(table, _name(m.group(1)))] = _name(m.group(2))
            else:
                self.state.validated_not_null.add((table, _name(m.group(2))))
        m = re.match(rf"^VALIDATE CONSTRAINT ({_IDENT})", action)
        if m:
            col = self.state.not_null_checks.get((table, _name(m.group(1))))
            if col:
                self.state.validated_not_null.add((table, col))

    # --- ALTER TABLE actions on an existing table
    # -----------------------------------------------------

    def action(self, table: str, action: str) -> None:
        self._track_constraints(table, action)
        t = table.lower()
        if re.match(r"^ADD (CONSTRAINT \S+ )?(CHECK|FOREIGN KEY)\b", action):
            if not action.endswith("NOT VALID"):
                kind = "CHECK" if " CHECK" in f" {action}" else "FOREIGN KEY"
                self.add(
                    "constraint-not-valid",
                    "error",
                    f"ADD {kind} on {t} validates every row under the ALTER's lock: add it NOT "
                    "VALID, then "
                    "VALIDATE CONSTRAINT in a separate statement",
                )
            return
        if re.match(r"^ADD (CONSTRAINT \S+ )?(UNIQUE|PRIMARY KEY|EXCLUDE)\b", action):
            if " USING INDEX " not in f" {action} ":
                self.add(
                    "unique-constraint",
                    "error",
                    f"ADD UNIQUE/PRIMARY KEY on {t} builds an index under ACCESS EXCLUSIVE: "
                    "CREATE UNIQUE "
                    "INDEX CONCURRENTLY first, then ADD CONSTRAINT ... USING INDEX",
                )
            return
        if m := re.match(rf"^ADD (?:COLUMN )?(?:IF NOT EXISTS )?({_IDENT}) (.*)$", action):
            self.add_column(t, _name(m.group(1)), m.group(2))
            return
        if m := re.match(rf"^ALTER (?:COLUMN )?({_IDENT}) (?:SET DATA )?TYPE (.*)$", action):
            target = m.group(2).strip()
            if _NO_REWRITE_TYPES.match(target):
                return
            self._breaking(f"changing the type of {t}.{m.group(1).lower()}")
            if _WIDENABLE_TYPES.match(target):
                self.add(
                    "column-type-rewrite",
                    "warning",
                    f"type change of {t}.{m.group(1).lower()} avoids a rewrite only when it "
                    "widens the "
                    "current type (e.g. varchar(32) -> varchar(64)); check it",
                )
            else:
                self.add(
                    "column-type-rewrite",
                    "error",
                    f"ALTER COLUMN {m.group(1).lower()} TYPE rewrites {t} and its indexes under "
                    "ACCESS "
                    "EXCLUSIVE: add a new column, backfill in batches, switch over",
                )
            return
        if m := re.match(rf"^ALTER (?:COLUMN )?({_IDENT}) SET NOT NULL", action):
            col = _name(m.group(1))
            self._breaking(f"SET NOT NULL on {t}.{col.lower()}")
            if (table, col) not in self.state.validated_not_null:
                self.add(
                    "set-not-null",
                    "error",
                    f"SET NOT NULL scans {t} under ACCESS EXCLUSIVE: first ADD CONSTRAINT ... "
                    "CHECK "
                    f"({col.lower()} IS NOT NULL) NOT VALID, then VALIDATE CONSTRAINT, then SET "
                    "NOT NULL",
                )
            return
        if m := re.match(rf"^DROP (?:COLUMN )?(?:IF EXISTS )?({_IDENT})", action):
            if m.group(1) != "CONSTRAINT":
                self._breaking(f"DROP COLUMN {t}.{m.group(1).lower()}")
                self.add(
                    "destructive", "warning", f"drops column {t}.{m.group(1).lower()} and its data"
                )
            return
        if re.match(r"^SET (TABLESPACE|LOGGED|UNLOGGED)\b", action):
            self.add(
                "table-rewrite",
                "error",
                f"{action.split(' (')[0]} rewrites {t} under ACCESS EXCLUSIVE",
            )

    def add_column(self, t: str, col: str, definition: str) -> None:
        d = f" {definition} "
        c = col.lower()
        if re.match(r"^(SMALL|BIG)?SERIAL\d?\b", definition) or (
            " GENERATED " in d and (" IDENTITY" in d or " STORED" in d)
        ):
            self.add(
                "volatile-default",
                "error",
                f"column {t}.{c} (serial / identity / stored generated) rewrites the whole table",
            )
        elif " DEFAULT " in d and _VOLATILE.search(d.split(" DEFAULT ", 1)[1]):
            self.add(
                "volatile-default",
                "error",
                f"volatile DEFAULT for {t}.{c} rewrites the whole table: add the column without "
                "default "
                "(or with a constant), then backfill in batches",
            )
        if " NOT NULL " in d and " DEFAULT " not in d:
            self.add(
                "add-required-column",
                "error",
                f"ADD COLUMN {c} NOT NULL without DEFAULT fails as soon as {t} has rows",
            )
            self._breaking(f"adding the required column {t}.{c}")
        if " REFERENCES " in d:
            self.add(
                "constraint-not-valid",
                "error",
                f"ADD COLUMN {c} REFERENCES validates under SHARE ROW EXCLUSIVE locks on both "
                "tables: add the "
                "column, then ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID, then VALIDATE "
                "CONSTRAINT",
            )
        if " UNIQUE " in d or " PRIMARY KEY " in d:
            self.add(
                "unique-constraint",
                "error",
                f"ADD COLUMN {c} UNIQUE/PRIMARY KEY builds an index under ACCESS EXCLUSIVE",
            )
        if " CHECK " in d:
            self.add(
                "constraint-not-valid",
                "warning",
                f"CHECK on new column {t}.{c} is validated against every row under ACCESS "
                "EXCLUSIVE",
            )


def lint_migrations(migrations: list[Migration]) -> list[Finding]:
    findings: list[Finding] = []
    state = _State(tables=set(), not_null_checks={}, validated_not_null=set())
    for m in migrations:
        if "compat" not in m.header.values:
            findings.append(
                Finding(
                    m.filename,
                    1,
                    "missing-compat",
                    "error",
                    "declare `-- compat: expand` or `-- compat: breaking` in the header",
                )
            )
        linter = _FileLinter(m, state, compat=m.header.values.get("compat"))
        findings += linter.run()
        if m.down is None:
            findings.append(
                Finding(
                    m.filename,
                    1,
                    "missing-down",
                    "error",
                    f"every migration ships a down file: add {m.name}.down.sql",
                )
            )
        else:
            if "data-loss" not in m.down.header.values:
                findings.append(
                    Finding(
                        m.down.filename,
                        1,
                        "down-data-loss-undeclared",
                        "error",
                        "declare `-- data-loss: yes` or `-- data-loss: no` in the header",
                    )
                )
            down_state = _State(
                set(state.tables), dict(state.not_null_checks), set(state.validated_not_null)
            )
            for f in _FileLinter(m.down, down_state, compat=None).run():
                if f.rule not in ("destructive",):  # a down file undoes: drops are its job
                    findings.append(f)
    return findings


def lint(source: MigrationsSource = None) -> list[Finding]:
    return lint_migrations(discover(source))
