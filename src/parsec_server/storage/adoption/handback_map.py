"""The hand-back's map: which of our tables and columns it reads, and, per official 3.9.x table,
the `INSERT ... SELECT` that fills it from ours (in foreign key order). Used by handback.py."""

from __future__ import annotations

from dataclasses import dataclass

# Our tables the conversion reads, with the columns it knows (anything else holding data is named
# as not representable). Our engine's own tables are left out: the official history replaces them.
KNOWN_COLUMNS: dict[str, frozenset[str]] = {
    name: frozenset(cols.split())
    for name, cols in {
        "organization": "id organization_id created_on bootstrap_token bootstrapped_on "
        "root_verify_key sequester_authority_verify_key_der is_expired expired_on "
        "user_profile_outsider_allowed active_users_limit "
        "realm_minimum_archiving_period_before_deletion tos_updated_on tos_per_locale_urls",
        "topic_common": "organization last_timestamp",
        "topic_sequester": "organization last_timestamp",
        "topic_shamir_recovery": "organization last_timestamp",
        "topic_realm": "realm last_timestamp",
        "sequester_service": "id organization service_id service_label encryption_key_der "
        "created_on revoked_on service_type webhook_url",
        "human": "id organization email label",
        "user_": "id organization user_id human initial_profile current_profile created_on "
        "created_by revoked_on revoked_by frozen tos_accepted_on",
        "device": "id organization user_ device_id device_label purpose verify_key created_on "
        "created_by",
        "user_profile_update": "id user_ profile certified_on certified_by",
        "shamir_recovery_setup": "id organization user_ created_on created_by threshold "
        "total_shares ciphered_data reveal_token deleted_on deleted_by",
        "shamir_recovery_share": "id setup recipient shares",
        "invitation": "id organization token type created_on created_by_device "
        "created_by_service_label claimer_email claimer_user shamir_recovery_setup deleted_on "
        "deleted_reason",
        "greeting_session": "id invitation greeter",
        "greeting_attempt": "id greeting_attempt_id session created_on greeter_joined_on "
        "claimer_joined_on cancelled_on cancelled_by cancelled_reason",
        "greeting_step": "attempt step greeter_data claimer_data",
        "realm": "id organization realm_id created_on created_by key_index status deletion_date "
        "deleted_on vlob_checkpoint last_vlob_timestamp vlob_bytes",
        "realm_member": "realm user_ role role_certified_on",
        "realm_user_role": "id realm user_ role certified_on certified_by",
        "realm_archiving": "id realm configuration deletion_date certified_on certified_by",
        "realm_name": "id realm key_index certified_on certified_by",
        "realm_keys_bundle": "id realm key_index certified_on certified_by key_canary keys_bundle",
        "realm_keys_bundle_access": "id realm_keys_bundle user_ access from_sharing",
        "realm_sequester_keys_bundle_access": "realm_keys_bundle sequester_service access",
        "vlob_atom": "id realm vlob_id version key_index author created_on size blob",
        "realm_vlob_update": "realm checkpoint vlob_id version",
        "block": "id realm block_id author key_index size created_on organization",
        "block_data": "_id organization_id block_id data",  # _id: an adopted official table
        "certificate": "id organization topic realm certified_on priority kind certificate "
        "redacted_certificate shamir_recovery_setup shamir_recipient",
        # TOTP (our 0005): back into the official user_.totp_* columns and totp_opaque_key; a
        # pending reset token is kept hashed by us, the official server needs the token itself.
        "user_totp": "user_ secret setup_completed reset_token_sha256",  # reset: see handback.py
        "user_totp_opaque_key": "id user_ opaque_key_id opaque_key failed_attempts "
        "last_failed_attempt",
        # Accounts (our 0004): the official account, vault, vault_item,
        # vault_authentication_method and account_*_validation_code tables; the official schema
        # keeps no creation time of an account or a vault.
        "account": "id email human_label created_on deleted_on",
        "account_vault": "id account created_on",
        "account_vault_item": "vault fingerprint data",
        "account_auth_method": "id auth_method_id vault created_on created_by_ip "
        "created_by_user_agent mac_key vault_key_access password_algorithm disabled_on",
        "account_validation_code": "purpose email code created_on failed_attempts",
        # Asynchronous enrollment (our 0006): each X.509 chain (leaf first, then its issuers) goes
        # into the official shared pki_x509_certificate table, each certificate pointing to the
        # next one of its chain as `parent`.
        "async_enrollment": "id organization enrollment_id state submitted_on submit_payload "
        "requested_email submit_signature_type submit_pki_signature submit_pki_algorithm "
        "submit_pki_x509_chain submit_openbao_signature submit_openbao_entity_id accepted_on "
        "accept_payload accept_signature_type accept_pki_signature accept_pki_algorithm "
        "accept_pki_x509_chain accept_openbao_signature accept_openbao_entity_id rejected_on "
        "cancelled_on",
    }.items()
}
# Ours only, with nothing worth keeping: the log behind the validation e-mails' rate limit, and the
# block usage totals of 0008 (derived from the block rows; the official server sums those).
EPHEMERAL_TABLES = frozenset({"account_email_sent", "realm_block_usage"})
ENGINE_TABLES = frozenset(
    {"schema_migration", "schema_migration_event", "schema_migration_progress"}
)


def _cert(kind: str, where: str, *, redacted: bool = False) -> str:
    """A correlated subquery: the raw certificate of `kind` matched by `where` (alias c)."""
    column = "COALESCE(c.redacted_certificate, c.certificate)" if redacted else "c.certificate"
    return (
        f"(SELECT {column} FROM {{src}}.certificate AS c WHERE c.kind = '{kind}' AND {where}"
        " ORDER BY c.id LIMIT 1)"
    )


def _common(kind: str, org: str, on: str, *, redacted: bool = False) -> str:
    where = f"c.organization = {org} AND c.realm IS NULL AND c.topic = 'common' AND c.certified_on = {on}"
    return _cert(kind, where, redacted=redacted)


def _realm(kind: str, realm: str, on: str) -> str:
    return _cert(kind, f"c.realm = {realm} AND c.certified_on = {on}")


def _shamir(kind: str, org: str, setup: str, extra: str = "") -> str:
    where = (
        f"c.organization = {org} AND c.realm IS NULL AND c.topic = 'shamir_recovery'"
        f" AND c.shamir_recovery_setup = {setup}{extra}"
    )
    return _cert(kind, where)


def _sequester(kind: str, org: str, on: str | None) -> str:
    where = f"c.organization = {org} AND c.realm IS NULL AND c.topic = 'sequester'"
    if on is not None:
        where += f" AND c.certified_on = {on}"
    return _cert(kind, where)


@dataclass(frozen=True, slots=True)
class Copy:
    """One official table filled by one INSERT ... SELECT from our tables (schema `{src}`)."""

    table: str
    source: str  # our table whose row count is the progress estimate
    sql: str
    # Copied in slices of BATCH ids of this column of `source` (the SQL takes the slice as $1 <
    # id <= $2), one progress event per slice; other copies get a heartbeat while they run.
    batch_by: str | None = None


BATCH = 100_000


# In foreign key order. `{src}` is the schema our tables were moved to.
COPIES: tuple[Copy, ...] = (
    Copy(
        "organization",
        "organization",
        "INSERT INTO organization (_id, organization_id, bootstrap_token, root_verify_key,"
        " _expired_on, user_profile_outsider_allowed, active_users_limit, is_expired,"
        " _bootstrapped_on, _created_on, sequester_authority_certificate,"
        " sequester_authority_verify_key_der, realm_minimum_archiving_period_before_deletion,"
        " tos_updated_on, tos_per_locale_urls)"
        " SELECT o.id, o.organization_id, encode(o.bootstrap_token, 'hex'), o.root_verify_key,"
        " o.expired_on, o.user_profile_outsider_allowed, o.active_users_limit, o.is_expired,"
        " o.bootstrapped_on, o.created_on, "
        + _sequester("sequester_authority_certificate", "o.id", None)
        + ", o.sequester_authority_verify_key_der,"
        " o.realm_minimum_archiving_period_before_deletion, o.tos_updated_on,"
        " o.tos_per_locale_urls::json FROM {src}.organization AS o ORDER BY o.id",
    ),
    Copy(
        "common_topic",
        "topic_common",
        "INSERT INTO common_topic (organization, last_timestamp)"
        " SELECT organization, last_timestamp FROM {src}.topic_common ORDER BY organization",
    ),
    Copy(
        "sequester_topic",
        "topic_sequester",
        "INSERT INTO sequester_topic (organization, last_timestamp)"
        " SELECT organization, last_timestamp FROM {src}.topic_sequester ORDER BY organization",
    ),
    Copy(
        "shamir_recovery_topic",
        "topic_shamir_recovery",
        "INSERT INTO shamir_recovery_topic (organization, last_timestamp)"
        " SELECT organization, last_timestamp FROM {src}.topic_shamir_recovery"
        " ORDER BY organization",
    ),
    Copy(
        "sequester_service",
        "sequester_service",
        "INSERT INTO sequester_service (_id, service_id, organization, service_certificate,"
        " service_label, created_on, webhook_url, service_type, revoked_on,"
        " sequester_revoked_service_certificate)"
        " SELECT s.id, s.service_id, s.organization, "
        + _sequester("sequester_service_certificate", "s.organization", "s.created_on")
        + ", s.service_label, s.created_on, s.webhook_url,"
        " s.service_type::sequester_service_type, s.revoked_on, "
        + _sequester("sequester_revoked_service_certificate", "s.organization", "s.revoked_on")
        + " FROM {src}.sequester_service AS s ORDER BY s.id",
    ),
    Copy(
        "human",
        "human",
        "INSERT INTO human (_id, organization, email, label)"
        " SELECT id, organization, email, label FROM {src}.human ORDER BY id",
    ),
    # Certifiers (devices) are set once the devices exist (user_ and device refer to each other).
    Copy(
        "user_",
        "user_",
        "INSERT INTO user_ (_id, organization, user_id, user_certificate, created_on, revoked_on,"
        " revoked_user_certificate, human, redacted_user_certificate, initial_profile, frozen,"
        " current_profile, tos_accepted_on)"
        " SELECT u.id, u.organization, u.user_id, "
        + _common("user_certificate", "u.organization", "u.created_on")
        + ", u.created_on, u.revoked_on, "
        + _common("revoked_user_certificate", "u.organization", "u.revoked_on")
        + ", u.human, "
        + _common("user_certificate", "u.organization", "u.created_on", redacted=True)
        + ", u.initial_profile::user_profile, u.frozen, u.current_profile::user_profile,"
        " u.tos_accepted_on FROM {src}.user_ AS u ORDER BY u.id",
    ),
    Copy(
        "device",
        "device",
        "INSERT INTO device (_id, organization, user_, device_id, device_label, verify_key,"
        " device_certificate, device_certifier, created_on, redacted_device_certificate)"
        " SELECT d.id, d.organization, d.user_, d.device_id, COALESCE(d.device_label, ''),"
        " d.verify_key, "
        + _common("device_certificate", "d.organization", "d.created_on")
        + ", d.created_by, d.created_on, "
        + _common("device_certificate", "d.organization", "d.created_on", redacted=True)
        + " FROM {src}.device AS d ORDER BY d.id",
    ),
    Copy(
        "user_ (certifiers)",
        "user_",
        "UPDATE user_ SET user_certifier = u.created_by, revoked_user_certifier = u.revoked_by"
        " FROM {src}.user_ AS u WHERE u.id = user_._id"
        " AND (u.created_by IS NOT NULL OR u.revoked_by IS NOT NULL)",
    ),
    Copy(
        "profile",
        "user_profile_update",
        "INSERT INTO profile (_id, user_, profile, profile_certificate, certified_by,"
        " certified_on)"
        " SELECT p.id, p.user_, p.profile::user_profile, "
        + _common("user_update_certificate", "u.organization", "p.certified_on")
        + ", p.certified_by, p.certified_on FROM {src}.user_profile_update AS p"
        " JOIN {src}.user_ AS u ON u.id = p.user_ ORDER BY p.id",
    ),
    Copy(
        "shamir_recovery_setup",
        "shamir_recovery_setup",
        "INSERT INTO shamir_recovery_setup (_id, organization, user_, brief_certificate,"
        " reveal_token, threshold, shares, ciphered_data, created_on, deleted_on,"
        " deletion_certificate)"
        " SELECT s.id, s.organization, s.user_, "
        + _shamir("shamir_recovery_brief_certificate", "s.organization", "s.id")
        + ", encode(s.reveal_token, 'hex'), s.threshold, s.total_shares, s.ciphered_data,"
        " s.created_on, s.deleted_on, "
        + _shamir("shamir_recovery_deletion_certificate", "s.organization", "s.id")
        + " FROM {src}.shamir_recovery_setup AS s ORDER BY s.id",
    ),
    Copy(
        "shamir_recovery_share",
        "shamir_recovery_share",
        "INSERT INTO shamir_recovery_share (_id, organization, shamir_recovery, recipient,"
        " share_certificate, shares)"
        " SELECT sh.id, s.organization, sh.setup, sh.recipient, "
        + _shamir(
            "shamir_recovery_share_certificate",
            "s.organization",
            "s.id",
            " AND c.shamir_recipient = sh.recipient",
        )
        + ", sh.shares FROM {src}.shamir_recovery_share AS sh"
        " JOIN {src}.shamir_recovery_setup AS s ON s.id = sh.setup ORDER BY sh.id",
    ),
    Copy(
        "invitation",
        "invitation",
        "INSERT INTO invitation (_id, organization, token, type, created_by_device,"
        " user_invitation_claimer_email, created_on, deleted_on, deleted_reason, shamir_recovery,"
        " created_by_service_label, device_invitation_claimer)"
        " SELECT i.id, i.organization, encode(i.token, 'hex'), i.type::invitation_type,"
        " i.created_by_device, i.claimer_email, i.created_on, i.deleted_on,"
        " i.deleted_reason::invitation_deleted_reason, i.shamir_recovery_setup,"
        " i.created_by_service_label, CASE WHEN i.type = 'DEVICE' THEN i.claimer_user END"
        " FROM {src}.invitation AS i ORDER BY i.id",
    ),
    Copy(
        "greeting_session",
        "greeting_session",
        "INSERT INTO greeting_session (_id, invitation, greeter)"
        " SELECT id, invitation, greeter FROM {src}.greeting_session ORDER BY id",
    ),
    Copy(
        "greeting_attempt",
        "greeting_attempt",
        "INSERT INTO greeting_attempt (_id, organization, greeting_attempt_id, greeting_session,"
        " claimer_joined, greeter_joined, cancelled_reason, cancelled_on, cancelled_by)"
        " SELECT a.id, i.organization, a.greeting_attempt_id, a.session, a.claimer_joined_on,"
        " a.greeter_joined_on, a.cancelled_reason::cancelled_greeting_attempt_reason,"
        " a.cancelled_on, a.cancelled_by::greeter_or_claimer FROM {src}.greeting_attempt AS a"
        " JOIN {src}.greeting_session AS s ON s.id = a.session"
        " JOIN {src}.invitation AS i ON i.id = s.invitation ORDER BY a.id",
    ),
    Copy(
        "greeting_step",
        "greeting_step",
        "INSERT INTO greeting_step (greeting_attempt, step, greeter_data, claimer_data)"
        " SELECT attempt, step, greeter_data, claimer_data FROM {src}.greeting_step"
        " ORDER BY attempt, step",
    ),
    Copy(
        "realm",
        "realm",
        "INSERT INTO realm (_id, organization, realm_id, key_index, created_on, status)"
        " SELECT id, organization, realm_id, key_index, created_on,"
        " (CASE status WHEN 'AVAILABLE' THEN 'AVAILABLE' WHEN 'DELETED' THEN 'DELETED'"
        " ELSE 'ARCHIVED_OR_DELETION_PLANNED' END)::realm_status FROM {src}.realm ORDER BY id",
    ),
    Copy(
        "realm_topic",
        "topic_realm",
        "INSERT INTO realm_topic (organization, realm, last_timestamp)"
        " SELECT r.organization, t.realm, t.last_timestamp FROM {src}.topic_realm AS t"
        " JOIN {src}.realm AS r ON r.id = t.realm ORDER BY t.realm",
    ),
    Copy(
        "realm_user_role",
        "realm_user_role",
        "INSERT INTO realm_user_role (_id, realm, user_, role, certificate, certified_by,"
        " certified_on)"
        " SELECT x.id, x.realm, x.user_, x.role::realm_role, "
        + _realm("realm_role_certificate", "x.realm", "x.certified_on")
        + ", x.certified_by, x.certified_on FROM {src}.realm_user_role AS x ORDER BY x.id",
    ),
    Copy(
        "realm_archiving",
        "realm_archiving",
        "INSERT INTO realm_archiving (_id, realm, configuration, deletion_date, certificate,"
        " certified_by, certified_on)"
        " SELECT x.id, x.realm, x.configuration::realm_archiving_configuration, x.deletion_date, "
        + _realm("realm_archiving_certificate", "x.realm", "x.certified_on")
        + ", x.certified_by, x.certified_on FROM {src}.realm_archiving AS x ORDER BY x.id",
    ),
    Copy(
        "realm_name",
        "realm_name",
        "INSERT INTO realm_name (_id, realm, realm_name_certificate, certified_by, certified_on)"
        " SELECT x.id, x.realm, "
        + _realm("realm_name_certificate", "x.realm", "x.certified_on")
        + ", x.certified_by, x.certified_on FROM {src}.realm_name AS x ORDER BY x.id",
    ),
    Copy(
        "realm_keys_bundle",
        "realm_keys_bundle",
        "INSERT INTO realm_keys_bundle (_id, realm, key_index, realm_key_rotation_certificate,"
        " certified_by, certified_on, key_canary, keys_bundle)"
        " SELECT x.id, x.realm, x.key_index, "
        + _realm("realm_key_rotation_certificate", "x.realm", "x.certified_on")
        + ", x.certified_by, x.certified_on, x.key_canary, COALESCE(x.keys_bundle, ''::bytea)"
        " FROM {src}.realm_keys_bundle AS x ORDER BY x.id",
    ),
    Copy(
        "realm_keys_bundle_access",
        "realm_keys_bundle_access",
        "INSERT INTO realm_keys_bundle_access (_id, realm, user_, realm_keys_bundle, access,"
        " from_sharing)"
        " SELECT a.id, b.realm, a.user_, a.realm_keys_bundle, a.access, a.from_sharing"
        " FROM {src}.realm_keys_bundle_access AS a"
        " JOIN {src}.realm_keys_bundle AS b ON b.id = a.realm_keys_bundle ORDER BY a.id",
    ),
    Copy(
        "realm_sequester_keys_bundle_access",
        "realm_sequester_keys_bundle_access",
        "INSERT INTO realm_sequester_keys_bundle_access (sequester_service, realm_keys_bundle,"
        " access, realm)"
        " SELECT a.sequester_service, a.realm_keys_bundle, a.access, b.realm"
        " FROM {src}.realm_sequester_keys_bundle_access AS a"
        " JOIN {src}.realm_keys_bundle AS b ON b.id = a.realm_keys_bundle"
        " ORDER BY a.realm_keys_bundle, a.sequester_service",
    ),
    Copy(
        "vlob_atom",
        "vlob_atom",
        "INSERT INTO vlob_atom (_id, realm, key_index, vlob_id, version, blob, size, author,"
        " created_on)"
        " SELECT id, realm, key_index, vlob_id, version, blob, size, author, created_on"
        " FROM {src}.vlob_atom WHERE id > $1 AND id <= $2",
        batch_by="id",
    ),
    Copy(
        "realm_vlob_update",
        "realm_vlob_update",
        "INSERT INTO realm_vlob_update (realm, index, vlob_atom)"
        " SELECT u.realm, u.checkpoint, v.id FROM {src}.realm_vlob_update AS u"
        " JOIN {src}.vlob_atom AS v"
        " ON v.realm = u.realm AND v.vlob_id = u.vlob_id AND v.version = u.version",
    ),
    Copy(
        "block",
        "block",
        "INSERT INTO block (_id, block_id, realm, author, size, created_on, key_index)"
        " SELECT id, block_id, realm, author, size, created_on, key_index FROM {src}.block"
        " WHERE id > $1 AND id <= $2",
        batch_by="id",
    ),
    Copy(
        "block_data",
        "block_data",
        "INSERT INTO block_data (organization_id, block_id, data)"
        " SELECT organization_id, block_id, data FROM {src}.block_data",
    ),
    Copy(
        "user_ (totp)",
        "user_totp",
        "UPDATE user_ SET totp_setup_completed = t.setup_completed, totp_secret = t.secret"
        " FROM {src}.user_totp AS t WHERE t.user_ = user_._id",
    ),
    Copy(
        "totp_opaque_key",
        "user_totp_opaque_key",
        "INSERT INTO totp_opaque_key (_id, user_, opaque_key_id, opaque_key,"
        " last_failed_attempt, failed_attempts)"
        " SELECT id, user_, opaque_key_id, opaque_key, last_failed_attempt, failed_attempts"
        " FROM {src}.user_totp_opaque_key ORDER BY id",
    ),
    Copy(
        "account",
        "account",
        "INSERT INTO account (_id, email, human_handle_label, deleted_on)"
        " SELECT id, email, human_label, deleted_on FROM {src}.account ORDER BY id",
    ),
    Copy(
        "vault",
        "account_vault",
        "INSERT INTO vault (_id, account) SELECT id, account FROM {src}.account_vault ORDER BY id",
    ),
    Copy(
        "vault_item",
        "account_vault_item",
        "INSERT INTO vault_item (vault, fingerprint, data)"
        " SELECT vault, fingerprint, data FROM {src}.account_vault_item ORDER BY vault, fingerprint",
    ),
    Copy(
        "vault_authentication_method",
        "account_auth_method",
        "INSERT INTO vault_authentication_method (_id, auth_method_id, vault, created_on,"
        " created_by_ip, created_by_user_agent, mac_key, vault_key_access, password_algorithm,"
        " password_algorithm_argon2id_opslimit, password_algorithm_argon2id_memlimit_kb,"
        " password_algorithm_argon2id_parallelism, disabled_on)"
        " SELECT id, auth_method_id, vault, created_on, created_by_ip, created_by_user_agent,"
        " mac_key, vault_key_access, (password_algorithm->>'type')::password_algorithm,"
        " (password_algorithm->>'opslimit')::integer,"
        " (password_algorithm->>'memlimit_kb')::integer,"
        " (password_algorithm->>'parallelism')::integer, disabled_on"
        " FROM {src}.account_auth_method ORDER BY id",
    ),
    Copy(
        "account_create_validation_code",
        "account_validation_code",
        "INSERT INTO account_create_validation_code (email, validation_code, created_at,"
        " failed_attempts)"
        " SELECT email, code, created_on, failed_attempts FROM {src}.account_validation_code"
        " WHERE purpose = 'CREATE' ORDER BY email",
    ),
    Copy(
        "account_recover_validation_code",
        "account_validation_code",
        "INSERT INTO account_recover_validation_code (account, validation_code, created_at,"
        " failed_attempts)"
        " SELECT a.id, c.code, c.created_on, c.failed_attempts"
        " FROM {src}.account_validation_code AS c JOIN {src}.account AS a ON a.email = c.email"
        " WHERE c.purpose = 'RECOVER' ORDER BY a.id",
    ),
    Copy(
        "account_delete_validation_code",
        "account_validation_code",
        "INSERT INTO account_delete_validation_code (account, validation_code, created_at,"
        " failed_attempts)"
        " SELECT a.id, c.code, c.created_on, c.failed_attempts"
        " FROM {src}.account_validation_code AS c JOIN {src}.account AS a ON a.email = c.email"
        " WHERE c.purpose = 'DELETE' ORDER BY a.id",
    ),
    Copy(
        "pki_x509_certificate",
        "async_enrollment",
        "INSERT INTO pki_x509_certificate (sha256_fingerprint, parent, der_content)"
        " SELECT DISTINCT ON (sha256(x.der)) sha256(x.der), sha256(x.issuer), x.der"
        " FROM {src}.async_enrollment AS e"
        " CROSS JOIN LATERAL (VALUES (e.submit_pki_x509_chain), (e.accept_pki_x509_chain))"
        "   AS side (chain)"
        " CROSS JOIN LATERAL (SELECT c.der, side.chain[c.n + 1] AS issuer"
        "   FROM unnest(side.chain) WITH ORDINALITY AS c (der, n)) AS x"
        " WHERE side.chain IS NOT NULL ORDER BY sha256(x.der), x.issuer IS NULL",
    ),
    Copy(
        "async_enrollment",
        "async_enrollment",
        "INSERT INTO async_enrollment (_id, organization, enrollment_id, submitted_on,"
        " submit_payload, submit_payload_requested_human_handle_email,"
        " submit_payload_signature_type, submit_payload_signature_pki_signature,"
        " submit_payload_signature_pki_algorithm,"
        " submit_payload_signature_pki_author_x509_certificate,"
        " submit_payload_signature_openbao_signature,"
        " submit_payload_signature_openbao_author_entity_id, state, accepted_on, accept_payload,"
        " accept_payload_signature_type, accept_payload_signature_pki_signature,"
        " accept_payload_signature_pki_algorithm,"
        " accept_payload_signature_pki_author_x509_certificate,"
        " accept_payload_signature_openbao_signature,"
        " accept_payload_signature_openbao_author_entity_id, rejected_on, cancelled_on)"
        " SELECT id, organization, enrollment_id, submitted_on, submit_payload, requested_email,"
        " (CASE submit_signature_type WHEN 'OPEN_BAO' THEN 'OPENBAO' ELSE 'PKI' END)"
        "::async_enrollment_signature_type, submit_pki_signature,"
        " submit_pki_algorithm::pki_signature_algorithm, sha256(submit_pki_x509_chain[1]),"
        " submit_openbao_signature, submit_openbao_entity_id, state::async_enrollment_state,"
        " accepted_on, accept_payload,"
        " (CASE accept_signature_type WHEN 'OPEN_BAO' THEN 'OPENBAO' ELSE accept_signature_type"
        " END)::async_enrollment_signature_type, accept_pki_signature,"
        " accept_pki_algorithm::pki_signature_algorithm, sha256(accept_pki_x509_chain[1]),"
        " accept_openbao_signature, accept_openbao_entity_id, rejected_on, cancelled_on"
        " FROM {src}.async_enrollment ORDER BY id",
    ),
)

# Every certificate of ours lands in exactly one of these official columns.
PLACED_CERTIFICATES = """
SELECT
  (SELECT count(*) FROM organization WHERE sequester_authority_certificate IS NOT NULL)
+ (SELECT count(*) FROM sequester_service)
+ (SELECT count(*) FROM sequester_service WHERE sequester_revoked_service_certificate IS NOT NULL)
+ (SELECT count(*) FROM user_)
+ (SELECT count(*) FROM user_ WHERE revoked_user_certificate IS NOT NULL)
+ (SELECT count(*) FROM device)
+ (SELECT count(*) FROM profile)
+ (SELECT count(*) FROM shamir_recovery_setup)
+ (SELECT count(*) FROM shamir_recovery_setup WHERE deletion_certificate IS NOT NULL)
+ (SELECT count(*) FROM shamir_recovery_share)
+ (SELECT count(*) FROM realm_user_role)
+ (SELECT count(*) FROM realm_archiving)
+ (SELECT count(*) FROM realm_name)
+ (SELECT count(*) FROM realm_keys_bundle)
"""

# The same count, read from our tables (the dry run): each row that carries a certificate.
CERTIFICATE_CARRIERS = """
SELECT
  (SELECT count(*) FROM organization AS o WHERE EXISTS (SELECT 1 FROM certificate AS c
     WHERE c.organization = o.id AND c.kind = 'sequester_authority_certificate'))
+ (SELECT count(*) FROM sequester_service)
+ (SELECT count(*) FROM sequester_service WHERE revoked_on IS NOT NULL)
+ (SELECT count(*) FROM user_)
+ (SELECT count(*) FROM user_ WHERE revoked_on IS NOT NULL)
+ (SELECT count(*) FROM device)
+ (SELECT count(*) FROM user_profile_update)
+ (SELECT count(*) FROM shamir_recovery_setup)
+ (SELECT count(*) FROM shamir_recovery_setup WHERE deleted_on IS NOT NULL)
+ (SELECT count(*) FROM shamir_recovery_share)
+ (SELECT count(*) FROM realm_user_role)
+ (SELECT count(*) FROM realm_archiving)
+ (SELECT count(*) FROM realm_name)
+ (SELECT count(*) FROM realm_keys_bundle)
"""
