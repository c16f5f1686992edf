#!/usr/bin/env bash
# Side-by-side benchmark: parsec-server vs the official server (see bench/run.py). Arguments go to run.py.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
./scripts/compat-venv.sh .venv-compat
exec .venv-compat/bin/python bench/run.py "$@"
