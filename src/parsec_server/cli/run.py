"""`parsec-server run`: serve the Parsec API."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import secrets
import signal
import socket
import ssl
import sys
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from parsec_server.asgi.proxy import TrustedProxies
from parsec_server.cli import allocator
from parsec_server.cli.client_features import ClientFeatures, client_feature_options
from parsec_server.cli.dbtarget import database_target, fail
from parsec_server.cli.httpproto import guarded_protocol
from parsec_server.cli.options import data_dir_option, db_option, log_options, parse_blockstore
from parsec_server.config import (
    ACCOUNT_MODES,
    DEFAULT_BLOCKSTORE_TIMEOUT,
    DEFAULT_HOST,
    DEFAULT_KEEP_ALIVE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_REQUEST_HEAD_SIZE,
    DEFAULT_MAX_REQUEST_HEADERS,
    DEFAULT_PORT,
    DEFAULT_REQUEST_HEAD_TIMEOUT,
    DEFAULT_SSE_KEEPALIVE,
    DEFAULT_WEBHOOK_TIMEOUT,
    AccountConfig,
    EmailConfig,
    HttpLimits,
    ServerConfig,
    TlsConfig,
)
from parsec_server.crypto.pki import TrustAnchorError, load_trust_anchors
from parsec_server.email.render import TemplateDirError, check_template_dir
from parsec_server.embedded_pg import default_data_dir
from parsec_server.exit_codes import Exit
from parsec_server.log import configure as configure_logging
from parsec_server.log import get_logger
from parsec_server.protocol.addr import ServerAddr

if TYPE_CHECKING:
    import asyncpg

log = get_logger("parsec_server.run")


def _account_config(opts: dict[str, Any], admin_token: str) -> AccountConfig:
    """`--account-config`, `--validation-email-rate-limit`, `--fake-account-password-algorithm-seed`
    (negative rate-limit values count as 0, as for the official server)."""
    cooldown, per_hour = opts["validation_email_rate_limit"]
    seed_text = opts["fake_account_password_algorithm_seed"] or f"admin-token:{admin_token}"
    seed = hashlib.blake2b(
        b"fake_account_password_algorithm_seed" + seed_text.encode(), digest_size=32
    ).digest()
    return AccountConfig(
        mode=opts["account_config"],
        validation_email_cooldown=max(cooldown, 0),
        validation_email_max_per_hour=max(per_hour, 0),
        fake_password_algorithm_seed=seed,
    )


def _parse_tos(value: str | None) -> dict[str, str] | None:
    if not value:
        return None
    out: dict[str, str] = {}
    for item in value.replace("\\,", "\x00").split(","):
        locale, sep, url = item.replace("\x00", ",").partition(":")
        if not sep or not locale or not url:
            raise click.BadParameter(
                "expected <locale>:<url>[,<locale>:<url>...]",
                param_hint="--organization-initial-tos",
            )
        out[locale.strip()] = url.strip()
    return out


@click.command("run", help="Run the server (on the embedded PostgreSQL when --db is not given).")
@click.option(
    "--host",
    "-H",
    envvar="PARSEC_HOST",
    default=DEFAULT_HOST,
    show_default=True,
    show_envvar=True,
    help="Address to listen on.",
)
@click.option(
    "--port",
    "-P",
    envvar="PARSEC_PORT",
    default=DEFAULT_PORT,
    show_default=True,
    show_envvar=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on.",
)
@db_option()
@data_dir_option()
@click.option(
    "--db-min-connections",
    envvar="PARSEC_DB_MIN_CONNECTIONS",
    default=2,
    show_default=True,
    show_envvar=True,
    type=click.IntRange(1),
    help="Minimum size of the database connection pool.",
)
@click.option(
    "--db-max-connections",
    envvar="PARSEC_DB_MAX_CONNECTIONS",
    default=10,
    show_default=True,
    show_envvar=True,
    type=click.IntRange(2),
    help="Maximum size of the database connection pool.",
)
@click.option(
    "--blockstore",
    "-b",
    envvar="PARSEC_BLOCKSTORE",
    multiple=True,
    show_envvar=True,
    help="Where blocks are stored: POSTGRESQL (default: in the --db database), "
    "s3:[<endpoint_url>]:<region>:<bucket>:<key>:<secret> (escape ':' in the endpoint as '\\:'), "
    "or RAID0|RAID1|RAID5:<node>:<config> repeated for each node.",
)
@click.option(
    "--blockstore-timeout",
    envvar="PARSEC_BLOCKSTORE_TIMEOUT",
    default=DEFAULT_BLOCKSTORE_TIMEOUT,
    show_default=True,
    show_envvar=True,
    type=click.FloatRange(0, min_open=True),
    help="Seconds one blockstore operation may take in all (connection, transfer and retries, "
    "every node of a RAID group) before the request answers store_unavailable; also bounds the "
    "start-up check of an S3 bucket.",
)
@click.option(
    "--administration-token",
    envvar="PARSEC_ADMINISTRATION_TOKEN",
    show_envvar=True,
    help="Secret bearer token of the administration API (e.g. `openssl rand -hex 32`). Required with "
    "--db (or --administration-token-file); on the embedded default one is generated and kept in "
    "the data directory. On the command line it is readable by every local user (ps): prefer the "
    "file or the environment variable.",
)
@click.option(
    "--administration-token-file",
    envvar="PARSEC_ADMINISTRATION_TOKEN_FILE",
    show_envvar=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the administration token from this file (its first line; e.g. a Docker secret) "
    "instead of --administration-token.",
)
@click.option(
    "--server-addr",
    envvar="PARSEC_SERVER_ADDR",
    show_envvar=True,
    help="Public address of this server, parsec3://host[:port][?no_ssl=true], used in invitation "
    "links and /redirect [default: parsec3://<host>:<port>?no_ssl=true].",
)
@click.option(
    "--sse-keepalive",
    envvar="PARSEC_SSE_KEEPALIVE",
    default=DEFAULT_SSE_KEEPALIVE,
    show_default=True,
    show_envvar=True,
    type=int,
    help="Seconds of silence before a keepalive on event streams (<= 0: none).",
)
@click.option(
    "--max-request-head-size",
    envvar="PARSEC_MAX_REQUEST_HEAD_SIZE",
    default=DEFAULT_MAX_REQUEST_HEAD_SIZE,
    show_default=True,
    show_envvar=True,
    type=click.IntRange(1024),
    help="Bytes a request line and its headers may take in all: beyond, the request is answered "
    "431 and the connection closed (a URL over 8 KiB: 414; one header over 16 KiB: 431).",
)
@click.option(
    "--max-request-headers",
    envvar="PARSEC_MAX_REQUEST_HEADERS",
    default=DEFAULT_MAX_REQUEST_HEADERS,
    show_default=True,
    show_envvar=True,
    type=click.IntRange(1),
    help="Headers a request may have: beyond, 431 and the connection closed.",
)
@click.option(
    "--request-head-timeout",
    envvar="PARSEC_REQUEST_HEAD_TIMEOUT",
    default=DEFAULT_REQUEST_HEAD_TIMEOUT,
    show_default=True,
    show_envvar=True,
    type=click.FloatRange(0, min_open=True),
    help="Seconds a new connection, or a request once its first byte arrived, has to send its "
    "complete request line and headers; then the connection is closed (408 when a part came). "
    "Does not apply to bodies nor to responses (event streams).",
)
@click.option(
    "--keep-alive-timeout",
    envvar="PARSEC_KEEP_ALIVE_TIMEOUT",
    default=DEFAULT_KEEP_ALIVE_TIMEOUT,
    show_default=True,
    show_envvar=True,
    type=click.FloatRange(0, min_open=True),
    help="Seconds an idle connection is kept open after a response, waiting for another request.",
)
@click.option(
    "--max-connections",
    envvar="PARSEC_MAX_CONNECTIONS",
    default=DEFAULT_MAX_CONNECTIONS,
    show_default=True,
    show_envvar=True,
    type=click.IntRange(1),
    help="Open connections per server process (event streams included): beyond, a new connection "
    "is answered 503 and closed (one warning per episode). Lowered, with a warning, to what the "
    "process's open file limit allows.",
)
@click.option(
    "--spontaneous-organization-bootstrap",
    envvar="PARSEC_SPONTANEOUS_ORGANIZATION_BOOTSTRAP",
    is_flag=True,
    show_envvar=True,
    help="Let anybody bootstrap an organization not created beforehand.",
)
@click.option(
    "--organization-bootstrap-webhook",
    envvar="PARSEC_ORGANIZATION_BOOTSTRAP_WEBHOOK",
    show_envvar=True,
    metavar="URL",
    help="URL told of each organization bootstrap: an HTTP POST with a JSON body (organization_id, "
    "device_id, device_label, human_email, human_label), after the bootstrap is stored; a failure "
    "is logged and the bootstrap still succeeds (docs/sequester.md).",
)
@click.option(
    "--webhook-timeout",
    envvar="PARSEC_WEBHOOK_TIMEOUT",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_WEBHOOK_TIMEOUT,
    show_default=True,
    show_envvar=True,
    help="Seconds one webhook call (sequester service of webhook type, bootstrap webhook) may take "
    "in all; a sequester service that has not answered by then makes the write fail with "
    "sequester_service_unavailable.",
)
@click.option(
    "--organization-initial-active-users-limit",
    envvar="PARSEC_ORGANIZATION_INITIAL_ACTIVE_USERS_LIMIT",
    type=click.IntRange(0),
    show_envvar=True,
    help="Active users limit of new organizations [default: none].",
)
@click.option(
    "--organization-initial-user-profile-outsider-allowed",
    envvar="PARSEC_ORGANIZATION_INITIAL_USER_PROFILE_OUTSIDER_ALLOWED",
    type=bool,
    default=True,
    show_default=True,
    show_envvar=True,
    help="Whether new organizations allow the OUTSIDER profile.",
)
@click.option(
    "--organization-initial-realm-deletion-min-archiving-period",
    envvar="PARSEC_ORGANIZATION_INITIAL_REALM_DELETION_MIN_ARCHIVING_PERIOD",
    type=click.IntRange(0),
    default=2592000,
    show_default=True,
    show_envvar=True,
    help="Seconds a realm must stay archived before its deletion date, for new organizations.",
)
@click.option(
    "--organization-initial-tos",
    envvar="PARSEC_ORGANIZATION_INITIAL_TOS",
    show_envvar=True,
    help="Terms of service of new organizations: <locale>:<url>[,<locale>:<url>...].",
)
@click.option(
    "--email-host",
    envvar="PARSEC_EMAIL_HOST",
    show_envvar=True,
    help="SMTP server for the e-mails (invitations, TOTP resets, account validation codes) "
    "[default: none: emails are not sent; invitations asking for one answer "
    "email_sent=SERVER_UNAVAILABLE].",
)
@click.option(
    "--email-port",
    envvar="PARSEC_EMAIL_PORT",
    default=25,
    show_default=True,
    show_envvar=True,
    type=click.IntRange(1, 65535),
    help="SMTP port.",
)
@click.option(
    "--email-host-user", envvar="PARSEC_EMAIL_HOST_USER", show_envvar=True, help="SMTP user."
)
@click.option(
    "--email-host-password",
    envvar="PARSEC_EMAIL_HOST_PASSWORD",
    show_envvar=True,
    help="SMTP password.",
)
@click.option(
    "--email-use-ssl",
    envvar="PARSEC_EMAIL_USE_SSL",
    is_flag=True,
    show_envvar=True,
    help="Connect to the SMTP server over TLS (implicit TLS).",
)
@click.option(
    "--email-use-tls",
    envvar="PARSEC_EMAIL_USE_TLS",
    is_flag=True,
    show_envvar=True,
    help="Upgrade the SMTP connection with STARTTLS.",
)
@click.option(
    "--email-sender",
    envvar="PARSEC_EMAIL_SENDER",
    default="no-reply@parsec.invalid",
    show_default=True,
    show_envvar=True,
    help="From address of the emails.",
)
@click.option(
    "--account-config",
    envvar="PARSEC_ACCOUNT_CONFIG",
    type=click.Choice(ACCOUNT_MODES),
    default="DISABLED",
    show_default=True,
    show_envvar=True,
    help="What server_config announces about Parsec accounts: DISABLED, ENABLED_WITHOUT_VAULT "
    "(accounts, no sensitive data in the vault, advisory) or ENABLED_WITH_VAULT. The account "
    "commands are served in every case, as by the official server (docs/accounts.md).",
)
@click.option(
    "--validation-email-rate-limit",
    envvar="PARSEC_VALIDATION_EMAIL_RATE_LIMIT",
    type=(int, int),
    default=(60, 3),
    show_default=True,
    show_envvar=True,
    metavar="<MIN_DELAY_SECONDS MAX_EMAILS_PER_HOUR>",
    help="Account validation e-mails: seconds between two e-mails to one address or for one client "
    "IP address, and at most this many per sliding hour (0: no limit). Beyond: "
    "email_sending_rate_limited.",
)
@click.option(
    "--fake-account-password-algorithm-seed",
    envvar="PARSEC_FAKE_ACCOUNT_PASSWORD_ALGORITHM_SEED",
    show_envvar=True,
    help="Secret behind the password algorithm answered for an unknown e-mail (API 5.5 has no "
    "salt: the answer is the client default whatever the seed, as on the official server; set it "
    "once, the same on every process, e.g. `openssl rand -hex 32`) [default: derived from the "
    "administration token].",
)
@click.option(
    "--template-dir",
    envvar="PARSEC_TEMPLATE_DIR",
    show_envvar=True,
    type=click.Path(exists=True, file_okay=False, dir_okay=True, path_type=Path),
    help="Operator e-mail templates overriding the built-in ones: DIR/email/<name>.j2 (Jinja2, the "
    "official server's names and variables: invitation.txt.j2, invitation.html.j2, "
    "totp_reset.txt.j2...); a template the directory lacks stays built-in (docs/configuration.md).",
)
@click.option(
    "--graceful-shutdown-timeout",
    envvar="PARSEC_GRACEFUL_SHUTDOWN_TIMEOUT",
    default=10.0,
    show_default=True,
    show_envvar=True,
    type=click.FloatRange(0),
    help="Seconds in-flight requests get to finish on SIGTERM/Ctrl-C.",
)
@log_options
@click.option(
    "--access-log",
    envvar="PARSEC_ACCESS_LOG",
    is_flag=True,
    show_envvar=True,
    help="Log one `access` line per request (method, path, status, duration, command).",
)
@click.option(
    "--metrics",
    envvar="PARSEC_METRICS",
    is_flag=True,
    show_envvar=True,
    help="Serve Prometheus metrics at GET /metrics on the server port (no authentication: "
    "keep /metrics away from the public side of the reverse proxy).",
)
@click.option(
    "--maximum-database-connection-attempts",
    envvar="PARSEC_MAXIMUM_DATABASE_CONNECTION_ATTEMPTS",
    default=0,
    show_default=True,
    show_envvar=True,
    type=click.IntRange(0),
    help="Attempts at connecting to the database at start, after the first one fails (0: fail "
    "at once; the official server's default is 10).",
)
@click.option(
    "--pause-before-retry-database-connection",
    envvar="PARSEC_PAUSE_BEFORE_RETRY_DATABASE_CONNECTION",
    default=1.0,
    show_default=True,
    show_envvar=True,
    type=click.FloatRange(0),
    help="Seconds between two attempts at connecting to the database at start.",
)
@click.option(
    "--proxy-trusted-addresses",
    envvar="PARSEC_PROXY_TRUSTED_ADDRESSES",
    show_envvar=True,
    help="Comma-separated IP addresses, IP networks or literals to trust with proxy headers "
    "(X-Forwarded-Proto/Host/For), `*` for every peer. Default: the FORWARDED_ALLOW_IPS "
    "variable, else 127.0.0.1 only.",
)
@click.option(
    "--ssl-keyfile",
    envvar="PARSEC_SSL_KEYFILE",
    show_envvar=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="TLS private key file (PEM): the server speaks HTTPS itself (with --ssl-certfile).",
)
@click.option(
    "--ssl-certfile",
    envvar="PARSEC_SSL_CERTFILE",
    show_envvar=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="TLS certificate file (PEM, chain included): serve HTTPS (with --ssl-keyfile).",
)
@click.option(
    "--ssl-ciphers",
    envvar="PARSEC_SSL_CIPHERS",
    default="TLSv1",
    show_default=True,
    show_envvar=True,
    help="TLS cipher suites, an OpenSSL cipher list with `,` as separator.",
)
@click.option(
    "--cors-allow-origins",
    envvar="PARSEC_CORS_ALLOW_ORIGINS",
    multiple=True,
    show_envvar=True,
    help="An origin allowed by CORS, e.g. https://app.example.com (repeat the option, or "
    "space-separate in the variable), `*` for any. Default: none (no CORS headers).",
)
@client_feature_options
@click.option(
    "--trusted-x509-root-dir",
    envvar="PARSEC_TRUSTED_X509_ROOT_DIR",
    multiple=True,
    show_envvar=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A directory of PEM X.509 root certificates (read recursively; repeat the option, or "
    "`:`-separate in the variable) trusted for asynchronous enrollment: the PKI chains submitted "
    "must end at one of them. Not TLS. Default: none (chain structure checked only, as the "
    "official server).",
)
@click.option(
    "--debug",
    envvar="PARSEC_DEBUG",
    is_flag=True,
    show_envvar=True,
    help="Check every reply against the protocol schema and log more details.",
)
def run_cmd(**opts: Any) -> None:
    configure_logging(opts["log_level"], opts["log_format"])
    try:
        blockstore = replace(
            parse_blockstore(opts["blockstore"]), timeout=opts["blockstore_timeout"]
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--blockstore") from None
    tos = _parse_tos(opts["organization_initial_tos"])
    admin_token = _administration_token(opts)
    if opts["db"] and not admin_token:
        raise click.UsageError(
            "Missing option '--administration-token' (env var: 'PARSEC_ADMINISTRATION_TOKEN') or "
            "'--administration-token-file' (env var: 'PARSEC_ADMINISTRATION_TOKEN_FILE'): "
            "required with --db."
        )
    if opts["db"] and opts["data_dir"]:
        raise click.UsageError(
            "--data-dir is for the embedded PostgreSQL: do not combine it with --db."
        )
    server_addr = opts["server_addr"] or f"parsec3://{opts['host']}:{opts['port']}?no_ssl=true"
    try:  # e-mails, /redirect and TOTP reset links are built from it: checked once, here
        ServerAddr.parse(server_addr)
    except ValueError as exc:
        raise click.BadParameter(
            f"{exc} (expected parsec3://host[:port][?no_ssl=true])", param_hint="--server-addr"
        ) from None
    if opts["db_min_connections"] > opts["db_max_connections"]:
        raise click.BadParameter(
            "must not exceed --db-max-connections", param_hint="--db-min-connections"
        )

    tls = _tls_config(opts)
    x509_roots = _trusted_x509_root_dirs(opts["trusted_x509_root_dir"])
    features = ClientFeatures.from_options(opts)  # SCWS keys are loaded (checked) here
    proxies = _proxy_trusted_addresses(opts["proxy_trusted_addresses"])
    if opts["template_dir"] is not None:
        try:
            check_template_dir(opts["template_dir"])
        except TemplateDirError as exc:
            raise click.BadParameter(str(exc), param_hint="--template-dir") from None

    sock = _listen(opts["host"], opts["port"])  # before anything starts: a port in use fails here
    with database_target(opts["db"], opts["data_dir"]) as target:
        token = admin_token
        if target.embedded is not None and not token:
            token = _embedded_token(target.embedded.data_dir)
        assert token is not None  # checked above: --db needs a token, embedded runs make one
        config = ServerConfig(
            db_url=target.url,
            administration_token=token,
            server_addr=server_addr,
            blockstore=blockstore,
            host=opts["host"],
            port=opts["port"],
            debug=opts["debug"],
            sse_keepalive=opts["sse_keepalive"] if opts["sse_keepalive"] > 0 else None,
            db_min_connections=opts["db_min_connections"],
            db_max_connections=opts["db_max_connections"],
            spontaneous_organization_bootstrap=opts["spontaneous_organization_bootstrap"],
            organization_initial_active_users_limit=opts["organization_initial_active_users_limit"],
            organization_initial_user_profile_outsider_allowed=opts[
                "organization_initial_user_profile_outsider_allowed"
            ],
            organization_initial_minimum_archiving_period=opts[
                "organization_initial_realm_deletion_min_archiving_period"
            ],
            organization_initial_tos=tos,
            email=EmailConfig(
                host=opts["email_host"],
                port=opts["email_port"],
                user=opts["email_host_user"],
                password=opts["email_host_password"],
                use_ssl=opts["email_use_ssl"],
                use_tls=opts["email_use_tls"],
                sender=opts["email_sender"],
                template_dir=opts["template_dir"],
            ),
            account=_account_config(opts, token),
            data_dir=target.embedded.data_dir if target.embedded else None,
            validate_replies=opts["debug"] or os.environ.get("PARSEC_VALIDATE_REPLIES") == "1",
            http=HttpLimits(
                max_request_head_size=opts["max_request_head_size"],
                max_request_headers=opts["max_request_headers"],
                request_head_timeout=opts["request_head_timeout"],
                keep_alive_timeout=opts["keep_alive_timeout"],
                max_connections=_connection_cap(opts["max_connections"]),
            ),
            metrics=opts["metrics"],
            access_log=opts["access_log"],
            tls=tls,
            cors_allow_origins=tuple(opts["cors_allow_origins"]),
            proxy_trusted_addresses=proxies,
            trusted_x509_root_dirs=x509_roots,
            cryptpad_server_url=features.cryptpad_server_url,
            openbao=features.openbao,
            advisory_device_file_protection=features.advisory_device_file_protection,
            scws=features.scws,
            organization_bootstrap_webhook=opts["organization_bootstrap_webhook"] or None,
            webhook_timeout=opts["webhook_timeout"],
        )
        code = _serve(
            config,
            brand_new=target.brand_new,
            embedded=target.embedded is not None,
            graceful=opts["graceful_shutdown_timeout"],
            sock=sock,
            db_retries=(
                opts["maximum_database_connection_attempts"],
                opts["pause_before_retry_database_connection"],
            ),
        )
    sys.exit(code)


def _tls_config(opts: dict[str, Any]) -> TlsConfig | None:
    """--ssl-keyfile/--ssl-certfile/--ssl-ciphers, checked by loading them now: a wrong file or
    cipher list is one line and exit code 2 rather than a failure inside uvicorn."""
    keyfile: Path | None = opts["ssl_keyfile"]
    certfile: Path | None = opts["ssl_certfile"]
    if keyfile is None and certfile is None:
        return None
    if keyfile is None or certfile is None:
        raise click.UsageError("--ssl-keyfile and --ssl-certfile go together: give both.")
    ciphers = ":".join(c.strip() for c in opts["ssl_ciphers"].split(",") if c.strip())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise click.BadParameter(
            f"cannot load {certfile} with {keyfile}: {reason}", param_hint="--ssl-certfile"
        ) from None
    try:
        context.set_ciphers(ciphers)
    except ssl.SSLError:
        raise click.BadParameter(
            f"no usable cipher in {opts['ssl_ciphers']!r}", param_hint="--ssl-ciphers"
        ) from None
    return TlsConfig(keyfile=keyfile, certfile=certfile, ciphers=ciphers)


def _trusted_x509_root_dirs(dirs: tuple[Path, ...]) -> tuple[Path, ...]:
    """--trusted-x509-root-dir, checked by loading every certificate now (one line, exit 2)."""
    try:
        load_trust_anchors(dirs)
    except (TrustAnchorError, OSError) as exc:
        raise click.BadParameter(str(exc), param_hint="--trusted-x509-root-dir") from None
    return dirs


def _proxy_trusted_addresses(value: str | None) -> tuple[str, ...]:
    """The option, else FORWARDED_ALLOW_IPS (as uvicorn/gunicorn, and the official server), else
    127.0.0.1."""
    text = value if value is not None else os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
    try:
        return TrustedProxies.parse(text).entries
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--proxy-trusted-addresses") from None


def _administration_token(opts: dict[str, Any]) -> str | None:
    """The token of --administration-token or --administration-token-file (a warning when it is
    on the command line, where every local user can read it)."""
    token: str | None = opts["administration_token"]
    path: Path | None = opts["administration_token_file"]
    if token and path is not None:
        raise click.UsageError(
            "--administration-token and --administration-token-file exclude each other: give one."
        )
    if path is not None:
        try:
            token = path.read_text(encoding="utf-8").split("\n", 1)[0].strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise click.BadParameter(
                f"cannot read {path}: {reason}", param_hint="--administration-token-file"
            ) from None
        if not token:
            raise click.BadParameter(
                f"{path} holds no token (its first line is empty)",
                param_hint="--administration-token-file",
            )
        return token
    ctx = click.get_current_context()
    if token and ctx.get_parameter_source("administration_token") == ParameterSource.COMMANDLINE:
        log.warning(
            "administration_token_on_command_line",
            detail="every local user can read it in the process list: use "
            "--administration-token-file or PARSEC_ADMINISTRATION_TOKEN instead",
        )
    return token


# File descriptors kept for everything but client connections (database pool, object store,
# log and data files).
_FD_RESERVE = 128


def _connection_cap(wanted: int) -> int:
    """--max-connections, lowered to what RLIMIT_NOFILE allows (raising the soft limit first):
    past the file limit, accept() itself would fail, in a loop, with nobody answered."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = wanted + _FD_RESERVE
        if soft != resource.RLIM_INFINITY and soft < need:
            target = need if hard == resource.RLIM_INFINITY else min(need, hard)
            if target > soft:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
        if soft != resource.RLIM_INFINITY and soft < need:
            allowed = max(1, soft - _FD_RESERVE)
            log.warning(
                "max_connections_lowered",
                wanted=wanted,
                allowed=allowed,
                detail=f"the open file limit is {soft} (raise it with ulimit -n)",
            )
            return allowed
    except (ImportError, ValueError, OSError):  # pragma: no cover - no resource module / refused
        pass
    return wanted


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here rather than by uvicorn so that a port in use is one
    `error:` line and exit code 12 (uvicorn would log and exit with 1 or 3 itself)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            fail(
                f"port {port} on {host} is already in use (another server listens there): stop "
                "it, or choose another --port",
                Exit.SERVER_ERROR,
            )
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", Exit.SERVER_ERROR)
    return sock


def _embedded_token(data_dir: Path) -> str:
    path = data_dir / "administration-token"
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop()


async def _connect_with_retries(url: str, retries: int, pause: float) -> asyncpg.Connection:
    """The start-up connection, tried again `retries` times `pause` seconds apart while the
    database cannot be reached (--maximum-database-connection-attempts, e.g. a PostgreSQL that
    starts with the server); the last failure propagates (DatabaseUnavailable: exit 6)."""
    from parsec_server.storage import db as dbmod

    attempt = 0
    while True:
        try:
            return await dbmod.connect(url)
        except dbmod.DatabaseUnavailable as exc:
            if attempt >= retries:
                raise
            attempt += 1
            log.warning(
                "database_connection_retry",
                attempt=attempt,
                attempts=retries,
                pause=pause,
                error=str(exc),
            )
            await asyncio.sleep(pause)


def _serve(
    config: ServerConfig,
    *,
    brand_new: bool,
    embedded: bool,
    graceful: float,
    sock: socket.socket,
    db_retries: tuple[int, float] = (0, 1.0),
) -> int:
    runner: Callable[[Coroutine[Any, Any, int]], int]
    allocator.tune()  # block-sized buffers reused rather than fresh pages (cli/allocator.py)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    # uvicorn re-raises the signal that stopped it once it is done: make that a clean exception for
    # SIGTERM too, so that the embedded PostgreSQL is always stopped on the way out.
    signal.signal(signal.SIGTERM, _raise_stop)
    try:
        return runner(
            _async_serve(
                config,
                brand_new=brand_new,
                embedded=embedded,
                graceful=graceful,
                sock=sock,
                db_retries=db_retries,
            )
        )
    except (_Stop, KeyboardInterrupt):
        return 0


async def _async_serve(
    config: ServerConfig,
    *,
    brand_new: bool,
    embedded: bool,
    graceful: float,
    sock: socket.socket,
    db_retries: tuple[int, float] = (0, 1.0),
) -> int:
    import uvicorn

    from parsec_server.asgi.app import build_app
    from parsec_server.cli.migrate import exit_code_for
    from parsec_server.storage import db as dbmod
    from parsec_server.storage.migrations import engine

    # Hidden, for tests and experiments (as `migrate --migrations-dir`): another set of migration files,
    # e.g. only those of an earlier release, to play "the server at release N".
    source = os.environ.get("PARSEC_MIGRATIONS_DIR") or None
    try:
        if brand_new:
            log.info("embedded_database_created", action="applying all migrations")
            await engine.apply_all(config.db_url, source=source)
        conn = await _connect_with_retries(config.db_url, *db_retries)
        try:
            warnings = await engine.check_for_serving(conn, source=source)
        finally:
            await conn.close()
    except dbmod.DatabaseUnavailable as exc:
        fail(str(exc), Exit.CANNOT_CONNECT)
    except engine.MigrationError as exc:
        fail(str(exc), exit_code_for(exc))
    for w in warnings:
        log.warning("schema_warning", detail=w)  # `message` is reserved by logging.LogRecord

    app = build_app(config)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            lifespan="on",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=graceful,  # type: ignore[arg-type]  # seconds, float at run time
            http=guarded_protocol(config.http),
            ssl_keyfile=config.tls.keyfile if config.tls else None,
            ssl_certfile=config.tls.certfile if config.tls else None,
            ssl_ciphers=config.tls.ciphers if config.tls else "TLSv1",
            ws="none",
            timeout_keep_alive=config.http.keep_alive_timeout,  # type: ignore[arg-type]
            loop="none",
            # Per-request work nobody uses: our own log line replaces the access log; a Date
            # header is not part of the protocol; proxy headers are handled by the app itself,
            # host and scheme included (asgi/proxy.py, --proxy-trusted-addresses).
            date_header=False,
            proxy_headers=False,
        )
    )
    original = server.handle_exit

    def handle_exit(sig: int, frame: Any) -> None:
        app.shutting_down.set()  # event streams end at once instead of holding the shutdown
        original(sig, frame)

    server.handle_exit = handle_exit  # type: ignore[method-assign]

    async def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.02)
        url = f"{'https' if config.tls else 'http'}://{config.host}:{config.port}"
        click.echo(f"parsec-server listening on {url}")
        click.echo(f"server address: {config.server_addr}")
        if embedded:
            click.echo(f"embedded PostgreSQL: {config.data_dir}")
            click.echo(f"administration token: {config.administration_token}")
        click.echo("press Ctrl-C to stop")

    announcer = asyncio.create_task(announce())
    await server.serve(sockets=[sock])
    announcer.cancel()
    if not server.started:
        click.echo(
            f"error: the server could not start on {config.host}:{config.port} (see the log above)",
            err=True,
        )
        return Exit.SERVER_ERROR
    click.echo("parsec-server stopped")
    return 0


__all__ = ["default_data_dir", "run_cmd"]
