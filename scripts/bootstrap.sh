#!/usr/bin/env bash
# Create (or update) the project's virtualenv at .venv with parsec-server and, with --test, its test tools.
# Idempotent: a second run with nothing changed only checks and returns.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=""
[ "${1:-}" = "--test" ] && EXTRAS="[test]"

find_python() {  # first Python >= 3.11 that really runs
    for c in "${PYTHON:-}" python3.13 python3.12 python3.11 python3 \
             $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[1-9]*/bin/python3 2>/dev/null); do
        [ -n "$c" ] || continue
        p="$(command -v "$c" 2>/dev/null || true)"
        [ -n "$p" ] && "$p" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null && { echo "$p"; return; }
    done
}

stamp=".venv/.installed${EXTRAS:+-test}"
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
    exit 0
fi
PY="$(find_python)"
[ -n "$PY" ] || { echo "bootstrap: Python 3.11 or newer is required" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${EXTRAS}"
touch "$stamp"
