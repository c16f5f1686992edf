from parsec_server.storage.migrations import sqltext


def texts(sql: str) -> list[str]:
    return [s.text for s in sqltext.split(sql)]


def test_split_plain_statements_with_lines() -> None:
    sql = "-- header\nCREATE TABLE a (id int);\n\nCREATE INDEX b ON a (id)\n;\n"
    stmts = sqltext.split(sql)
    assert [s.text for s in stmts] == ["CREATE TABLE a (id int)", "CREATE INDEX b ON a (id)\n"[:-1]]
    assert [s.line for s in stmts] == [2, 4]


def test_semicolons_inside_literals_comments_and_dollar_quotes_do_not_split() -> None:
    sql = (
        "INSERT INTO t VALUES ('a;b', 'it''s;', E'x\\';y');\n"
        'SELECT 1 AS "we;ird";\n'
        "/* a; /* nested; */ still comment; */ SELECT 2;\n"
        "DO $body$ BEGIN PERFORM 1; PERFORM 2; END $body$;\n"
        "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n"
        "SELECT 3 -- trailing; comment\n;"
    )
    got = texts(sql)
    assert len(got) == 6
    assert got[0].startswith("INSERT") and got[0].endswith("E'x\\';y')")
    assert got[3].startswith("DO $body$") and got[3].endswith("END $body$")
    assert got[4].endswith("LANGUAGE sql")


def test_code_blanks_comments_and_literal_contents_but_keeps_length() -> None:
    (st,) = sqltext.split("SELECT 'CREATE INDEX' /* CONCURRENTLY */ FROM t")
    assert len(st.code) == len(st.text)
    assert "CREATE" not in st.code and "CONCURRENTLY" not in st.code
    assert st.words == "SELECT ' ' FROM T"


def test_comment_only_text_has_no_code() -> None:
    assert not sqltext.has_code("-- nothing\n/* here */\n\n;\n")
    assert sqltext.has_code("-- x\nSELECT 1")


def test_line_of_offset() -> None:
    sql = "SELECT 1;\nSELECT 2;\nSELEC 3;"
    assert sqltext.line_of_offset(sql, sql.index("SELEC 3") + 1) == 3
