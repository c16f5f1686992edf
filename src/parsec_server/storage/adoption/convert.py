"""Adoption, stage 2: convert an official Parsec server 3.9 database into parsec-server's schema, in
place, in ONE transaction (docs/dev/adoption.md).

1. every official table and ENUM type moves into schema OFFICIAL_SCHEMA (never dropped, except
   `block_data`, which becomes ours: the block contents are not copied);
2. our migrations run (their statements, CONCURRENTLY dropped: the tables are empty and nobody else
   sees them before the commit), and their history rows are written;
3. our foreign keys are set aside, every target table is filled by one set-based
   `INSERT ... SELECT` from the official tables (the server streams it: memory does not grow with
   the database), then the foreign keys come back (each validated by one scan);
4. identity sequences are set past the copied ids; ANALYZE.

A kill -9 (or any error) rolls everything back: the database is the official one again and a rerun
starts over. The caller holds the migration lock and has taken the backup.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from parsec_server.crypto.certificates import (
    InvalidCertificate,
    SequesterServiceCertificate,
    unsecure_load,
)
from parsec_server.storage.adoption.official_schema import OFFICIAL_ENUM_TYPES, OFFICIAL_SCHEMA
from parsec_server.storage.migrations import history
from parsec_server.storage.migrations.source import Migration

Emit = Callable[[dict[str, Any]], None]


class AdoptionError(Exception):
    """The conversion failed (rolled back): one readable sentence."""


@dataclass(frozen=True, slots=True)
class Step:
    target: str  # our table (progress line); a step whose table our schema lacks is skipped
    source: str  # the official table read (for the line)
    sql: str  # `{o}` is the official schema


@dataclass(frozen=True, slots=True)
class AdoptionResult:
    rows: dict[str, int]  # rows written per target table
    duration_s: float


# --- conversion statements (one per target table; `{o}` = the official schema) -------------------

_ORGANIZATION = """
INSERT INTO organization (id, organization_id, created_on, bootstrap_token, bootstrapped_on,
    root_verify_key, sequester_authority_verify_key_der, is_expired, expired_on,
    user_profile_outsider_allowed, active_users_limit,
    realm_minimum_archiving_period_before_deletion, tos_updated_on, tos_per_locale_urls)
SELECT _id, organization_id, _created_on,
    CASE WHEN bootstrap_token IS NOT NULL THEN decode(bootstrap_token, 'hex') END,
    CASE WHEN root_verify_key IS NOT NULL THEN COALESCE(_bootstrapped_on, _created_on) END,
    root_verify_key, sequester_authority_verify_key_der, is_expired, _expired_on,
    user_profile_outsider_allowed, active_users_limit,
    realm_minimum_archiving_period_before_deletion, tos_updated_on, tos_per_locale_urls::jsonb
FROM {o}.organization ORDER BY _id
"""

_STEPS: tuple[Step, ...] = (
    Step("organization", "organization", _ORGANIZATION),
    Step(
        "topic_common",
        "common_topic",
        """
INSERT INTO topic_common (organization, last_timestamp)
SELECT o._id, COALESCE(t.last_timestamp, '1970-01-01T00:00:00Z'::timestamptz)
FROM {o}.organization o LEFT JOIN {o}.common_topic t ON t.organization = o._id
""",
    ),
    Step(
        "topic_sequester",
        "sequester_topic",
        "INSERT INTO topic_sequester (organization, last_timestamp)"
        " SELECT organization, last_timestamp FROM {o}.sequester_topic",
    ),
    Step(
        "topic_shamir_recovery",
        "shamir_recovery_topic",
        "INSERT INTO topic_shamir_recovery (organization, last_timestamp)"
        " SELECT organization, last_timestamp FROM {o}.shamir_recovery_topic",
    ),
    # encryption_key_der is only in the service certificate: filled by _fill_sequester_keys
    Step(
        "sequester_service",
        "sequester_service",
        """
INSERT INTO sequester_service (id, organization, service_id, service_label, encryption_key_der,
    created_on, revoked_on, service_type, webhook_url)
SELECT _id, organization, service_id, service_label, ''::bytea, created_on, revoked_on,
    service_type::text, webhook_url
FROM {o}.sequester_service ORDER BY _id
""",
    ),
    Step(
        "human",
        "human",
        "INSERT INTO human (id, organization, email, label)"
        " SELECT _id, organization, email, label FROM {o}.human ORDER BY _id",
    ),
    Step(
        "user_",
        "user_",
        """
INSERT INTO user_ (id, organization, user_id, human, initial_profile, current_profile, created_on,
    created_by, revoked_on, revoked_by, frozen, tos_accepted_on)
SELECT _id, organization, user_id, human, initial_profile::text, current_profile::text, created_on,
    user_certifier, revoked_on, CASE WHEN revoked_on IS NOT NULL THEN revoked_user_certifier END,
    frozen, tos_accepted_on
FROM {o}.user_ ORDER BY _id
""",
    ),
    Step(
        "device",
        "device",
        """
INSERT INTO device (id, organization, user_, device_id, device_label, purpose, verify_key,
    created_on, created_by)
SELECT _id, organization, user_, device_id, device_label, 'STANDARD', verify_key, created_on,
    device_certifier
FROM {o}.device ORDER BY _id
""",
    ),
    Step(
        "user_profile_update",
        "profile",
        "INSERT INTO user_profile_update (id, user_, profile, certified_on, certified_by)"
        " SELECT _id, user_, profile::text, certified_on, certified_by FROM {o}.profile"
        " ORDER BY _id",
    ),
    Step(
        "shamir_recovery_setup",
        "shamir_recovery_setup",
        """
INSERT INTO shamir_recovery_setup (id, organization, user_, created_on, created_by, threshold,
    total_shares, ciphered_data, reveal_token, deleted_on, deleted_by)
SELECT s._id, s.organization, s.user_, s.created_on, d.first_device, s.threshold, s.shares,
    COALESCE(s.ciphered_data, ''::bytea), decode(s.reveal_token, 'hex'), s.deleted_on,
    CASE WHEN s.deleted_on IS NOT NULL THEN d.first_device END
FROM {o}.shamir_recovery_setup s
CROSS JOIN LATERAL (
    SELECT _id AS first_device FROM {o}.device WHERE user_ = s.user_ ORDER BY created_on, _id
    LIMIT 1
) d
ORDER BY s._id
""",
    ),
    Step(
        "shamir_recovery_share",
        "shamir_recovery_share",
        "INSERT INTO shamir_recovery_share (id, setup, recipient, shares)"
        " SELECT _id, shamir_recovery, recipient, shares FROM {o}.shamir_recovery_share"
        " ORDER BY _id",
    ),
    Step(
        "invitation",
        "invitation",
        """
INSERT INTO invitation (id, organization, token, type, created_on, created_by_device,
    created_by_service_label, claimer_email, claimer_user, shamir_recovery_setup, deleted_on,
    deleted_reason)
SELECT i._id, i.organization, decode(i.token, 'hex'), i.type::text, i.created_on,
    i.created_by_device, CASE WHEN i.created_by_device IS NULL THEN i.created_by_service_label END,
    CASE WHEN i.type = 'USER' THEN i.user_invitation_claimer_email END,
    CASE WHEN i.type <> 'USER' THEN COALESCE(i.device_invitation_claimer, s.user_) END,
    CASE WHEN i.type = 'SHAMIR_RECOVERY' THEN i.shamir_recovery END,
    i.deleted_on,
    CASE WHEN i.deleted_on IS NULL THEN NULL
        WHEN i.deleted_reason = 'FINISHED' THEN 'FINISHED' ELSE 'CANCELLED' END
FROM {o}.invitation i LEFT JOIN {o}.shamir_recovery_setup s ON s._id = i.shamir_recovery
ORDER BY i._id
""",
    ),
    Step(
        "greeting_session",
        "greeting_session",
        "INSERT INTO greeting_session (id, invitation, greeter)"
        " SELECT _id, invitation, greeter FROM {o}.greeting_session ORDER BY _id",
    ),
    Step(
        "greeting_attempt",
        "greeting_attempt",
        """
INSERT INTO greeting_attempt (id, greeting_attempt_id, session, created_on, greeter_joined_on,
    claimer_joined_on, cancelled_on, cancelled_by, cancelled_reason)
SELECT a._id, a.greeting_attempt_id, a.greeting_session,
    COALESCE(LEAST(a.greeter_joined, a.claimer_joined), i.created_on),
    a.greeter_joined, a.claimer_joined, a.cancelled_on, a.cancelled_by::text,
    a.cancelled_reason::text
FROM {o}.greeting_attempt a
JOIN {o}.greeting_session gs ON gs._id = a.greeting_session
JOIN {o}.invitation i ON i._id = gs.invitation
ORDER BY a._id
""",
    ),
    Step(
        "greeting_step",
        "greeting_step",
        "INSERT INTO greeting_step (attempt, step, greeter_data, claimer_data)"
        " SELECT greeting_attempt, step, greeter_data, claimer_data FROM {o}.greeting_step",
    ),
    Step(
        "realm",
        "realm",
        """
INSERT INTO realm (id, organization, realm_id, created_on, created_by, key_index, status,
    deletion_date, deleted_on, vlob_checkpoint, last_vlob_timestamp, vlob_bytes)
SELECT r._id, r.organization, r.realm_id, r.created_on, f.certified_by, r.key_index,
    CASE r.status WHEN 'AVAILABLE' THEN 'AVAILABLE' WHEN 'DELETED' THEN 'DELETED'
        ELSE COALESCE(a.configuration::text, 'ARCHIVED') END,
    CASE WHEN r.status = 'ARCHIVED_OR_DELETION_PLANNED'
        AND a.configuration = 'DELETION_PLANNED' THEN a.deletion_date END,
    CASE WHEN r.status = 'DELETED' THEN now() END,
    COALESCE(c.checkpoint, 0), v.last_vlob_timestamp, COALESCE(v.vlob_bytes, 0)
FROM {o}.realm r
LEFT JOIN LATERAL (
    SELECT certified_by FROM {o}.realm_user_role WHERE realm = r._id
    ORDER BY certified_on, _id LIMIT 1
) f ON TRUE
LEFT JOIN LATERAL (
    SELECT configuration, deletion_date FROM {o}.realm_archiving WHERE realm = r._id
    ORDER BY certified_on DESC, _id DESC LIMIT 1
) a ON TRUE
LEFT JOIN LATERAL (
    SELECT max(index) AS checkpoint FROM {o}.realm_vlob_update WHERE realm = r._id
) c ON TRUE
LEFT JOIN (
    SELECT realm, max(created_on) AS last_vlob_timestamp, sum(size)::bigint AS vlob_bytes
    FROM {o}.vlob_atom GROUP BY realm
) v ON v.realm = r._id
ORDER BY r._id
""",
    ),
    Step(
        "topic_realm",
        "realm_topic",
        "INSERT INTO topic_realm (realm, last_timestamp)"
        " SELECT realm, last_timestamp FROM {o}.realm_topic",
    ),
    Step(
        "realm_user_role",
        "realm_user_role",
        "INSERT INTO realm_user_role (id, realm, user_, role, certified_on, certified_by)"
        " SELECT _id, realm, user_, role::text, certified_on, certified_by"
        " FROM {o}.realm_user_role ORDER BY _id",
    ),
    Step(
        "realm_member",
        "realm_user_role",
        """
INSERT INTO realm_member (realm, user_, role, role_certified_on)
SELECT DISTINCT ON (realm, user_) realm, user_, role::text, certified_on
FROM {o}.realm_user_role ORDER BY realm, user_, certified_on DESC, _id DESC
""",
    ),
    Step(
        "realm_archiving",
        "realm_archiving",
        """
INSERT INTO realm_archiving (id, realm, configuration, deletion_date, certified_on, certified_by)
SELECT _id, realm, configuration::text,
    CASE WHEN configuration = 'DELETION_PLANNED' THEN deletion_date END, certified_on, certified_by
FROM {o}.realm_archiving ORDER BY _id
""",
    ),
    Step(
        "realm_name",
        "realm_name",
        """
INSERT INTO realm_name (id, realm, key_index, certified_on, certified_by)
SELECT n._id, n.realm, COALESCE((
    SELECT max(k.key_index) FROM {o}.realm_keys_bundle k
    WHERE k.realm = n.realm AND k.certified_on <= n.certified_on
), r.key_index), n.certified_on, n.certified_by
FROM {o}.realm_name n JOIN {o}.realm r ON r._id = n.realm
ORDER BY n._id
""",
    ),
    Step(
        "realm_keys_bundle",
        "realm_keys_bundle",
        """
INSERT INTO realm_keys_bundle (id, realm, key_index, certified_on, certified_by, key_canary,
    keys_bundle)
SELECT _id, realm, key_index, certified_on, certified_by, key_canary,
    NULLIF(keys_bundle, ''::bytea)
FROM {o}.realm_keys_bundle ORDER BY _id
""",
    ),
    Step(
        "realm_keys_bundle_access",
        "realm_keys_bundle_access",
        "INSERT INTO realm_keys_bundle_access (id, realm_keys_bundle, user_, access, from_sharing)"
        " SELECT _id, realm_keys_bundle, user_, access, from_sharing"
        " FROM {o}.realm_keys_bundle_access ORDER BY _id",
    ),
    Step(
        "realm_sequester_keys_bundle_access",
        "realm_sequester_keys_bundle_access",
        "INSERT INTO realm_sequester_keys_bundle_access (realm_keys_bundle, sequester_service,"
        " access) SELECT realm_keys_bundle, sequester_service, access"
        " FROM {o}.realm_sequester_keys_bundle_access",
    ),
    Step(
        "vlob_atom",
        "vlob_atom",
        """
INSERT INTO vlob_atom (id, realm, vlob_id, version, key_index, author, created_on, size, blob)
SELECT _id, realm, vlob_id, version, key_index, author, created_on, size, blob
FROM {o}.vlob_atom
""",
    ),
    Step(
        "realm_vlob_update",
        "realm_vlob_update",
        """
INSERT INTO realm_vlob_update (realm, checkpoint, vlob_id, version)
SELECT u.realm, u.index, v.vlob_id, v.version
FROM {o}.realm_vlob_update u JOIN {o}.vlob_atom v ON v._id = u.vlob_atom
""",
    ),
    Step(
        "block",
        "block",
        """
INSERT INTO block (id, organization, realm, block_id, author, key_index, size, created_on)
SELECT b._id, r.organization, b.realm, b.block_id, b.author, b.key_index, b.size, b.created_on
FROM {o}.block b JOIN {o}.realm r ON r._id = b.realm
""",
    ),
    # The block totals organization_info reads (our migration 0008), one slot per realm.
    Step(
        "realm_block_usage",
        "block",
        """
INSERT INTO realm_block_usage (realm, slot, bytes)
SELECT realm, 0, sum(size)::bigint FROM {o}.block GROUP BY realm
""",
    ),
    # TOTP (our migration 0005): the official server keeps the setup in user_ columns; the reset
    # token (hex) is kept by us as the SHA-256 of its 16 bytes.
    Step(
        "user_totp",
        "user_ (totp_* columns)",
        """
INSERT INTO user_totp (user_, secret, setup_completed, reset_token_sha256)
SELECT _id, totp_secret, totp_setup_completed,
    CASE WHEN totp_reset_token IS NOT NULL AND NOT totp_setup_completed
        THEN sha256(decode(totp_reset_token, 'hex')) END
FROM {o}.user_
WHERE totp_setup_completed OR totp_secret IS NOT NULL OR totp_reset_token IS NOT NULL
""",
    ),
    Step(
        "user_totp_opaque_key",
        "totp_opaque_key",
        """
INSERT INTO user_totp_opaque_key (id, user_, opaque_key_id, opaque_key, failed_attempts,
    last_failed_attempt)
SELECT _id, user_, opaque_key_id, opaque_key, failed_attempts,
    CASE WHEN failed_attempts > 0 THEN COALESCE(last_failed_attempt, now()) END
FROM {o}.totp_opaque_key ORDER BY _id
""",
    ),
    # Accounts (our migration 0004). The official server keeps no creation time for an account or
    # a vault: the first authentication method's, else the adoption's.
    Step(
        "account",
        "account",
        """
INSERT INTO account (id, email, human_label, created_on, deleted_on)
SELECT a._id, a.email, a.human_handle_label, COALESCE((
    SELECT min(m.created_on) FROM {o}.vault v
    JOIN {o}.vault_authentication_method m ON m.vault = v._id WHERE v.account = a._id
), now()), a.deleted_on
FROM {o}.account a ORDER BY a._id
""",
    ),
    Step(
        "account_vault",
        "vault",
        """
INSERT INTO account_vault (id, account, created_on)
SELECT v._id, v.account, COALESCE((
    SELECT min(created_on) FROM {o}.vault_authentication_method WHERE vault = v._id
), now())
FROM {o}.vault v ORDER BY v._id
""",
    ),
    Step(
        "account_vault_item",
        "vault_item",
        "INSERT INTO account_vault_item (vault, fingerprint, data)"
        " SELECT vault, fingerprint, data FROM {o}.vault_item",
    ),
    Step(
        "account_auth_method",
        "vault_authentication_method",
        """
INSERT INTO account_auth_method (id, auth_method_id, vault, created_on, created_by_ip,
    created_by_user_agent, mac_key, vault_key_access, password_algorithm, disabled_on)
SELECT _id, auth_method_id, vault, created_on, created_by_ip, created_by_user_agent, mac_key,
    vault_key_access,
    CASE WHEN password_algorithm IS NOT NULL THEN jsonb_build_object(
        'type', password_algorithm::text,
        'memlimit_kb', password_algorithm_argon2id_memlimit_kb,
        'opslimit', password_algorithm_argon2id_opslimit,
        'parallelism', password_algorithm_argon2id_parallelism) END,
    disabled_on
FROM {o}.vault_authentication_method ORDER BY _id
""",
    ),
    Step(
        "account_validation_code",
        "account_*_validation_code",
        """
INSERT INTO account_validation_code (purpose, email, code, created_on, failed_attempts)
SELECT DISTINCT ON (purpose, email) purpose, email, code, created_on, failed_attempts FROM (
    SELECT 'CREATE' AS purpose, email::text AS email, validation_code AS code,
        created_at AS created_on, COALESCE(failed_attempts, 0) AS failed_attempts
    FROM {o}.account_create_validation_code
    UNION ALL
    SELECT 'RECOVER', a.email, c.validation_code, c.created_at, COALESCE(c.failed_attempts, 0)
    FROM {o}.account_recover_validation_code c JOIN {o}.account a ON a._id = c.account
    UNION ALL
    SELECT 'DELETE', a.email, c.validation_code, c.created_at, COALESCE(c.failed_attempts, 0)
    FROM {o}.account_delete_validation_code c JOIN {o}.account a ON a._id = c.account
) AS codes
ORDER BY purpose, email, created_on DESC
""",
    ),
    # Asynchronous enrollment (our migration 0006). The official server links each signature's
    # author certificate to the shared pki_x509_certificate table, each certificate to its issuer
    # by `parent`; ours keeps each chain as an array, leaf first then the issuers in order.
    Step(
        "async_enrollment",
        "async_enrollment",
        """
WITH RECURSIVE chain (enrollment, side, depth, fingerprint, der) AS (
    SELECT e._id, s.side, 0, c.sha256_fingerprint, c.der_content
    FROM {o}.async_enrollment e
    CROSS JOIN LATERAL (VALUES
        ('submit', e.submit_payload_signature_pki_author_x509_certificate),
        ('accept', e.accept_payload_signature_pki_author_x509_certificate)
    ) AS s (side, author)
    JOIN {o}.pki_x509_certificate c ON c.sha256_fingerprint = s.author
    UNION ALL
    SELECT ch.enrollment, ch.side, ch.depth + 1, p.sha256_fingerprint, p.der_content
    FROM chain ch
    JOIN {o}.pki_x509_certificate cur ON cur.sha256_fingerprint = ch.fingerprint
    JOIN {o}.pki_x509_certificate p ON p.sha256_fingerprint = cur.parent
    WHERE ch.depth < 64 AND p.sha256_fingerprint <> cur.sha256_fingerprint
),
chains AS (
    SELECT enrollment, side, array_agg(der ORDER BY depth) AS x509_chain
    FROM chain GROUP BY enrollment, side
)
INSERT INTO async_enrollment (id, organization, enrollment_id, state, submitted_on, submit_payload,
    requested_email, submit_signature_type, submit_pki_signature, submit_pki_algorithm,
    submit_pki_x509_chain, submit_openbao_signature, submit_openbao_entity_id, accepted_on,
    accept_payload, accept_signature_type, accept_pki_signature, accept_pki_algorithm,
    accept_pki_x509_chain, accept_openbao_signature, accept_openbao_entity_id, rejected_on,
    cancelled_on)
SELECT e._id, e.organization, e.enrollment_id, e.state::text, e.submitted_on, e.submit_payload,
    e.submit_payload_requested_human_handle_email,
    CASE e.submit_payload_signature_type WHEN 'OPENBAO' THEN 'OPEN_BAO' ELSE 'PKI' END,
    e.submit_payload_signature_pki_signature, e.submit_payload_signature_pki_algorithm::text,
    sc.x509_chain, e.submit_payload_signature_openbao_signature,
    e.submit_payload_signature_openbao_author_entity_id, e.accepted_on, e.accept_payload,
    CASE e.accept_payload_signature_type WHEN 'OPENBAO' THEN 'OPEN_BAO'
        WHEN 'PKI' THEN 'PKI' END,
    e.accept_payload_signature_pki_signature, e.accept_payload_signature_pki_algorithm::text,
    ac.x509_chain, e.accept_payload_signature_openbao_signature,
    e.accept_payload_signature_openbao_author_entity_id, e.rejected_on, e.cancelled_on
FROM {o}.async_enrollment e
LEFT JOIN chains sc ON sc.enrollment = e._id AND sc.side = 'submit'
LEFT JOIN chains ac ON ac.enrollment = e._id AND ac.side = 'accept'
ORDER BY e._id
""",
    ),
    # Every certificate into `certificate`, in topic order (timestamp, then a user certificate
    # before the device certificate of the same timestamp, as our writers do).
    Step(
        "certificate",
        "(certificate columns)",
        """
INSERT INTO certificate (organization, topic, realm, certified_on, priority, kind, certificate,
    redacted_certificate, shamir_recovery_setup, shamir_recipient)
SELECT organization, topic, realm, certified_on, priority, kind, certificate,
    redacted_certificate, setup, recipient
FROM (
    SELECT organization, 'common' AS topic, NULL::bigint AS realm, created_on AS certified_on,
        0 AS priority, 'user_certificate' AS kind, user_certificate AS certificate,
        redacted_user_certificate AS redacted_certificate, NULL::bigint AS setup,
        NULL::bigint AS recipient, 1 AS source, _id
    FROM {o}.user_
    UNION ALL
    SELECT organization, 'common', NULL, created_on, 1, 'device_certificate', device_certificate,
        redacted_device_certificate, NULL, NULL, 2, _id
    FROM {o}.device
    UNION ALL
    SELECT organization, 'common', NULL, revoked_on, 1, 'revoked_user_certificate',
        revoked_user_certificate, NULL, NULL, NULL, 3, _id
    FROM {o}.user_ WHERE revoked_user_certificate IS NOT NULL
    UNION ALL
    SELECT u.organization, 'common', NULL, p.certified_on, 1, 'user_update_certificate',
        p.profile_certificate, NULL, NULL, NULL, 4, p._id
    FROM {o}.profile p JOIN {o}.user_ u ON u._id = p.user_
    UNION ALL
    SELECT o._id, 'sequester', NULL, COALESCE((
        SELECT min(u.created_on) FROM {o}.user_ u
        WHERE u.organization = o._id AND u.user_certifier IS NULL
    ), o._bootstrapped_on), 0, 'sequester_authority_certificate',
        o.sequester_authority_certificate, NULL, NULL, NULL, 5, o._id
    FROM {o}.organization o WHERE o.sequester_authority_certificate IS NOT NULL
    UNION ALL
    SELECT organization, 'sequester', NULL, created_on, 0, 'sequester_service_certificate',
        service_certificate, NULL, NULL, NULL, 6, _id
    FROM {o}.sequester_service
    UNION ALL
    SELECT organization, 'sequester', NULL, revoked_on, 0,
        'sequester_revoked_service_certificate', sequester_revoked_service_certificate, NULL,
        NULL, NULL, 7, _id
    FROM {o}.sequester_service
    WHERE revoked_on IS NOT NULL AND sequester_revoked_service_certificate IS NOT NULL
    UNION ALL
    SELECT organization, 'shamir_recovery', NULL, created_on, 0,
        'shamir_recovery_brief_certificate', brief_certificate, NULL, _id, NULL, 8, _id
    FROM {o}.shamir_recovery_setup
    UNION ALL
    SELECT sh.organization, 'shamir_recovery', NULL, s.created_on, 1,
        'shamir_recovery_share_certificate', sh.share_certificate, NULL, s._id, sh.recipient, 9,
        sh._id
    FROM {o}.shamir_recovery_share sh JOIN {o}.shamir_recovery_setup s ON s._id = sh.shamir_recovery
    UNION ALL
    SELECT organization, 'shamir_recovery', NULL, deleted_on, 0,
        'shamir_recovery_deletion_certificate', deletion_certificate, NULL, _id, NULL, 10, _id
    FROM {o}.shamir_recovery_setup
    WHERE deleted_on IS NOT NULL AND deletion_certificate IS NOT NULL
    UNION ALL
    SELECT r.organization, 'realm', x.realm, x.certified_on, 0, 'realm_role_certificate',
        x.certificate, NULL, NULL, NULL, 11, x._id
    FROM {o}.realm_user_role x JOIN {o}.realm r ON r._id = x.realm
    UNION ALL
    SELECT r.organization, 'realm', x.realm, x.certified_on, 0, 'realm_key_rotation_certificate',
        x.realm_key_rotation_certificate, NULL, NULL, NULL, 12, x._id
    FROM {o}.realm_keys_bundle x JOIN {o}.realm r ON r._id = x.realm
    UNION ALL
    SELECT r.organization, 'realm', x.realm, x.certified_on, 0, 'realm_name_certificate',
        x.realm_name_certificate, NULL, NULL, NULL, 13, x._id
    FROM {o}.realm_name x JOIN {o}.realm r ON r._id = x.realm
    UNION ALL
    SELECT r.organization, 'realm', x.realm, x.certified_on, 0, 'realm_archiving_certificate',
        x.certificate, NULL, NULL, NULL, 14, x._id
    FROM {o}.realm_archiving x JOIN {o}.realm r ON r._id = x.realm
) AS c
ORDER BY certified_on, priority, source, _id
""",
    ),
)


# --- steps around the conversion -----------------------------------------------------------------


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_CONCURRENTLY = re.compile(r"\bCONCURRENTLY\b", re.IGNORECASE)


def _in_transaction(statement: Any) -> str:
    """A migration statement made runnable inside the adoption's transaction (on empty tables,
    an index built CONCURRENTLY and a plain one are the same)."""
    text: str = statement.text
    if "CONCURRENTLY" in statement.words:
        m = _CONCURRENTLY.search(statement.code)
        if m is not None:
            text = text[: m.start()] + text[m.end() :]
    return text


async def _move_official(conn: asyncpg.Connection, schema: str) -> list[str]:
    """Every table and ENUM type of `public` into `schema`; returns the tables moved."""
    await conn.execute(f"CREATE SCHEMA {_ident(schema)}")
    tables = [
        r["name"]
        for r in await conn.fetch(
            "SELECT c.relname::text AS name FROM pg_class c"
            " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')"
            " ORDER BY 1"
        )
    ]
    for name in tables:
        await conn.execute(f"ALTER TABLE public.{_ident(name)} SET SCHEMA {_ident(schema)}")
    types = [
        r["name"]
        for r in await conn.fetch(
            "SELECT typname::text AS name FROM pg_type"
            " WHERE typnamespace = 'public'::regnamespace AND typtype = 'e' ORDER BY 1"
        )
    ]
    for name in types:
        if name in OFFICIAL_ENUM_TYPES:
            await conn.execute(f"ALTER TYPE public.{_ident(name)} SET SCHEMA {_ident(schema)}")
    return tables


async def _apply_ours(
    conn: asyncpg.Connection, migrations: Sequence[Migration], emit: Emit
) -> None:
    await conn.execute(history.DDL)
    for m in migrations:
        started = time.monotonic()
        for statement in m.statements():
            await conn.execute(_in_transaction(statement))
        ms = int((time.monotonic() - started) * 1000)
        await history.record_applied(conn, m, duration_ms=ms, attempts=1)
        await history.event(conn, "apply", m, adoption=True, duration_ms=ms)
        emit(
            {
                "event": "migration",
                "name": m.filename,
                "state": "applied",
                "duration_ms": ms,
                "lineage": "parsec-server",
            }
        )


async def _set_aside_foreign_keys(conn: asyncpg.Connection) -> list[tuple[str, str, str]]:
    """Drop our foreign keys for the bulk load (they come back, validated, by _restore)."""
    rows = await conn.fetch(
        "SELECT c.conname::text AS name, t.relname::text AS tbl,"
        " pg_get_constraintdef(c.oid) AS def"
        " FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid"
        " WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace"
        " ORDER BY t.relname, c.conname"
    )
    fks = [(r["tbl"], r["name"], r["def"]) for r in rows]
    for table, name, _ in fks:
        await conn.execute(f"ALTER TABLE public.{_ident(table)} DROP CONSTRAINT {_ident(name)}")
    return fks


async def _restore_foreign_keys(
    conn: asyncpg.Connection, fks: list[tuple[str, str, str]], emit: Emit
) -> None:
    started = time.monotonic()
    for table, name, definition in fks:
        try:
            await conn.execute(
                f"ALTER TABLE public.{_ident(table)} ADD CONSTRAINT {_ident(name)} {definition}"
            )
        except asyncpg.ForeignKeyViolationError as exc:
            raise AdoptionError(
                f"the official data breaks a reference parsec-server requires ({table}.{name}): "
                f"{exc.detail or exc}"
            ) from None
    emit(
        {
            "event": "adoption_step",
            "table": "(foreign keys)",
            "source": "",
            "rows": len(fks),
            "duration_ms": int((time.monotonic() - started) * 1000),
        }
    )


async def _with_heartbeat(
    work: Coroutine[Any, Any, str], step: Step, every: float, emit: Emit
) -> str:
    """Await `work`, emitting a `heartbeat` event every `every` seconds while it runs."""
    task = asyncio.ensure_future(work)
    started = time.monotonic()
    while True:
        done, _ = await asyncio.wait({task}, timeout=every)
        if done:
            return task.result()
        emit(
            {
                "event": "heartbeat",
                "name": f"{step.target} <- {step.source}",
                "elapsed_s": time.monotonic() - started,
            }
        )


async def _refuse_shared_block_ids(conn: asyncpg.Connection, schema: str) -> None:
    """The official server keeps block ids unique per realm, ours per organization (our 0003: the
    blockstores key data by organization and block id, so a second realm's block would share the
    first one's data). Say so, with the count, rather than fail on the unique index."""
    o = _ident(schema)
    row = await conn.fetchrow(
        f"SELECT count(*) AS ids, COALESCE(sum(n), 0) AS rows_ FROM ("
        f" SELECT count(*) AS n FROM {o}.block b JOIN {o}.realm r ON r._id = b.realm"
        f" GROUP BY r.organization, b.block_id HAVING count(*) > 1) AS dup"
    )
    if row is not None and row["ids"]:
        raise AdoptionError(
            f"{row['ids']} block id(s) are registered in more than one realm of their organization "
            f"({row['rows_']} block rows), which parsec-server refuses (one id, one block's data "
            'per organization; docs/upgrade.md, "Block ids in two realms"): keep the newest row '
            "of each id in the official `block` table, then run migrate again"
        )


async def _move_block_data(conn: asyncpg.Connection, schema: str) -> int:
    """The official `block_data` becomes ours: same rows, key (organization_id, block_id)."""
    o = _ident(schema)
    await conn.execute("DROP TABLE public.block_data")  # ours, created empty a moment ago
    await conn.execute(f"ALTER TABLE {o}.block_data SET SCHEMA public")
    await conn.execute("ALTER TABLE public.block_data DROP CONSTRAINT block_data_pkey")
    await conn.execute("ALTER TABLE public.block_data DROP COLUMN _id")
    await conn.execute("ALTER TABLE public.block_data ALTER COLUMN organization_id TYPE TEXT")
    await conn.execute(
        "ALTER TABLE public.block_data ADD CONSTRAINT block_data_pkey"
        " PRIMARY KEY (organization_id, block_id)"
    )
    await conn.execute(
        "ALTER TABLE public.block_data DROP CONSTRAINT block_data_organization_id_block_id_key"
    )
    await conn.execute("ALTER TABLE public.block_data ALTER COLUMN data SET STORAGE EXTERNAL")
    n: int = await conn.fetchval("SELECT count(*) FROM public.block_data")
    return n


async def _fill_sequester_keys(conn: asyncpg.Connection, schema: str) -> None:
    """sequester_service.encryption_key_der: only in the official service certificate (a handful of
    rows per organization)."""
    rows = await conn.fetch(
        f"SELECT _id, service_certificate FROM {_ident(schema)}.sequester_service ORDER BY _id"
    )
    updates: list[tuple[int, bytes]] = []
    for r in rows:
        try:
            cert = unsecure_load(SequesterServiceCertificate, r["service_certificate"])
        except InvalidCertificate as exc:
            raise AdoptionError(
                f"sequester service {r['_id']}: unreadable service certificate ({exc})"
            ) from None
        updates.append((r["_id"], bytes(cert.encryption_key_der)))
    if updates:
        await conn.executemany(
            "UPDATE sequester_service SET encryption_key_der = $2 WHERE id = $1", updates
        )


async def _set_sequences(conn: asyncpg.Connection) -> None:
    rows = await conn.fetch(
        "SELECT table_name::text AS tbl, column_name::text AS col FROM information_schema.columns"
        " WHERE table_schema = 'public' AND is_identity = 'YES'"
    )
    for r in rows:
        t = _ident(r["tbl"])
        c = _ident(r["col"])
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence('public.{t}', '{r['col']}'), max_id)"
            f" FROM (SELECT max({c}) AS max_id FROM public.{t}) m WHERE max_id IS NOT NULL"
        )


async def adopt(
    conn: asyncpg.Connection,
    migrations: Sequence[Migration],
    emit: Emit,
    *,
    schema: str = OFFICIAL_SCHEMA,
    heartbeat: float = 5.0,
) -> AdoptionResult:
    """Convert the official database behind `conn` (caller: migration lock held, backup taken).
    One transaction: on any failure nothing is changed. A step running longer than `heartbeat`
    seconds reports a `heartbeat` event every `heartbeat` seconds."""
    started = time.monotonic()
    rows: dict[str, int] = {}
    async with conn.transaction():
        await conn.execute("SET LOCAL statement_timeout = 0")
        await conn.execute("SET LOCAL lock_timeout = 0")
        await conn.execute("SET LOCAL search_path = public")
        moved = await _move_official(conn, schema)
        emit(
            {
                "event": "adoption_step",
                "table": f"(official tables moved to schema {schema})",
                "source": "",
                "rows": len(moved),
                "duration_ms": int((time.monotonic() - started) * 1000),
            }
        )
        await _apply_ours(conn, migrations, emit)
        fks = await _set_aside_foreign_keys(conn)
        ours = {
            r[0]
            for r in await conn.fetch(
                "SELECT relname::text FROM pg_class"
                " WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
            )
        }
        await _refuse_shared_block_ids(conn, schema)
        for step in _STEPS:
            if step.target not in ours:  # a feature of a later release of ours
                continue
            t0 = time.monotonic()
            try:
                status = await _with_heartbeat(
                    conn.execute(step.sql.format(o=_ident(schema))), step, heartbeat, emit
                )
            except asyncpg.PostgresError as exc:
                raise AdoptionError(
                    f"converting {step.source} into {step.target} failed: "
                    f"{type(exc).__name__}: {exc}" + (f" ({exc.detail})" if exc.detail else "")
                ) from None
            n = int(status.rsplit(" ", 1)[-1]) if status.startswith("INSERT") else 0
            rows[step.target] = rows.get(step.target, 0) + n
            emit(
                {
                    "event": "adoption_step",
                    "table": step.target,
                    "source": step.source,
                    "rows": n,
                    "duration_ms": int((time.monotonic() - t0) * 1000),
                }
            )
        await _fill_sequester_keys(conn, schema)
        t0 = time.monotonic()
        rows["block_data"] = await _move_block_data(conn, schema)
        emit(
            {
                "event": "adoption_step",
                "table": "block_data",
                "source": "block_data (moved, not copied)",
                "rows": rows["block_data"],
                "duration_ms": int((time.monotonic() - t0) * 1000),
            }
        )
        await _restore_foreign_keys(conn, fks, emit)
        await _set_sequences(conn)
        await history.event(
            conn, "adopt", None, official_schema=schema, rows=rows, official_tables=moved
        )
        t0 = time.monotonic()
        for name in await conn.fetch(
            "SELECT relname::text FROM pg_class"
            " WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
        ):
            await conn.execute(f"ANALYZE public.{_ident(name[0])}")
        emit(
            {
                "event": "adoption_step",
                "table": "(ANALYZE)",
                "source": "",
                "rows": 0,
                "duration_ms": int((time.monotonic() - t0) * 1000),
            }
        )
    return AdoptionResult(rows=rows, duration_s=time.monotonic() - started)


__all__ = ["AdoptionError", "AdoptionResult", "adopt"]
