"""Fixtures of the bad-input tests: `logs` (fails on error records / tracebacks) and `fz` (a running
server with its own bootstrapped organizations, see fuzz_support.FuzzServer).

Database: one fresh migrated database per test module (the same template copy as the suite's
`db_url`, which makes one per test: ~0.5 s each, too slow for this many tests). Tests stay isolated
because each `fz` starts its own server and works in organizations of its own (random ids).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fuzz_support import FuzzServer, LogWatcher


@pytest.fixture(scope="module")
def fuzz_db_url(pg_cluster: Any) -> Iterator[str]:
    name = pg_cluster.create_database(template=pg_cluster.migrated_template())
    try:
        yield pg_cluster.url_for(name)
    finally:
        pg_cluster.drop_database(name)


@pytest.fixture
def logs() -> Iterator[LogWatcher]:
    """Every ERROR record or traceback logged during the test is a failure.

    Tests check it after each request (`fz.check_*` / `logs.assert_clean()`), which clears it; what
    is left at teardown (e.g. logged by a background task after the last check) fails here."""
    with LogWatcher() as watcher:
        yield watcher
        watcher.assert_clean("teardown")


@pytest.fixture
def fz(fuzz_db_url: str, logs: LogWatcher) -> Iterator[FuzzServer]:
    server = FuzzServer(fuzz_db_url, logs)
    try:
        server.run(server.start())
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def _shared_server(fuzz_db_url: str) -> Iterator[FuzzServer]:
    with LogWatcher() as watcher:
        server = FuzzServer(fuzz_db_url, watcher)
        try:
            server.run(server.start())
            yield server
        finally:
            server.close()


@pytest.fixture
def sfz(_shared_server: FuzzServer) -> Iterator[FuzzServer]:
    """One server per module for targeted tests whose requests are refused (they change nothing):
    cheaper than `fz`. Its log watcher is checked around each test."""
    _shared_server.logs.assert_clean("a previous test")
    yield _shared_server
    _shared_server.logs.assert_clean("teardown")
