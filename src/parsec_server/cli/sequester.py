"""`parsec-server sequester ...`: the official server's commands for the sequester services of a
sequestered organization (docs/sequester.md), same names, options and PEM files:

* `generate_service_certificate` / `generate_service_revocation_certificate`: sign a certificate
  with the sequester authority's private key (RSA-PSS-SHA256, the armored format of protocol.md
  §2.3) and write it as a PEM file. Offline: no database.
* `create_service` / `revoke_service` / `list_services`: against the database, with the same back
  end as the administration API (commands/sequester.py); running servers learn the new certificate
  (SEQUESTER_CERTIFICATE event at commit).

`create_service` also takes `--service-type webhook --webhook-url URL` (the official command
declares these options but only creates storage services).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import textwrap
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click
import zstandard
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from parsec_server.asgi.audit import cli_action
from parsec_server.cli.operator import (
    OperatorError,
    backend,
    database_options,
    echo_json,
    organization_option,
    rfc3339,
    run_operator,
)
from parsec_server.exit_codes import Exit
from parsec_server.protocol.codec import now, packb

if TYPE_CHECKING:  # imported where used at run time: `--help` stays quick
    from parsec_server.commands.context import Backend
    from parsec_server.commands.sequester import CreateRefusal, RevokeRefusal
    from parsec_server.crypto.certificates import (
        SequesterRevokedServiceCertificate,
        SequesterServiceCertificate,
    )

    _Certificate = SequesterServiceCertificate | SequesterRevokedServiceCertificate

SERVICE_PEM = "PARSEC SEQUESTER SERVICE CERTIFICATE"
REVOCATION_PEM = "PARSEC SEQUESTER SERVICE REVOCATION CERTIFICATE"
_RSA_HEADER = b"RSASSA-PSS-SHA256:"


@click.group("sequester", help="Sequester services of sequestered organizations.")
def sequester_group() -> None:
    pass


# --- files ---------------------------------------------------------------------------------------


def _read(path: Path, option: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint=option) from None


def _authority_key(path: Path) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(
            _read(path, "--authority-private-key").encode(), password=None
        )
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(
            f"{path} is not an unencrypted PEM private key ({exc})",
            param_hint="--authority-private-key",
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise click.BadParameter(f"{path} is not an RSA key", param_hint="--authority-private-key")
    return key


def _service_public_key(path: Path) -> bytes:
    try:
        key = serialization.load_pem_public_key(_read(path, "--service-public-key").encode())
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(
            f"{path} is not a PEM public key ({exc})", param_hint="--service-public-key"
        ) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise click.BadParameter(f"{path} is not an RSA key", param_hint="--service-public-key")
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def sign(key: rsa.RSAPrivateKey, content: dict[str, Any]) -> bytes:
    """`RSASSA-PSS-SHA256:` || signature || 0x00 || zstd(msgpack(content)), as the official
    SequesterSigningKeyDer.sign (salt of 32 bytes)."""
    serialized = b"\x00" + zstandard.ZstdCompressor().compress(packb(content))
    signature = key.sign(
        serialized, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256()
    )
    return _RSA_HEADER + signature + serialized


def to_pem(label: str, signed: bytes) -> str:
    body = textwrap.wrap(base64.b64encode(signed).decode(), width=64)
    return "\n".join((f"-----BEGIN {label}-----", *body, f"-----END {label}-----", ""))


def from_pem(label: str, text: str, option: str) -> bytes:
    lines = text.strip().splitlines()
    what = f"not a {label.lower()} PEM file"
    if len(lines) < 2 or lines[0].strip() != f"-----BEGIN {label}-----":
        raise click.BadParameter(f"{what}: missing `-----BEGIN {label}-----`", param_hint=option)
    if lines[-1].strip() != f"-----END {label}-----":
        raise click.BadParameter(f"{what}: missing `-----END {label}-----`", param_hint=option)
    try:
        return base64.b64decode("".join(line.strip() for line in lines[1:-1]), validate=True)
    except (ValueError, binascii.Error):
        raise click.BadParameter(f"{what}: invalid base64 body", param_hint=option) from None


def _output_file(
    output: str | None, prefix: str, service_id: uuid.UUID, ts: datetime.datetime
) -> Path:
    path = Path(output) if output else Path.cwd()
    if path.is_dir():
        path = path / f"{prefix}-{service_id.hex}-{rfc3339(ts)}.pem"
    return path


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.BadParameter(f"cannot write {path}: {exc}", param_hint="OUTPUT") from None


def _export(
    authority_private_key: Path,
    content: dict[str, Any],
    pem_label: str,
    output: str | None,
    file_prefix: str,
) -> Path:
    """Sign `content` (its `service_id` and `timestamp` name the file when OUTPUT is a directory)
    with the authority's key and write it as a PEM file: the path written."""
    signed = sign(_authority_key(authority_private_key), content)
    path = _output_file(output, file_prefix, content["service_id"], content["timestamp"])
    _write(path, to_pem(pem_label, signed))
    return path


# --- offline: generate certificates --------------------------------------------------------------

_authority_private_key_option = click.option(
    "--authority-private-key",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM file of the sequester authority's RSA private key (signs the certificate).",
)


@sequester_group.command(
    "generate_service_certificate",
    help="Generate the certificate of a new sequester service: its RSA encryption public key "
    "signed by the sequester authority's private key (the organization's clients will encrypt "
    "workspace keys for it). Written as a PEM file into OUTPUT (a file, or a directory: default "
    "the current one); add it with `create_service` or the administration API. No database.",
)
@click.option("--service-label", required=True, help="New service name")
@click.option(
    "--service-public-key",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM file of the service's RSA encryption public key.",
)
@_authority_private_key_option
@click.argument("output", required=False)
def generate_service_certificate_cmd(
    service_label: str, service_public_key: Path, authority_private_key: Path, output: str | None
) -> None:
    encryption_key_der = _service_public_key(service_public_key)
    service_id, ts = uuid.uuid4(), now()
    content = {
        "type": "sequester_service_certificate",
        "timestamp": ts,
        "service_id": service_id,
        "service_label": service_label,
        "encryption_key_der": encryption_key_der,
    }
    path = _export(
        authority_private_key, content, SERVICE_PEM, output, "sequester_service_certificate"
    )
    click.echo(
        f"Sequester service certificate {service_label} (id: {service_id.hex}, timestamp: "
        f"{rfc3339(ts)}) exported in {path}"
    )
    click.echo("Use `parsec-server sequester create_service` to add it to an organization")


def _parse_service_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(hex=value.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a service id (32 hexadecimal digits)", param_hint="--service-id"
        ) from None


@sequester_group.command(
    "generate_service_revocation_certificate",
    help="Generate the revocation certificate of a sequester service, signed by the sequester "
    "authority's private key, as a PEM file into OUTPUT (a file, or a directory: default the "
    "current one); apply it with `revoke_service` or the administration API. No database.",
)
@click.option("--service-id", required=True, help="The service's id (32 hexadecimal digits).")
@_authority_private_key_option
@click.argument("output", required=False)
def generate_service_revocation_certificate_cmd(
    service_id: str, authority_private_key: Path, output: str | None
) -> None:
    sid, ts = _parse_service_id(service_id), now()
    content = {"type": "sequester_revoked_service_certificate", "timestamp": ts, "service_id": sid}
    path = _export(
        authority_private_key,
        content,
        REVOCATION_PEM,
        output,
        "sequester_service_revocation_certificate",
    )
    click.echo(
        f"Sequester service revocation certificate (service id: {sid.hex}, timestamp: "
        f"{rfc3339(ts)}) exported in {path}"
    )
    click.echo("Use `parsec-server sequester revoke_service` to apply it to an organization")


# --- against the database ------------------------------------------------------------------------

_REFUSALS: dict[str, tuple[str, Exit]] = {
    "organization_not_found": (
        "organization {org!r} not found (or not bootstrapped)",
        Exit.NOT_FOUND,
    ),
    "sequester_disabled": ("organization {org!r} is not sequestered", Exit.REFUSED),
    "invalid_certificate": (
        "the certificate is not signed by the sequester authority of {org!r}, or is malformed",
        Exit.REFUSED,
    ),
    "already_exists": ("the sequester service already exists", Exit.REFUSED),
    "already_revoked": ("the sequester service is already revoked", Exit.REFUSED),
    "service_not_found": ("sequester service not found", Exit.NOT_FOUND),
}


def _refusal(
    action: str, organization: str, refusal: CreateRefusal | RevokeRefusal
) -> OperatorError:
    from parsec_server.commands.sequester import RequireGreaterTimestamp

    if isinstance(refusal, RequireGreaterTimestamp):
        cli_action(action, "require_greater_timestamp", organization=organization)
        return OperatorError(
            "the certificate is older than the organization's last sequester certificate "
            f"({rfc3339(refusal.strictly_greater_than)}): generate a new one",
            Exit.REFUSED,
        )
    cli_action(action, refusal, organization=organization)
    message, code = _REFUSALS[refusal]
    return OperatorError(message.format(org=organization), code)


def _apply(
    db: str | None,
    data_dir: Path | None,
    action: str,
    organization: str,
    apply: Callable[[Backend], Awaitable[_Certificate | CreateRefusal | RevokeRefusal]],
    **audit: str | None,
) -> uuid.UUID:
    """Run `apply` (create or revoke, commands/sequester.py) on the database: the audit line of
    `action` (with `audit`), and the service id, or one error line and the refusal's exit code."""
    from parsec_server.crypto.certificates import (
        SequesterRevokedServiceCertificate,
        SequesterServiceCertificate,
    )

    async def main(url: str) -> uuid.UUID:
        async with backend(url) as be:
            outcome = await apply(be)
        if not isinstance(
            outcome, SequesterServiceCertificate | SequesterRevokedServiceCertificate
        ):
            raise _refusal(action, organization, outcome)
        cli_action(
            action, "ok", organization=organization, service_id=outcome.service_id.hex, **audit
        )
        return outcome.service_id

    return run_operator(db, data_dir, main)


@sequester_group.command(
    "create_service",
    help="Add a sequester service to a sequestered organization from its certificate (made by "
    "`generate_service_certificate`), as the administration API does. The organization's clients "
    "include it from their next workspace key rotation.",
)
@click.option(
    "--service-certificate",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="CERTIFICATE.pem",
    help="PEM file made by `generate_service_certificate`.",
)
@organization_option
@click.option(
    "--service-type",
    type=click.Choice(["storage", "webhook"]),
    default="storage",
    show_default=True,
    help="webhook: the server asks --webhook-url before storing each change (docs/sequester.md).",
)
@click.option("--webhook-url", metavar="URL", help="URL of a webhook service.")
@database_options
def create_service_cmd(
    service_certificate: Path,
    organization: str,
    service_type: Literal["storage", "webhook"],
    webhook_url: str | None,
    db: str | None,
    data_dir: Path | None,
) -> None:
    from parsec_server.commands import sequester as seq_cmds

    if (service_type == "webhook") != (webhook_url is not None):
        raise click.UsageError("--webhook-url goes with --service-type webhook, and only with it")
    signed = from_pem(
        SERVICE_PEM, _read(service_certificate, "--service-certificate"), "--service-certificate"
    )
    config = seq_cmds.ServiceConfig("WEBHOOK" if webhook_url else "STORAGE", webhook_url)
    service_id = _apply(
        db,
        data_dir,
        "sequester_service_create",
        organization,
        lambda be: seq_cmds.create_service(be, organization, signed, config),
        service_type=service_type,
        webhook_url=webhook_url,
    )
    click.echo(f"Service created (id: {service_id.hex})")


@sequester_group.command(
    "revoke_service",
    help="Revoke a sequester service of a sequestered organization from its revocation "
    "certificate (made by `generate_service_revocation_certificate`), as the administration API "
    "does.",
)
@click.option(
    "--service-revocation-certificate",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="CERTIFICATE.pem",
    help="PEM file made by `generate_service_revocation_certificate`.",
)
@organization_option
@database_options
def revoke_service_cmd(
    service_revocation_certificate: Path, organization: str, db: str | None, data_dir: Path | None
) -> None:
    from parsec_server.commands import sequester as seq_cmds

    option = "--service-revocation-certificate"
    signed = from_pem(REVOCATION_PEM, _read(service_revocation_certificate, option), option)
    service_id = _apply(
        db,
        data_dir,
        "sequester_service_revoke",
        organization,
        lambda be: seq_cmds.revoke_service(be, organization, signed),
    )
    click.echo(f"Service revoked (id: {service_id.hex})")


@sequester_group.command(
    "list_services",
    help="List the sequester services of a sequestered organization: active ones first, each "
    "group oldest first.",
)
@organization_option
@click.option("--json", "as_json", is_flag=True, help="Output as JSON")
@database_options
def list_services_cmd(
    organization: str, as_json: bool, db: str | None, data_dir: Path | None
) -> None:
    from parsec_server.commands import sequester as seq_cmds
    from parsec_server.commands.sequester import Service

    async def main(url: str) -> list[Service]:
        async with backend(url) as be:
            services = await seq_cmds.list_services(be, organization)
        if isinstance(services, str):
            message, code = _REFUSALS[services]
            raise OperatorError(message.format(org=organization), code)
        return services

    services = run_operator(db, data_dir, main)
    ordered = [s for s in services if s.revoked_on is None] + [
        s for s in services if s.revoked_on is not None
    ]
    if as_json:
        echo_json(
            [
                {
                    "service_id": s.service_id.hex,
                    "service_label": s.label,
                    "created_on": rfc3339(s.created_on),
                    "revoked_on": rfc3339(s.revoked_on),
                    "type": s.service_type.lower(),
                    "webhook_url": s.webhook_url,
                }
                for s in ordered
            ]
        )
        return
    click.echo(f"Found {len(services)} sequester service(s)")
    for s in ordered:
        click.echo()
        click.echo(f"Service {s.label} (id: {s.service_id.hex})")
        click.echo(f"\tCreated on: {rfc3339(s.created_on)}")
        click.echo(f"\tService type: {s.service_type.lower()}")
        if s.webhook_url is not None:
            click.echo(f"\tWebhook endpoint URL {s.webhook_url}")
        if s.revoked_on is not None:
            click.echo(f"\tRevoked on: {rfc3339(s.revoked_on)}")
