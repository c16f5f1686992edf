#!/usr/bin/env bash
# Create (or reuse) the Python 3.12 venv that runs the black-box compatibility suite (tests/compat):
# the official client library parsec-cloud 3.9.3 (whose `parsec._parsec` builds and signs real
# requests; it also ships the reference server `parsec`), pytest and httpx.
#   scripts/compat-venv.sh [DIR]       (default: <repo>/.venv-compat)
# Idempotent: a venv that already holds everything is left untouched and nothing is printed.
# PY312=/path/to/python3.12 forces the interpreter.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${1:-$REPO/.venv-compat}"

is_py312() { [ -n "$1" ] && [ -x "$1" ] && "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; }

find_py312() {
    local cand
    # pyenv shims may exist without resolving: prefer the real interpreters under versions/.
    for cand in "${PY312:-}" \
                $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12.*/bin/python3.12 2>/dev/null | sort -rV) \
                "$(command -v python3.12 2>/dev/null || true)" \
                /usr/bin/python3.12 /usr/local/bin/python3.12; do
        if is_py312 "$cand"; then echo "$cand"; return 0; fi
    done
    return 1
}

has_deps() {
    "$VENV/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as md, sys
try:
    ok = md.version("parsec-cloud") == "3.9.3"
    md.version("pytest"); md.version("httpx")
    import parsec._parsec  # noqa: F401  (the wheel really loads)
except Exception:
    sys.exit(1)
sys.exit(0 if ok else 1)
PY
}

if [ -x "$VENV/bin/python" ] && ! is_py312 "$VENV/bin/python"; then
    echo "compat-venv: $VENV exists but is not a Python 3.12 venv; remove it first" >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    PY="$(find_py312)" || { echo "compat-venv: no working Python 3.12 found (set PY312=/path/to/python3.12)" >&2; exit 1; }
    echo "compat-venv: creating $VENV with $PY" >&2
    "$PY" -m venv "$VENV"
fi
if ! has_deps; then
    echo "compat-venv: installing parsec-cloud==3.9.3 pytest httpx into $VENV" >&2
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "parsec-cloud==3.9.3" pytest httpx
    has_deps || { echo "compat-venv: install finished but parsec._parsec does not import" >&2; exit 1; }
fi
