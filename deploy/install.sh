#!/bin/sh
# Install parsec-server into its own virtual environment.
#
#   deploy/install.sh [--slim] PREFIX [SOURCE]
#
# PREFIX  directory of the virtual environment (e.g. /opt/parsec-server): created if missing; an
#         existing one made by this script is upgraded in place.
# SOURCE  what to install: a wheel (.whl), a source tree (the directory holding pyproject.toml) or a
#         requirement such as "parsec-server==0.1.0" [default: the source tree this script is in].
# --slim  for an image that is never upgraded in place: afterwards remove pip and setuptools from the
#         environment and the AWS service descriptions that S3 access does not use (about 50 MB).
#
# Environment: PYTHON (interpreter that makes the venv, python3 by default; 3.11 or newer) and pip's
# own PIP_* settings (PIP_INDEX_URL, PIP_CONSTRAINT, PIP_NO_CACHE_DIR...).
#
# The Docker image runs exactly this script (see Dockerfile) and tests/deploy runs it, with the
# Dockerfile's arguments, into a temporary directory: what the image holds is what the tests checked.
# Prints the installed version and exits 0; any failure exits non-zero with the reason on stderr.
set -eu

usage() {
    sed -n '2,15s/^# \{0,1\}//p' "$0" >&2
    exit 0
}

die() {
    echo "error: $1" >&2
    [ "${2:-}" = usage ] && echo "usage: $0 [--slim] PREFIX [WHEEL | SOURCE_DIR | REQUIREMENT]  (--help for details)" >&2
    exit "${3:-1}"
}

slim=0
while [ $# -gt 0 ]; do
    case "$1" in
        --slim) slim=1; shift ;;
        -h|--help) usage ;;
        --) shift; break ;;
        -*) die "unknown option: $1" usage 2 ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] && [ $# -le 2 ] || die "expected PREFIX [SOURCE]" usage 2

prefix=$1
here=$(cd "$(dirname "$0")" && pwd)
source=${2:-$(dirname "$here")}
python=${PYTHON:-python3}

"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null ||
    die "$python is missing or older than Python 3.11 (set PYTHON)"
[ ! -e "$prefix" ] || [ -x "$prefix/bin/python" ] || die "$prefix exists and is not a virtual environment"
case "$source" in
    */*|*.whl) [ -e "$source" ] || die "$source does not exist" ;;
esac

if [ ! -x "$prefix/bin/python" ]; then
    "$python" -m venv "$prefix"
fi
[ -x "$prefix/bin/pip" ] ||
    die "$prefix was slimmed (--slim) and cannot be upgraded in place: install into a new PREFIX"

"$prefix/bin/python" -m pip install --disable-pip-version-check --no-input --quiet "$source"

if [ "$slim" -eq 1 ]; then
    site=$("$prefix/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    if [ -d "$site/botocore/data" ]; then
        for service in "$site"/botocore/data/*/; do
            case $(basename "$service") in
                s3|sts) ;;
                *) rm -rf "$service" ;;
            esac
        done
    fi
    "$prefix/bin/python" -m pip uninstall --disable-pip-version-check --yes --quiet setuptools pip
fi

# Fail now, at install time, rather than when the server first starts.
"$prefix/bin/parsec-server" --version
