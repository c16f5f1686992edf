#!/usr/bin/env bash
# Install everything the tests need and run the whole suite:
#   1. unit + integration tests (pytest, real PostgreSQL started by the test setup, real S3 server on loopback);
#   2. compatibility tests: the official client library (parsec-cloud 3.9.3, Python 3.12 venv) against our server
#      (and again with SCWS, OpenBao and CryptPad configured: scripts/compat-scws.sh);
#   3. lint: ruff check (PERF rules included) and ruff format --check;
#   4. types and layers: mypy --strict on src/ (zero errors), the import-linter layering contract
#      (cli -> asgi -> commands -> storage/blockstore/crypto -> events -> protocol, pyproject.toml).
# Extra arguments go to the first pytest run.
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh --test || exit 1
./scripts/compat-venv.sh .venv-compat || exit 1

status=0
# Under this script a test never skips for a missing tool: it fails (tests/conftest.py).
export PARSEC_TEST_NO_MISSING_TOOLS=1
.venv/bin/python -m pytest "$@" || status=$?
./scripts/compat.sh ours || status=$?
./scripts/compat-scws.sh ours -q || status=$?  # the compat tests of SCWS/OpenBao/CryptPad settings
.venv/bin/ruff check src tests bench tools || status=$?
.venv/bin/ruff format --check --quiet src tests bench tools || status=$?
.venv/bin/mypy src || status=$?
.venv/bin/lint-imports --no-cache || status=$?
if [ "$status" -eq 0 ]; then echo "test.sh: all test suites passed"; else echo "test.sh: FAILED (status $status)"; fi
exit "$status"
