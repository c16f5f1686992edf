#!/usr/bin/env bash
# Run tests/compat/test_scws.py against a server started with SCWS, OpenBao, CryptPad and advisory
# device file protections configured through the official PARSEC_* variables (both servers read
# the same ones), with throwaway keys made here.
#   scripts/compat-scws.sh reference|ours [pytest args...]
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: scripts/compat-scws.sh reference|ours [pytest args...]" >&2; exit 2; }
TARGET="$1"; shift
REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${PARSEC_COMPAT_VENV:-$REPO/.venv-compat}"
KEYS="$(mktemp -d "${TMPDIR:-/tmp}/parsec-scws.XXXXXX")"
trap 'rm -rf "$KEYS"' EXIT

# Idopte keys: ids 0 and 2 usable, id 1 revoked; the web application key (2048-bit RSA, PKCS#8).
"$VENV/bin/python" - "$KEYS" <<'PY'
import sys
from pathlib import Path
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

out = Path(sys.argv[1])
(out / "idopte").mkdir()
pem = serialization.Encoding.PEM
blocks = []
for key_id in range(3):
    key = rsa.generate_private_key(65537, 2048)
    name = f"key-{key_id}{'-REVOKED' if key_id == 1 else ''}.pem"
    (out / "idopte" / name).write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    if key_id == 1:
        blocks.append(b"-----BEGIN PUBLIC KEY-----\n!REVOKED!\n-----END PUBLIC KEY-----\n")
    else:
        blocks.append(key.public_key().public_bytes(
            pem, serialization.PublicFormat.SubjectPublicKeyInfo))
(out / "IdoptePublicKeys").write_bytes(b"".join(blocks))
web = rsa.generate_private_key(65537, 2048)
(out / "web-application.pem").write_bytes(web.private_bytes(
    pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
PY

export PARSEC_SCWS_IDOPTE_PUBLIC_KEYS_FILE="$KEYS/IdoptePublicKeys"
export PARSEC_SCWS_WEB_APPLICATION_PRIVATE_KEY_FILE="$KEYS/web-application.pem"
export PARSEC_COMPAT_SCWS_IDOPTE_PRIVATE_KEYS_DIR="$KEYS/idopte"
export PARSEC_CRYPTPAD_SERVER_URL="https://cryptpad.example.com"
export PARSEC_OPENBAO_SERVER_URL="https://openbao.example.com"
export PARSEC_OPENBAO_SECRET_MOUNT_PATH="kv-parsec"
export PARSEC_OPENBAO_AUTH_HEXAGONE_MOUNT_PATH="auth/hexagone"
export PARSEC_OPENBAO_AUTH_PRO_CONNECT_MOUNT_PATH="auth/pro_connect"
export PARSEC_ADVISORY_DEVICE_FILE_PROTECTION="PKI OPENBAO+TOTP"
"$REPO/scripts/compat.sh" "$TARGET" tests/compat/test_scws.py "$@"
