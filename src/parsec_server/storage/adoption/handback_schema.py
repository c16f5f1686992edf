"""The official Parsec server's 3.9.x schema, as the hand-back (`migrate --to official-3.9`) creates
it: what the official server's 24 migrations leave behind (`0001_initial` ...
`0024_rename_minimum_archiving_period`), written here from the observed result of those migrations
(catalog of a database the official 3.9.3 `parsec migrate` made), not from their files.

Same tables, column order, types, defaults, nullability, constraint and index names as the
official result, so that the official server (and its own `parsec migrate`, which reads the
`migration` table only) finds the database it expects. tests/integration/adoption/
test_handback_schema.py compares this DDL with a database the official `parsec migrate` made.

Everything is created in the current schema (`public`); the hand-back runs it after moving
parsec-server's own tables out of the way.
"""

from __future__ import annotations

# The official `migration` table keeps, per applied file, `_id` (its number), `name` (the part of
# the file name between `NNNN_` and `.sql`) and `applied` (when). Its runner takes the row of the
# latest `applied` as the current level, so the rows get increasing timestamps.
OFFICIAL_MIGRATION_NAMES_3_9: tuple[str, ...] = (
    "initial",
    "user_human_always_present",
    "user_current_profile",
    "non_blocking_invitation",
    "remove_old_invite_transport",
    "tos",
    "shamir",
    "fix_sequester_service",
    "external_service_for_invitation",
    "always_kept_realm_key_bundle_access",
    "remove_realm_created_by_outsider",
    "allowed_client_agent_and_account_vault_strategy",
    "account",
    "block_realm_based_unique_index",
    "drop_email_unicode_support",
    "pki_enrollment_add_sign_algo",
    "rm_pki_enrollment_submit_der_cert_sha1",
    "remove_per_organization_config",
    "certificate_table",
    "async_enrollment",
    "totp",
    "realm_archiving_flags",
    "remove_legacy_pki",
    "rename_minimum_archiving_period",
)

_ENUMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("async_enrollment_signature_type", ("PKI", "OPENBAO")),
    ("async_enrollment_state", ("SUBMITTED", "ACCEPTED", "REJECTED", "CANCELLED")),
    (
        "cancelled_greeting_attempt_reason",
        (
            "MANUALLY_CANCELLED",
            "INVALID_NONCE_HASH",
            "INVALID_SAS_CODE",
            "UNDECIPHERABLE_PAYLOAD",
            "UNDESERIALIZABLE_PAYLOAD",
            "INCONSISTENT_PAYLOAD",
            "AUTOMATICALLY_CANCELLED",
        ),
    ),
    ("greeter_or_claimer", ("GREETER", "CLAIMER")),
    ("invitation_deleted_reason", ("FINISHED", "CANCELLED", "ROTTEN")),
    ("invitation_type", ("USER", "DEVICE", "SHAMIR_RECOVERY")),
    ("maintenance_type", ("REENCRYPTION", "GARBAGE_COLLECTION")),
    ("password_algorithm", ("ARGON2ID",)),
    ("pki_signature_algorithm", ("RSASSA_PSS_SHA256",)),
    ("realm_archiving_configuration", ("AVAILABLE", "ARCHIVED", "DELETION_PLANNED")),
    ("realm_role", ("OWNER", "MANAGER", "CONTRIBUTOR", "READER")),
    ("realm_status", ("AVAILABLE", "ARCHIVED_OR_DELETION_PLANNED", "DELETED")),
    ("sequester_service_type", ("STORAGE", "WEBHOOK")),
    ("user_profile", ("ADMIN", "STANDARD", "OUTSIDER")),
)

_TS = "TIMESTAMPTZ"

# One statement per entry, in dependency order. Inline UNIQUE / PRIMARY KEY / REFERENCES get the
# names PostgreSQL derives (`<table>_<columns>_key`, `_pkey`, `_fkey`), which are the official ones.
_TABLES: tuple[str, ...] = (
    f"""CREATE TABLE migration (
    _id INTEGER PRIMARY KEY,
    name VARCHAR(256) NOT NULL UNIQUE,
    applied {_TS} NOT NULL
)""",
    f"""CREATE TABLE organization (
    _id SERIAL PRIMARY KEY,
    organization_id VARCHAR(32) NOT NULL UNIQUE,
    bootstrap_token VARCHAR(32),
    root_verify_key BYTEA,
    _expired_on {_TS},
    user_profile_outsider_allowed BOOLEAN NOT NULL,
    active_users_limit INTEGER,
    is_expired BOOLEAN NOT NULL,
    _bootstrapped_on {_TS},
    _created_on {_TS} NOT NULL,
    sequester_authority_certificate BYTEA,
    sequester_authority_verify_key_der BYTEA,
    realm_minimum_archiving_period_before_deletion INTEGER NOT NULL,
    tos_updated_on {_TS},
    tos_per_locale_urls JSON
)""",
    f"""CREATE TABLE sequester_service (
    _id SERIAL PRIMARY KEY,
    service_id UUID NOT NULL,
    organization INTEGER NOT NULL REFERENCES organization (_id),
    service_certificate BYTEA NOT NULL,
    service_label VARCHAR(254) NOT NULL,
    created_on {_TS} NOT NULL,
    disabled_on {_TS},
    webhook_url TEXT,
    service_type sequester_service_type NOT NULL,
    revoked_on {_TS},
    sequester_revoked_service_certificate BYTEA,
    UNIQUE (organization, service_id)
)""",
    """CREATE TABLE human (
    _id SERIAL PRIMARY KEY,
    organization INTEGER NOT NULL REFERENCES organization (_id),
    email VARCHAR(254) NOT NULL,
    label VARCHAR(254) NOT NULL,
    UNIQUE (organization, email)
)""",
    f"""CREATE TABLE user_ (
    _id SERIAL PRIMARY KEY,
    organization INTEGER NOT NULL REFERENCES organization (_id),
    user_id UUID NOT NULL,
    user_certificate BYTEA NOT NULL,
    user_certifier INTEGER,
    created_on {_TS} NOT NULL,
    revoked_on {_TS},
    revoked_user_certificate BYTEA,
    revoked_user_certifier INTEGER,
    human INTEGER NOT NULL REFERENCES human (_id),
    redacted_user_certificate BYTEA NOT NULL,
    initial_profile user_profile NOT NULL,
    shamir_recovery INTEGER,
    frozen BOOLEAN NOT NULL DEFAULT FALSE,
    current_profile user_profile NOT NULL,
    tos_accepted_on {_TS},
    totp_setup_completed BOOLEAN NOT NULL DEFAULT FALSE,
    totp_secret BYTEA,
    totp_reset_token VARCHAR(32),
    UNIQUE (organization, user_id),
    CONSTRAINT check_totp_reset_token_when_setup_completed
        CHECK (totp_setup_completed = FALSE OR totp_reset_token IS NULL),
    CONSTRAINT check_totp_secret_when_setup_completed
        CHECK (totp_setup_completed = FALSE OR totp_secret IS NOT NULL)
)""",
    f"""CREATE TABLE device (
    _id SERIAL PRIMARY KEY,
    organization INTEGER NOT NULL REFERENCES organization (_id),
    user_ INTEGER NOT NULL REFERENCES user_ (_id),
    device_id UUID NOT NULL,
    device_label VARCHAR(254) NOT NULL,
    verify_key BYTEA NOT NULL,
    device_certificate BYTEA NOT NULL,
    device_certifier INTEGER REFERENCES device (_id),
    created_on {_TS} NOT NULL,
    redacted_device_certificate BYTEA NOT NULL,
    UNIQUE (organization, device_id)
)""",
    """ALTER TABLE user_
    ADD CONSTRAINT fk_user_device_user_certifier FOREIGN KEY (user_certifier)
        REFERENCES device (_id),
    ADD CONSTRAINT fk_user_device_revoked_user_certifier FOREIGN KEY (revoked_user_certifier)
        REFERENCES device (_id)""",
    f"""CREATE TABLE profile (
    _id SERIAL PRIMARY KEY,
    user_ INTEGER NOT NULL REFERENCES user_ (_id),
    profile user_profile NOT NULL,
    profile_certificate BYTEA NOT NULL,
    certified_by INTEGER NOT NULL REFERENCES device (_id),
    certified_on {_TS} NOT NULL
)""",
    f"""CREATE TABLE totp_opaque_key (
    _id SERIAL PRIMARY KEY,
    user_ INTEGER NOT NULL REFERENCES user_ (_id),
    opaque_key_id UUID NOT NULL UNIQUE,
    opaque_key BYTEA NOT NULL,
    last_failed_attempt {_TS},
    failed_attempts INTEGER NOT NULL DEFAULT 0
)""",
    f"""CREATE TABLE shamir_recovery_setup (
    _id SERIAL PRIMARY KEY,
    organization INTEGER NOT NULL REFERENCES organization (_id),
    user_ INTEGER NOT NULL REFERENCES user_ (_id),
    brief_certificate BYTEA NOT NULL,
    reveal_token VARCHAR(32) NOT NULL,
    threshold INTEGER NOT NULL,
    shares INTEGER NOT NULL,
    ciphered_data BYTEA,
    created_on {_TS} NOT NULL,
    deleted_on {_TS},
    deletion_certificate BYTEA,
    UNIQUE (organization, reveal_token)
)""",
    """CREATE UNIQUE INDEX unique_active_setup ON shamir_recovery_setup (user_)
    WHERE deleted_on IS NULL""",
    """CREATE TABLE shamir_recovery_share (
    _id SERIAL PRIMARY KEY,
    organization INTEGER NOT NULL REFERENCES organization (_id),
    shamir_recovery INTEGER NOT NULL REFERENCES shamir_recovery_setup (_id),
    recipient INTEGER NOT NULL REFERENCES user_ (_id),
    share_certificate BYTEA NOT NULL,
    shares INTEGER NOT NULL,
    UNIQUE (organization, shamir_recovery, recipient)
)""",
    """ALTER TABLE user_ ADD FOREIGN KEY (shamir_recovery) REFERENCES shamir_recovery_setup (_id)""",
    f"""CREATE TABLE invitation (
    _id SERIAL PRIMARY KEY,
    organization INTEGER NOT NULL REFERENCES organization (_id),
    token VARCHAR(32) NOT NULL,
    type invitation_type NOT NULL,
    created_by_device INTEGER REFERENCES device (_id),
    user_invitation_claimer_email VARCHAR(255),
    created_on {_TS} NOT NULL,
    deleted_on {_TS},
    deleted_reason invitation_deleted_reason,
    shamir_recovery INTEGER REFERENCES shamir_recovery_setup (_id),
    created_by_service_label VARCHAR(254),
    device_invitation_claimer INTEGER REFERENCES user_ (_id),
    UNIQUE (organization, token)
)""",
    """CREATE TABLE greeting_session (
    _id SERIAL PRIMARY KEY,
    invitation INTEGER NOT NULL REFERENCES invitation (_id),
    greeter INTEGER NOT NULL REFERENCES user_ (_id),
    UNIQUE (invitation, greeter)
)""",
    f"""CREATE TABLE greeting_attempt (
    _id SERIAL PRIMARY KEY,
    organization INTEGER NOT NULL REFERENCES organization (_id),
    greeting_attempt_id UUID NOT NULL,
    greeting_session INTEGER NOT NULL REFERENCES greeting_session (_id),
    claimer_joined {_TS},
    greeter_joined {_TS},
    cancelled_reason cancelled_greeting_attempt_reason,
    cancelled_on {_TS},
    cancelled_by greeter_or_claimer,
    UNIQUE (organization, greeting_attempt_id)
)""",
    """CREATE UNIQUE INDEX unique_active_attempt ON greeting_attempt (greeting_session)
    WHERE cancelled_on IS NULL""",
    """CREATE TABLE greeting_step (
    _id SERIAL PRIMARY KEY,
    greeting_attempt INTEGER NOT NULL REFERENCES greeting_attempt (_id),
    step INTEGER NOT NULL,
    greeter_data BYTEA,
    claimer_data BYTEA,
    UNIQUE (greeting_attempt, step)
)""",
    """CREATE TABLE pki_x509_certificate (
    sha256_fingerprint BYTEA PRIMARY KEY,
    parent BYTEA REFERENCES pki_x509_certificate (sha256_fingerprint),
    der_content BYTEA NOT NULL
)""",
    f"""CREATE TABLE async_enrollment (
    _id SERIAL PRIMARY KEY,
    organization INTEGER NOT NULL REFERENCES organization (_id),
    enrollment_id UUID NOT NULL,
    submitted_on {_TS} NOT NULL,
    submit_payload BYTEA NOT NULL,
    submit_payload_requested_human_handle_email VARCHAR(254) NOT NULL,
    submit_payload_signature_type async_enrollment_signature_type NOT NULL,
    submit_payload_signature_pki_signature BYTEA,
    submit_payload_signature_pki_algorithm pki_signature_algorithm,
    submit_payload_signature_pki_author_x509_certificate BYTEA
        REFERENCES pki_x509_certificate (sha256_fingerprint),
    submit_payload_signature_openbao_signature TEXT,
    submit_payload_signature_openbao_author_entity_id TEXT,
    state async_enrollment_state NOT NULL DEFAULT 'SUBMITTED',
    accepted_on {_TS},
    accept_payload BYTEA,
    accept_payload_signature_type async_enrollment_signature_type,
    accept_payload_signature_pki_signature BYTEA,
    accept_payload_signature_pki_algorithm pki_signature_algorithm,
    accept_payload_signature_pki_author_x509_certificate BYTEA
        REFERENCES pki_x509_certificate (sha256_fingerprint),
    accept_payload_signature_openbao_signature TEXT,
    accept_payload_signature_openbao_author_entity_id TEXT,
    rejected_on {_TS},
    cancelled_on {_TS},
    UNIQUE (organization, enrollment_id)
)""",
    f"""CREATE TABLE account (
    _id SERIAL PRIMARY KEY,
    email VARCHAR(254) NOT NULL UNIQUE,
    human_handle_label VARCHAR(254) NOT NULL,
    deleted_on {_TS}
)""",
    f"""CREATE TABLE account_create_validation_code (
    email VARCHAR(256) PRIMARY KEY,
    validation_code VARCHAR(6) NOT NULL,
    created_at {_TS} NOT NULL,
    failed_attempts INTEGER DEFAULT 0
)""",
    f"""CREATE TABLE account_delete_validation_code (
    account INTEGER PRIMARY KEY REFERENCES account (_id),
    validation_code VARCHAR(6) NOT NULL,
    created_at {_TS} NOT NULL,
    failed_attempts INTEGER DEFAULT 0
)""",
    f"""CREATE TABLE account_recover_validation_code (
    account INTEGER PRIMARY KEY REFERENCES account (_id),
    validation_code VARCHAR(6) NOT NULL,
    created_at {_TS} NOT NULL,
    failed_attempts INTEGER DEFAULT 0
)""",
    """CREATE TABLE vault (
    _id SERIAL PRIMARY KEY,
    account INTEGER NOT NULL REFERENCES account (_id)
)""",
    f"""CREATE TABLE vault_authentication_method (
    _id SERIAL PRIMARY KEY,
    auth_method_id UUID NOT NULL UNIQUE,
    vault INTEGER NOT NULL REFERENCES vault (_id),
    created_on {_TS} NOT NULL,
    created_by_ip TEXT NOT NULL,
    created_by_user_agent TEXT NOT NULL,
    mac_key BYTEA NOT NULL,
    vault_key_access BYTEA NOT NULL,
    password_algorithm password_algorithm,
    password_algorithm_argon2id_opslimit INTEGER,
    password_algorithm_argon2id_memlimit_kb INTEGER,
    password_algorithm_argon2id_parallelism INTEGER,
    disabled_on {_TS}
)""",
    """CREATE TABLE vault_item (
    _id SERIAL PRIMARY KEY,
    vault INTEGER NOT NULL REFERENCES vault (_id),
    fingerprint BYTEA NOT NULL,
    data BYTEA NOT NULL,
    UNIQUE (vault, fingerprint)
)""",
    f"""CREATE TABLE realm (
    _id SERIAL PRIMARY KEY,
    organization INTEGER NOT NULL REFERENCES organization (_id),
    realm_id UUID NOT NULL,
    key_index INTEGER NOT NULL,
    created_on {_TS} NOT NULL,
    status realm_status NOT NULL DEFAULT 'AVAILABLE',
    UNIQUE (organization, realm_id)
)""",
    f"""CREATE TABLE realm_user_role (
    _id SERIAL PRIMARY KEY,
    realm INTEGER NOT NULL REFERENCES realm (_id),
    user_ INTEGER NOT NULL REFERENCES user_ (_id),
    role realm_role,
    certificate BYTEA NOT NULL,
    certified_by INTEGER NOT NULL REFERENCES device (_id),
    certified_on {_TS} NOT NULL
)""",
    f"""CREATE TABLE realm_archiving (
    _id SERIAL PRIMARY KEY,
    realm INTEGER NOT NULL REFERENCES realm (_id),
    configuration realm_archiving_configuration NOT NULL,
    deletion_date {_TS},
    certificate BYTEA NOT NULL,
    certified_by INTEGER NOT NULL REFERENCES device (_id),
    certified_on {_TS} NOT NULL
)""",
    f"""CREATE TABLE realm_user_change (
    _id SERIAL PRIMARY KEY,
    realm INTEGER NOT NULL REFERENCES realm (_id),
    user_ INTEGER NOT NULL REFERENCES user_ (_id),
    last_role_change {_TS},
    last_vlob_update {_TS},
    last_archiving_change {_TS},
    UNIQUE (realm, user_)
)""",
    f"""CREATE TABLE realm_keys_bundle (
    _id SERIAL PRIMARY KEY,
    realm INTEGER NOT NULL REFERENCES realm (_id),
    key_index INTEGER NOT NULL,
    realm_key_rotation_certificate BYTEA NOT NULL,
    certified_by INTEGER NOT NULL REFERENCES device (_id),
    certified_on {_TS} NOT NULL,
    key_canary BYTEA NOT NULL,
    keys_bundle BYTEA NOT NULL,
    UNIQUE (realm, key_index)
)""",
    """CREATE TABLE realm_keys_bundle_access (
    _id SERIAL PRIMARY KEY,
    realm INTEGER NOT NULL REFERENCES realm (_id),
    user_ INTEGER NOT NULL REFERENCES user_ (_id),
    realm_keys_bundle INTEGER NOT NULL REFERENCES realm_keys_bundle (_id),
    access BYTEA NOT NULL,
    from_sharing INTEGER REFERENCES realm_user_role (_id)
)""",
    """CREATE UNIQUE INDEX realm_keys_bundle_access_index_from_sharing_not_null
    ON realm_keys_bundle_access (realm, user_, realm_keys_bundle, from_sharing)
    WHERE from_sharing IS NOT NULL""",
    """CREATE UNIQUE INDEX realm_keys_bundle_access_index_from_sharing_null
    ON realm_keys_bundle_access (realm, user_, realm_keys_bundle)
    WHERE from_sharing IS NULL""",
    """CREATE TABLE realm_sequester_keys_bundle_access (
    _id SERIAL PRIMARY KEY,
    sequester_service INTEGER NOT NULL REFERENCES sequester_service (_id),
    realm_keys_bundle INTEGER NOT NULL REFERENCES realm_keys_bundle (_id),
    access BYTEA NOT NULL,
    realm INTEGER NOT NULL REFERENCES realm (_id),
    UNIQUE (sequester_service, realm_keys_bundle)
)""",
    f"""CREATE TABLE realm_name (
    _id SERIAL PRIMARY KEY,
    realm INTEGER NOT NULL REFERENCES realm (_id),
    realm_name_certificate BYTEA NOT NULL,
    certified_by INTEGER NOT NULL REFERENCES device (_id),
    certified_on {_TS} NOT NULL
)""",
    f"""CREATE TABLE vlob_atom (
    _id SERIAL PRIMARY KEY,
    realm INTEGER NOT NULL REFERENCES realm (_id),
    key_index INTEGER NOT NULL,
    vlob_id UUID NOT NULL,
    version INTEGER NOT NULL,
    blob BYTEA NOT NULL,
    size INTEGER NOT NULL,
    author INTEGER NOT NULL REFERENCES device (_id),
    created_on {_TS} NOT NULL,
    deleted_on {_TS},
    UNIQUE (realm, vlob_id, version)
)""",
    """CREATE TABLE realm_vlob_update (
    _id SERIAL PRIMARY KEY,
    realm INTEGER NOT NULL REFERENCES realm (_id),
    index INTEGER NOT NULL,
    vlob_atom INTEGER NOT NULL REFERENCES vlob_atom (_id),
    UNIQUE (realm, index)
)""",
    f"""CREATE TABLE block (
    _id SERIAL PRIMARY KEY,
    block_id UUID NOT NULL,
    realm INTEGER NOT NULL REFERENCES realm (_id),
    author INTEGER NOT NULL REFERENCES device (_id),
    size INTEGER NOT NULL,
    created_on {_TS} NOT NULL,
    deleted_on {_TS},
    key_index INTEGER NOT NULL,
    UNIQUE (realm, block_id)
)""",
    """CREATE TABLE block_data (
    _id SERIAL PRIMARY KEY,
    organization_id VARCHAR NOT NULL,
    block_id UUID NOT NULL,
    data BYTEA NOT NULL,
    UNIQUE (organization_id, block_id)
)""",
    f"""CREATE TABLE common_topic (
    _id SERIAL PRIMARY KEY,
    organization INTEGER NOT NULL REFERENCES organization (_id),
    last_timestamp {_TS} NOT NULL,
    UNIQUE (organization)
)""",
    f"""CREATE TABLE sequester_topic (
    _id SERIAL PRIMARY KEY,
    organization INTEGER NOT NULL REFERENCES organization (_id),
    last_timestamp {_TS} NOT NULL,
    UNIQUE (organization)
)""",
    f"""CREATE TABLE shamir_recovery_topic (
    _id SERIAL PRIMARY KEY,
    organization INTEGER NOT NULL REFERENCES organization (_id),
    last_timestamp {_TS} NOT NULL,
    UNIQUE (organization)
)""",
    f"""CREATE TABLE realm_topic (
    _id SERIAL PRIMARY KEY,
    organization INTEGER NOT NULL REFERENCES organization (_id),
    realm INTEGER NOT NULL REFERENCES realm (_id),
    last_timestamp {_TS} NOT NULL,
    UNIQUE (organization, realm)
)""",
)


def _enum(name: str, labels: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{label}'" for label in labels)
    return f"CREATE TYPE {name} AS ENUM ({quoted})"


def official_ddl() -> list[str]:
    """The statements that create the empty official 3.9.x schema (history table included, empty)."""
    return [_enum(name, labels) for name, labels in _ENUMS] + list(_TABLES)


# Every table the official 3.9.x schema has (the `migration` history included).
OFFICIAL_TABLES_3_9: frozenset[str] = frozenset(
    stmt.split()[2] for stmt in _TABLES if stmt.startswith("CREATE TABLE ")
)
OFFICIAL_TYPES_3_9: frozenset[str] = frozenset(name for name, _ in _ENUMS)
