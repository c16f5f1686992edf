"""Server configuration: one immutable object built by the CLI (options and PARSEC_* variables)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

DEFAULT_PORT = 6777
DEFAULT_HOST = "127.0.0.1"
DEFAULT_SSE_KEEPALIVE = 30
DEFAULT_MIN_ARCHIVING_PERIOD = 2592000  # 30 days, in seconds (protocol.md §6.5)
# Bounds of the HTTP connections (cli/httpproto.py, docs/configuration.md "HTTP connection limits").
DEFAULT_MAX_REQUEST_HEAD_SIZE = 64 * 1024  # bytes of request line + headers (431 beyond)
DEFAULT_MAX_REQUEST_HEADERS = 100  # headers per request (431 beyond)
DEFAULT_REQUEST_HEAD_TIMEOUT = 10.0  # seconds to send a complete request head (then closed)
DEFAULT_KEEP_ALIVE_TIMEOUT = 5.0  # seconds an idle keep-alive connection stays open
DEFAULT_MAX_CONNECTIONS = 4096  # open connections per process (event streams included)
# Seconds one blockstore operation (connect, transfer, retries included) may take in all before the
# request answers `store_unavailable` (`--blockstore-timeout`, docs/configuration.md).
DEFAULT_BLOCKSTORE_TIMEOUT = 5.0
# Seconds one outgoing webhook call (sequester service, organization bootstrap) may take in all
# (`--webhook-timeout`, docs/sequester.md).
DEFAULT_WEBHOOK_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class BlockstoreConfig:
    """`kind` is POSTGRESQL or S3; RAID levels group several stores (protocol.md §6.2)."""

    kind: str  # "POSTGRESQL" | "S3" | "RAID0" | "RAID1" | "RAID5"
    s3_endpoint: str | None = None
    s3_region: str = ""
    s3_bucket: str = ""
    s3_key: str = field(default="", repr=False)
    s3_secret: str = field(default="", repr=False)
    nodes: tuple[BlockstoreConfig, ...] = ()
    # Whole-operation bound of the store (of the group, for RAID: its nodes get the same one).
    timeout: float = DEFAULT_BLOCKSTORE_TIMEOUT

    def describe(self) -> str:
        if self.kind == "S3":
            return f"S3({self.s3_endpoint or 'aws'}/{self.s3_bucket})"
        if self.nodes:
            return f"{self.kind}[{', '.join(n.describe() for n in self.nodes)}]"
        return self.kind


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Bounds of the HTTP connections of one process (`run` options, docs/configuration.md)."""

    max_request_head_size: int = DEFAULT_MAX_REQUEST_HEAD_SIZE
    max_request_headers: int = DEFAULT_MAX_REQUEST_HEADERS
    request_head_timeout: float = DEFAULT_REQUEST_HEAD_TIMEOUT
    keep_alive_timeout: float = DEFAULT_KEEP_ALIVE_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """`--ssl-keyfile`/`--ssl-certfile`/`--ssl-ciphers`: the server speaks HTTPS itself."""

    keyfile: Path
    certfile: Path
    ciphers: str = "TLSv1"  # OpenSSL cipher list (`:`-separated), uvicorn's default


@dataclass(frozen=True, slots=True)
class EmailConfig:
    host: str | None = None  # None: emails are not sent (reported as SERVER_UNAVAILABLE)
    port: int = 25
    user: str | None = None
    password: str | None = None
    use_ssl: bool = False
    use_tls: bool = False
    sender: str = "no-reply@parsec.invalid"
    # `--template-dir`: operator e-mail templates (`email/<name>.j2`, official layout) overriding the
    # built-in ones (email/render.py); None: built-in only.
    template_dir: Path | None = None


AccountMode = Literal["DISABLED", "ENABLED_WITHOUT_VAULT", "ENABLED_WITH_VAULT"]
ACCOUNT_MODES: tuple[AccountMode, ...] = ("DISABLED", "ENABLED_WITHOUT_VAULT", "ENABLED_WITH_VAULT")


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """Parsec accounts (docs/accounts.md): `--account-config`, `--validation-email-rate-limit`,
    `--fake-account-password-algorithm-seed`. `mode` is only what server_config announces: the
    account commands are served whatever it is, as the official server does."""

    mode: AccountMode = "DISABLED"
    # Seconds between two validation e-mails to one address or from one client IP (0: none) ...
    validation_email_cooldown: int = 60
    # ... and at most this many in a sliding hour (0: no limit).
    validation_email_max_per_hour: int = 3
    fake_password_algorithm_seed: bytes = field(default=b"", repr=False)


@dataclass(frozen=True, slots=True)
class OpenBaoConfig:
    """`--openbao-server-url` and `--openbao-*`: the OpenBao server that clients may use to keep the
    opaque key protecting their device behind an SSO login (server_config `openbao`, docs/scws.md)."""

    server_url: str
    secret_mount_path: str = "secret"  # KV2 secrets engine
    transit_mount_path: str = "transit"  # transit engine (signing)
    # (auth id, mount path): HEXAGONE then PRO_CONNECT, as the official server lists them
    auths: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ScwsConfig:
    """`--scws-idopte-public-keys-file` + `--scws-web-application-private-key-file|-content`:
    scws_service_mutual_challenges (commands/scws.py, docs/scws.md). A key id is the index of a
    public key in the Idopte file; a revoked key (`!REVOKED!`) keeps its index as None."""

    idopte_public_keys: tuple[RSAPublicKey | None, ...]
    web_application_private_key: RSAPrivateKey = field(repr=False)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    db_url: str
    administration_token: str
    server_addr: str  # parsec3://host[:port][?no_ssl=true], used in emails and /redirect
    blockstore: BlockstoreConfig = field(default_factory=lambda: BlockstoreConfig("POSTGRESQL"))
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    debug: bool = False
    sse_keepalive: int | None = DEFAULT_SSE_KEEPALIVE  # None or <= 0 disables keepalives
    db_min_connections: int = 2
    db_max_connections: int = 10
    spontaneous_organization_bootstrap: bool = False
    organization_initial_active_users_limit: int | None = None
    organization_initial_user_profile_outsider_allowed: bool = True
    organization_initial_minimum_archiving_period: int = DEFAULT_MIN_ARCHIVING_PERIOD
    organization_initial_tos: dict[str, str] | None = None
    email: EmailConfig = field(default_factory=EmailConfig)
    account: AccountConfig = field(default_factory=AccountConfig)
    data_dir: Path | None = None  # embedded PostgreSQL only
    validate_replies: bool = False  # check every reply against the protocol schema (tests, --debug)
    http: HttpLimits = field(default_factory=HttpLimits)
    metrics: bool = False  # serve Prometheus metrics at GET /metrics (docs/observability.md)
    access_log: bool = False  # one `access` log line per request (docs/observability.md)
    tls: TlsConfig | None = None  # None: plain HTTP (TLS ends at a reverse proxy, or nowhere)
    # Origins allowed by CORS (`--cors-allow-origins`, "*" for any); empty: no CORS headers at all.
    cors_allow_origins: tuple[str, ...] = ()
    # Peers whose X-Forwarded-Proto/Host/For are honoured (`--proxy-trusted-addresses`): IP
    # addresses, networks, literals, or "*" (asgi/proxy.py).
    proxy_trusted_addresses: tuple[str, ...] = ("127.0.0.1",)
    # `--organization-bootstrap-webhook`: URL told of each organization bootstrap (None: none).
    organization_bootstrap_webhook: str | None = None
    # `--webhook-timeout`: bound of one webhook call (sequester services, bootstrap webhook).
    webhook_timeout: float = DEFAULT_WEBHOOK_TIMEOUT
    # `--trusted-x509-root-dir`: directories of PEM root certificates; when given, the X.509
    # chains of asynchronous enrollment must end at one of them (crypto/pki.py).
    trusted_x509_root_dirs: tuple[Path, ...] = ()
    # What server_config tells clients (docs/scws.md): `--cryptpad-server-url` (None: CryptPad
    # disabled, cryptpad_register_session answers cryptpad_unavailable), `--openbao-*`,
    # `--advisory-device-file-protection` (strategies, as given); and SCWS (None: not_available).
    cryptpad_server_url: str | None = None
    openbao: OpenBaoConfig | None = None
    advisory_device_file_protection: tuple[str, ...] = ()
    scws: ScwsConfig | None = None

    def redacted(self) -> dict[str, object]:
        """What the start-up log line shows: never the token or passwords."""
        return {
            "host": self.host,
            "port": self.port,
            "db": _redact_url(self.db_url),
            "blockstore": self.blockstore.describe(),
            "server_addr": self.server_addr,
            "debug": self.debug,
            "sse_keepalive": self.sse_keepalive,
            "db_connections": f"{self.db_min_connections}..{self.db_max_connections}",
            "email_host": self.email.host,
            "account": self.account.mode,
            "metrics": self.metrics,
            "access_log": self.access_log,
            "tls": self.tls is not None,
            "cors_allow_origins": list(self.cors_allow_origins),
            "proxy_trusted_addresses": list(self.proxy_trusted_addresses),
            "http_limits": (
                f"head<={self.http.max_request_head_size}B/{self.http.max_request_headers} headers "
                f"in {self.http.request_head_timeout}s, keep-alive {self.http.keep_alive_timeout}s, "
                f"<={self.http.max_connections} connections"
            ),
        }


def _redact_url(url: str) -> str:
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}{':***' if ':' in creds else ''}@{host}"
