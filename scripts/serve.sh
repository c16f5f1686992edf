#!/usr/bin/env bash
# Install parsec-server into .venv (first time only) and start it on its embedded default:
# a local PostgreSQL it starts itself, listening on http://127.0.0.1:6777. Extra arguments go to `run`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
exec .venv/bin/parsec-server run "$@"
