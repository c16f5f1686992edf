#!/bin/sh
# Write the env files that parsec-server.docker.yaml reads, with freshly generated secrets.
#
#   deploy/generate-env.sh [--server-addr ADDR] [--dir DIR] [--force]
#
# --server-addr  public address of the server (PARSEC_SERVER_ADDR in server.env)
#                [default: parsec3://localhost:6777?no_ssl=true]
# --dir          where to write the files [default: deploy/env, beside the templates]
# --force        overwrite existing files (new secrets: see the warning below before using it)
#
# For each deploy/env/NAME.env.template it writes DIR/NAME.env, replacing the @PLACEHOLDERS@ with
# random values (hex, so that no character needs quoting in a URL or an env file). Existing files are
# kept unless --force is given: regenerating db.env after the database volume was created would give
# parsec-server a password PostgreSQL does not know. Files are created readable by their owner only.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
templates=$here/env
dir=$templates
server_addr='parsec3://localhost:6777?no_ssl=true'
force=0

usage() {
    sed -n '2,14s/^# \{0,1\}//p' "$0" >&2
    exit 0
}

die() {
    echo "error: $1" >&2
    echo "usage: $0 [--server-addr ADDR] [--dir DIR] [--force]  (--help for details)" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --server-addr) [ $# -ge 2 ] || die "--server-addr needs a value"; server_addr=$2; shift 2 ;;
        --server-addr=*) server_addr=${1#*=}; shift ;;
        --dir) [ $# -ge 2 ] || die "--dir needs a value"; dir=$2; shift 2 ;;
        --dir=*) dir=${1#*=}; shift ;;
        --force) force=1; shift ;;
        -h|--help) usage ;;
        *) die "unknown argument: $1" ;;
    esac
done

case "$server_addr" in
    parsec3://*) ;;
    *) die "--server-addr must start with parsec3:// (got: $server_addr)" ;;
esac

# N random bytes as 2N hexadecimal characters.
random_hex() {
    od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'
}

# Escape a value for the replacement side of a sed s|||: backslash, '|' and '&'.
sed_escape() {
    printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'
}

umask 077
mkdir -p "$dir"

db_password=$(random_hex 24)
s3_secret=$(random_hex 24)
admin_token=$(random_hex 32)
addr=$(sed_escape "$server_addr")

written=0
for template in "$templates"/*.env.template; do
    name=$(basename "$template" .template)
    out=$dir/$name
    if [ -e "$out" ] && [ "$force" -ne 1 ]; then
        echo "kept    $out (exists; --force to overwrite)"
        continue
    fi
    tmp=$out.tmp.$$
    sed -e "s|@DB_PASSWORD@|$db_password|g" \
        -e "s|@S3_SECRET@|$s3_secret|g" \
        -e "s|@ADMIN_TOKEN@|$admin_token|g" \
        -e "s|@SERVER_ADDR@|$addr|g" \
        "$template" > "$tmp"
    if grep -q '@[A-Z_]*@' "$tmp"; then
        rm -f "$tmp"
        echo "error: $template has a placeholder this script does not know" >&2
        exit 1
    fi
    chmod 600 "$tmp"
    mv "$tmp" "$out"
    echo "wrote   $out"
    written=$((written + 1))
done

if [ "$written" -gt 0 ]; then
    echo "Secrets are in $dir/*.env (mode 600): keep them out of version control and back them up."
fi
