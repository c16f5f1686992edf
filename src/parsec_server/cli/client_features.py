"""`run` options for what server_config tells clients, and SCWS (docs/scws.md).

The official server's names, variables, defaults and checks: `--cryptpad-server-url`, `--openbao-*`,
`--advisory-device-file-protection`, `--scws-idopte-public-keys-file` with
`--scws-web-application-private-key-file` or `-content`. The key files are loaded at start: a wrong
file stops `run` with one line and exit code 2, before anything listens.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import click

from parsec_server.config import OpenBaoConfig, ScwsConfig
from parsec_server.crypto import scws

__all__ = ["ADVISORY_DEVICE_FILE_PROTECTIONS", "ClientFeatures", "client_feature_options"]

# The official AdvisoryDeviceFileProtection values (case-sensitive, as the official server parses).
ADVISORY_DEVICE_FILE_PROTECTIONS = tuple(
    f"{base}{suffix}"
    for base in ("PASSWORD", "KEYRING", "PKI", "OPENBAO", "ACCOUNT_VAULT")
    for suffix in ("", "+TOTP")
)

_F = TypeVar("_F", bound=Callable[..., Any])


class ClientFeatures(NamedTuple):
    cryptpad_server_url: str | None
    openbao: OpenBaoConfig | None
    advisory_device_file_protection: tuple[str, ...]
    scws: ScwsConfig | None

    @classmethod
    def from_options(cls, opts: dict[str, Any]) -> ClientFeatures:
        return cls(
            cryptpad_server_url=opts["cryptpad_server_url"],
            openbao=_openbao(opts),
            advisory_device_file_protection=tuple(opts["advisory_device_file_protection"]),
            scws=_scws(opts),
        )


def client_feature_options(fn: _F) -> _F:
    options = [
        click.option(
            "--cryptpad-server-url",
            envvar="PARSEC_CRYPTPAD_SERVER_URL",
            show_envvar=True,
            metavar="URL",
            help="The CryptPad server clients use to view and edit documents together; without it "
            "server_config says CryptPad is disabled and cryptpad_register_session answers "
            "cryptpad_unavailable.",
        ),
        click.option(
            "--openbao-server-url",
            envvar="PARSEC_OPENBAO_SERVER_URL",
            show_envvar=True,
            metavar="URL",
            help="An OpenBao server where clients may keep the opaque key protecting their device "
            "behind an SSO login (weaker than a keyring or a strong password: the operator's "
            "choice). Needs at least one --openbao-auth-* option.",
        ),
        click.option(
            "--openbao-secret-mount-path",
            envvar="PARSEC_OPENBAO_SECRET_MOUNT_PATH",
            default="secret",
            show_default=True,
            show_envvar=True,
            metavar="MOUNT_PATH",
            help="Mount path of the OpenBao KV2 secrets engine the clients use.",
        ),
        click.option(
            "--openbao-transit-mount-path",
            envvar="PARSEC_OPENBAO_TRANSIT_MOUNT_PATH",
            default="transit",
            show_default=True,
            show_envvar=True,
            metavar="MOUNT_PATH",
            help="Mount path of the OpenBao transit engine the clients use (signing).",
        ),
        click.option(
            "--openbao-auth-pro-connect",
            envvar="PARSEC_OPENBAO_AUTH_PRO_CONNECT_MOUNT_PATH",
            show_envvar=True,
            metavar="MOUNT_PATH",
            help="Mount path of the OpenBao OIDC auth method for ProConnect logins.",
        ),
        click.option(
            "--openbao-auth-hexagone",
            envvar="PARSEC_OPENBAO_AUTH_HEXAGONE_MOUNT_PATH",
            show_envvar=True,
            metavar="MOUNT_PATH",
            help="Mount path of the OpenBao OIDC auth method for Hexagone logins.",
        ),
        click.option(
            "--advisory-device-file-protection",
            envvar="PARSEC_ADVISORY_DEVICE_FILE_PROTECTION",
            multiple=True,
            show_envvar=True,
            metavar="STRATEGY",
            type=click.Choice(ADVISORY_DEVICE_FILE_PROTECTIONS),
            help="A device file protection to recommend to clients (repeat the option, or "
            "space-separate in the variable): PASSWORD, KEYRING, PKI, OPENBAO or ACCOUNT_VAULT, "
            "each alone or with +TOTP. Default: no recommendation.",
        ),
        click.option(
            "--scws-idopte-public-keys-file",
            envvar="PARSEC_SCWS_IDOPTE_PUBLIC_KEYS_FILE",
            show_envvar=True,
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="The IdoptePublicKeys file (PEM public keys, the key id is the position; a key "
            "marked !REVOKED! is refused) to check the SCWS service's challenge signatures. SCWS "
            "is enabled with it and the web application private key.",
        ),
        click.option(
            "--scws-web-application-private-key-file",
            envvar="PARSEC_SCWS_WEB_APPLICATION_PRIVATE_KEY_FILE",
            show_envvar=True,
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="PEM file of the web application's RSA private key, which signs the SCWS "
            "service's challenges.",
        ),
        click.option(
            "--scws-web-application-private-key-content",
            envvar="PARSEC_SCWS_WEB_APPLICATION_PRIVATE_KEY_CONTENT",
            show_envvar=True,
            metavar="PEM",
            help="The same key given as PEM text (prefer the file: a command line is visible to "
            "every local user).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _openbao(opts: dict[str, Any]) -> OpenBaoConfig | None:
    url: str | None = opts["openbao_server_url"]
    if url is None:
        return None
    auths: list[tuple[str, str]] = []
    if opts["openbao_auth_hexagone"] is not None:
        auths.append(("HEXAGONE", opts["openbao_auth_hexagone"]))
    if opts["openbao_auth_pro_connect"] is not None:
        auths.append(("PRO_CONNECT", opts["openbao_auth_pro_connect"]))
    if not auths:
        raise click.UsageError(
            "At least one --openbao-auth-* option is required when --openbao-server-url is provided."
        )
    return OpenBaoConfig(
        server_url=url,
        secret_mount_path=opts["openbao_secret_mount_path"],
        transit_mount_path=opts["openbao_transit_mount_path"],
        auths=tuple(auths),
    )


def _scws(opts: dict[str, Any]) -> ScwsConfig | None:
    keys_file: Path | None = opts["scws_idopte_public_keys_file"]
    key_file: Path | None = opts["scws_web_application_private_key_file"]
    key_content: str | None = opts["scws_web_application_private_key_content"]
    if key_file is not None and key_content is not None:
        raise click.UsageError(
            "Give the SCWS web application private key once: --scws-web-application-private-key-"
            "file or --scws-web-application-private-key-content, not both."
        )
    if keys_file is None and key_file is None and key_content is None:
        return None
    if keys_file is None or (key_file is None and key_content is None):
        raise click.UsageError(
            "SCWS needs both --scws-idopte-public-keys-file and the web application private key "
            "(--scws-web-application-private-key-file or -content)."
        )
    try:
        public_keys = scws.load_idopte_public_keys(keys_file.read_bytes())
        pem = key_file.read_text(encoding="utf-8") if key_file is not None else key_content
        assert pem is not None
        private_key = scws.load_web_application_private_key(pem)
    except scws.ScwsKeyError as exc:
        raise click.UsageError(f"Invalid SCWS configuration: {exc}.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise click.UsageError(
            f"Invalid SCWS configuration: cannot read a key file: {exc}."
        ) from None
    return ScwsConfig(idopte_public_keys=public_keys, web_application_private_key=private_key)
