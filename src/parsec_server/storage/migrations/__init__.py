"""Database schema migrations: the SQL files of this package and the engine that applies them.

Files: `NNNN_name.sql` (+ `NNNN_name.down.sql`), applied in order by `engine.py`; `schema.sql` is
the reference schema of a fresh install (`parsec-server migrate dump-schema`), compared by the
tests.
"""
