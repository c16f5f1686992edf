"""Just enough SQL lexing for the migration engine: split a file into statements, blank out
literals.

Used to run non-transactional migrations one statement at a time (PostgreSQL runs a multi-statement
query string as one implicit transaction block, where `CREATE INDEX CONCURRENTLY` is refused), to
print `--sql`, and by the linter. Understands `--` and nested `/* */` comments, '...' (with '' and
E'\\'' escapes), "quoted identifiers" and $tag$ dollar quotes$tag$: a `;` inside any of them does
not end a statement. Not a parser: anything fancier belongs in PostgreSQL.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


@dataclass(frozen=True, slots=True)
class Statement:
    text: str  # the statement as written, comments inside kept, without the final `;`
    line: int  # 1-based line of its first significant character in the file
    code: str  # same length as `text`, comments and literal contents blanked (for pattern matching)

    @property
    def words(self) -> str:
        """Upper-cased `code` with whitespace collapsed: `CREATE INDEX CONCURRENTLY FOO ON ...`."""
        return " ".join(self.code.split()).upper()

    @property
    def digest(self) -> str:
        return hashlib.sha256(" ".join(self.text.split()).encode()).hexdigest()[:16]


def _scan(sql: str) -> tuple[str, list[int]]:
    """Return `code` (sql with comment/literal contents replaced by spaces) and the `;` offsets."""
    out = list(sql)
    semicolons: list[int] = []
    i, n = 0, len(sql)

    def blank(a: int, b: int) -> None:
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = sql[i]
        if c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif c == "/" and sql.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if sql.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif sql.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif c == "'":
            escapes = (
                i > 0
                and sql[i - 1] in "eE"
                and (i < 2 or not (sql[i - 2].isalnum() or sql[i - 2] == "_"))
            )
            j = i + 1
            while j < n:
                if escapes and sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == "'":
                    if j + 1 < n and sql[j + 1] == "'":
                        j += 2
                        continue
                    break
                j += 1
            blank(i + 1, min(j, n))
            i = j + 1
        elif c == '"':
            j = sql.find('"', i + 1)
            while j >= 0 and j + 1 < n and sql[j + 1] == '"':
                j = sql.find('"', j + 2)
            j = n if j < 0 else j
            i = j + 1  # identifiers are kept: rules look at table names
        elif c == "$" and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
            m = _DOLLAR_TAG.match(sql, i)
            if m is None:
                i += 1
                continue
            tag = m.group(0)
            end = sql.find(tag, m.end())
            end = n if end < 0 else end
            blank(m.end(), end)
            i = end + len(tag)
        elif c == ";":
            semicolons.append(i)
            i += 1
        else:
            i += 1
    return "".join(out), semicolons


def split(sql: str) -> list[Statement]:
    """The statements of `sql`, in order; comment-only chunks are dropped."""
    code, semis = _scan(sql)
    result: list[Statement] = []
    start = 0
    for end in [*semis, len(sql)]:
        chunk_code = code[start:end]
        if chunk_code.strip():
            lead = len(chunk_code) - len(chunk_code.lstrip())
            a = start + lead
            b = start + len(chunk_code.rstrip())
            result.append(Statement(text=sql[a:b], line=sql.count("\n", 0, a) + 1, code=code[a:b]))
        start = end + 1
    return result


def has_code(sql: str) -> bool:
    """False for a file that holds only comments and blanks."""
    code, _ = _scan(sql)
    return bool(code.replace(";", "").strip())


def line_of_offset(sql: str, position: int) -> int:
    """1-based line of a 1-based character position (PostgreSQL error `position`)."""
    return sql.count("\n", 0, max(position - 1, 0)) + 1
