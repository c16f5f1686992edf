#!/usr/bin/env bash
# Run the black-box compatibility suite (tests/compat) against a freshly started server.
#   scripts/compat.sh reference|ours [pytest args...]
#     reference: the official Parsec 3.9.3 server (`parsec run --debug`) from the compat venv
#     ours:      our server, .venv/bin/parsec-server
# Each run gets a throwaway PostgreSQL 15 cluster and a server on free loopback ports; both are
# stopped (and the cluster deleted) on exit, Ctrl-C or TERM. Exits with pytest's status
# (or 3 when the environment could not be set up).
# Env: PARSEC_COMPAT_VENV (default <repo>/.venv-compat), PGBIN (default /usr/lib/postgresql/15/bin),
#      PARSEC_COMPAT_KEEP_LOGS=1 keeps the work dir (server and PostgreSQL logs) for inspection.
set -uo pipefail

usage() { echo "usage: scripts/compat.sh reference|ours [pytest args...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
TARGET="$1"; shift
case "$TARGET" in reference|ours) ;; *) usage ;; esac

REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${PARSEC_COMPAT_VENV:-$REPO/.venv-compat}"
PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
ADMIN_TOKEN="compat-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
SETUP_FAILED=3

say() { echo "compat: $*" >&2; }
die() { say "$*"; exit "$SETUP_FAILED"; }

WORK=""
PG_DATA=""
SERVER_PID=""
PYTEST_PID=""
SMTP_PID=""

as_pg() {  # initdb/postgres refuse to run as root
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
    "$VENV/bin/python" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        # The server runs in its own process group (setsid): signal the whole group.
        kill -TERM -- "-$SERVER_PID" 2>/dev/null || kill -TERM "$SERVER_PID" 2>/dev/null
        for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

stop_smtp() {
    [ -n "$SMTP_PID" ] || return 0
    kill -TERM "$SMTP_PID" 2>/dev/null
    wait "$SMTP_PID" 2>/dev/null
    SMTP_PID=""
}

stop_pg() {
    [ -n "$PG_DATA" ] || return 0
    if [ -f "$PG_DATA/postmaster.pid" ]; then
        as_pg "$PGBIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t 20 stop >/dev/null 2>&1 || true
    fi
    PG_DATA=""
}

stop_pytest() {
    [ -n "$PYTEST_PID" ] || return 0
    kill -TERM "$PYTEST_PID" 2>/dev/null
    wait "$PYTEST_PID" 2>/dev/null
    PYTEST_PID=""
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pytest
    stop_server
    stop_smtp
    stop_pg
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "${PARSEC_COMPAT_KEEP_LOGS:-0}" = 1 ]; then say "logs kept in $WORK"; else rm -rf "$WORK"; fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$REPO/scripts/compat-venv.sh" "$VENV" || die "cannot prepare the compat venv $VENV"
[ -x "$PGBIN/initdb" ] || die "PostgreSQL binaries not found in $PGBIN (set PGBIN)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/parsec-compat.XXXXXX")" || die "mktemp failed"
chmod 755 "$WORK"   # the postgres user must reach its data dir inside
SERVER_LOG="$WORK/server.log"

# --- PostgreSQL -------------------------------------------------------------------------------
start_pg() {
    PG_DATA="$WORK/pg"
    mkdir -p "$PG_DATA" && chmod 700 "$PG_DATA"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$PG_DATA"
    as_pg "$PGBIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --locale=C \
        >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
    local attempt
    for attempt in 1 2 3; do
        PG_PORT="$(free_port)"
        if as_pg "$PGBIN/pg_ctl" -D "$PG_DATA" -w -t 30 -l "$PG_DATA/server.log" \
            -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DATA -c fsync=off \
                -c synchronous_commit=off -c full_page_writes=off -c max_connections=100" \
            start >/dev/null 2>&1; then
            as_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres parsec \
                || die "createdb failed"
            DB_URL="postgresql://postgres@127.0.0.1:$PG_PORT/parsec"
            return 0
        fi
        say "PostgreSQL did not start on port $PG_PORT (attempt $attempt)"
    done
    tail -n 20 "$PG_DATA/server.log" >&2 2>/dev/null
    die "cannot start PostgreSQL"
}
start_pg

# --- SMTP ---------------------------------------------------------------------------------------
# Both servers send their e-mails (invitations, account validation codes, TOTP resets) to a loopback
# SMTP server that writes each message to $MAILDIR (tests/compat/smtp_sink.py, run with the dev
# venv's aiosmtpd); tests read them with the `mailbox` fixture. Without the dev venv: no SMTP, the
# reference runs with `--email-host MOCKED` and the tests that need e-mails are skipped.
MAILDIR=""
SMTP_ARGS=()
SMTP_PY="${PARSEC_COMPAT_SMTP_PYTHON:-$REPO/.venv/bin/python}"
if [ -x "$SMTP_PY" ] && "$SMTP_PY" -c 'import aiosmtpd' 2>/dev/null; then
    MAILDIR="$WORK/mail"
    SMTP_PORT="$(free_port)"
    "$SMTP_PY" "$REPO/tests/compat/smtp_sink.py" "$MAILDIR" "$SMTP_PORT" >"$WORK/smtp.log" 2>&1 </dev/null &
    SMTP_PID=$!
    for _ in $(seq 1 100); do [ -f "$MAILDIR/.ready" ] && break; sleep 0.1; done
    [ -f "$MAILDIR/.ready" ] || { cat "$WORK/smtp.log" >&2; die "the loopback SMTP server did not start"; }
    SMTP_ARGS=(--email-host 127.0.0.1 --email-port "$SMTP_PORT" --email-sender no-reply@parsec.example)
else
    say "no $SMTP_PY with aiosmtpd: no loopback SMTP server, e-mail tests will be skipped"
fi
REFERENCE_SMTP_ARGS=("${SMTP_ARGS[@]}")
[ -n "$MAILDIR" ] || REFERENCE_SMTP_ARGS=(--email-host MOCKED)
# Accounts announced, validation e-mails not rate limited (tests send several from 127.0.0.1).
ACCOUNT_ARGS=(--account-config ENABLED_WITH_VAULT --validation-email-rate-limit 0 0)

# --- server -----------------------------------------------------------------------------------
if [ "$TARGET" = reference ]; then
    PARSEC="$VENV/bin/parsec"
    [ -x "$PARSEC" ] || die "official server not found at $PARSEC"
    MIGRATE_OUT="$("$PARSEC" migrate --db "$DB_URL" 2>&1)"
    # `parsec migrate` exits 0 even when a migration fails: look for its failure mark.
    if [ $? -ne 0 ] || grep -q '✘' <<<"$MIGRATE_OUT"; then
        echo "$MIGRATE_OUT" >&2; die "parsec migrate failed"
    fi
else
    PARSEC="$REPO/.venv/bin/parsec-server"
    [ -x "$PARSEC" ] || die "our server is not installed ($PARSEC missing)"
    "$PARSEC" migrate --db "$DB_URL" >"$WORK/migrate.log" 2>&1 \
        || { cat "$WORK/migrate.log" >&2; die "parsec-server migrate failed"; }
fi

start_server() {  # $1 = port; runs in its own session so it can be stopped as a group
    local port="$1" addr="parsec3://127.0.0.1:$1?no_ssl=true"
    if [ "$TARGET" = reference ]; then
        setsid "$PARSEC" run --debug --db "$DB_URL" --blockstore POSTGRESQL \
            --administration-token "$ADMIN_TOKEN" --fake-account-password-algorithm-seed F4k3 \
            "${REFERENCE_SMTP_ARGS[@]}" "${ACCOUNT_ARGS[@]}" \
            --server-addr "$addr" --host 127.0.0.1 --port "$port" \
            >"$SERVER_LOG" 2>&1 </dev/null &
    else
        setsid "$PARSEC" run --db "$DB_URL" --blockstore POSTGRESQL \
            --administration-token "$ADMIN_TOKEN" --host 127.0.0.1 --port "$port" \
            "${SMTP_ARGS[@]}" "${ACCOUNT_ARGS[@]}" \
            --server-addr "$addr" >"$SERVER_LOG" 2>&1 </dev/null &
    fi
    SERVER_PID=$!
}

wait_server() {  # any HTTP answer counts; gives up when the process dies or after 60 s
    "$VENV/bin/python" - "$1" "$SERVER_PID" <<'PY'
import os, sys, time, httpx
port, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(1)
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
        sys.exit(0)
    except httpx.HTTPError:
        time.sleep(0.2)
sys.exit(1)
PY
}

for attempt in 1 2 3; do
    PORT="$(free_port)"
    start_server "$PORT"
    if wait_server "$PORT"; then break; fi
    stop_server
    # Retry only when another process grabbed the port in the meantime.
    if [ "$attempt" = 3 ] || ! grep -qiE 'address already in use|errno 98' "$SERVER_LOG"; then
        say "the $TARGET server did not come up on port $PORT; last log lines:"
        tail -n 30 "$SERVER_LOG" >&2
        die "cannot start the $TARGET server"
    fi
    say "port $PORT already taken, retrying"
done
say "$TARGET server on http://127.0.0.1:$PORT, PostgreSQL on $DB_URL"

# --- tests ------------------------------------------------------------------------------------
cd "$REPO"
# Default to the whole suite unless test paths (tests/compat/test_x.py[::name]) were given.
TEST_PATHS=(tests/compat)
for arg in "$@"; do
    case "$arg" in -*) continue ;; esac
    [ -e "${arg%%::*}" ] && { TEST_PATHS=(); break; }
done
# pytest runs in the background so that INT/TERM reach our trap at once (a foreground child
# would delay it until pytest ends); stdin is passed on explicitly for --pdb.
PARSEC_COMPAT_URL="http://127.0.0.1:$PORT" \
PARSEC_COMPAT_ADMIN_TOKEN="$ADMIN_TOKEN" \
PARSEC_COMPAT_TARGET="$TARGET" \
PARSEC_COMPAT_MAILDIR="$MAILDIR" \
    "$VENV/bin/python" -m pytest -c tests/compat/pytest.ini "${TEST_PATHS[@]}" "$@" <&0 &
PYTEST_PID=$!
wait "$PYTEST_PID"
RC=$?
PYTEST_PID=""
if [ "$RC" -ne 0 ] && [ "$RC" -ne 5 ]; then
    say "pytest exited $RC; last server log lines:"
    tail -n 30 "$SERVER_LOG" >&2
fi
exit "$RC"
