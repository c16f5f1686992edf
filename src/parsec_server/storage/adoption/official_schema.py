"""What parsec-server knows of the official Parsec server 3.9 schema: shared by the adoption
(official -> ours) and the hand-back (ours -> official). Observed on a database made by the
official `parsec migrate` 3.9.3 (`pg_dump --schema-only`); nothing here is copied from it.

Conventions of the official schema, as the conversion relies on them:
* every entity table has an `_id` SERIAL key; foreign keys point at `_id`. The adoption keeps
  these numbers as our `id`s (so every reference maps one to one) and sets our identity sequences
  past them.
* certificates live in a column of the row they certify (`user_.user_certificate`, ...); ours all
  live in one `certificate` table (see CERTIFICATE_COLUMNS).
* access tokens (organization bootstrap, invitation, shamir reveal) are 32 hexadecimal characters
  (VARCHAR(32)); ours are the 16 raw bytes.
* enumerations are PostgreSQL ENUM types in `public` (ours: TEXT with a CHECK); the adoption moves
  them into OFFICIAL_SCHEMA with the tables.
* `realm_vlob_update.index` is the realm's n-th vlob write, from 1, contiguous: exactly our
  `realm_vlob_update.checkpoint` (a client's checkpoint stays valid as it is).
* `realm.status` is AVAILABLE / ARCHIVED_OR_DELETION_PLANNED / DELETED; which of archived or
  deletion planned is the latest `realm_archiving.configuration`.
* `invitation.deleted_reason` also has ROTTEN (an invitation that became invalid, e.g. its shamir
  setup was deleted): ours has FINISHED / CANCELLED only, ROTTEN becomes CANCELLED.
"""

from __future__ import annotations

from typing import Final, Literal

OFFICIAL_SCHEMA: Final = "parsec_official"  # where the adoption moves every official table

# How the adoption treats each official 3.9 table:
# * "converted": its rows are copied (INSERT ... SELECT) into our table(s) named in CONVERTED_INTO;
# * "moved": the table itself becomes ours (block_data: no copy of the block contents);
# * "unserved": data of a feature parsec-server does not serve yet: kept, unused, in the official
#   schema (the dry run names those with rows);
# (accounts and vaults, TOTP, asynchronous enrollment with its PKI certificates are converted when
# our schema has their tables: migrations 0004, 0005, 0006; none is unserved any more.)
# * "history": the official `migration` table (kept, tells the hand-back what to restore);
# * "derived": no counterpart row (its content is recomputed from other tables).
Treatment = Literal["converted", "moved", "unserved", "history", "derived"]

OFFICIAL_TABLES: Final[dict[str, Treatment]] = {
    "migration": "history",
    "organization": "converted",
    "common_topic": "converted",
    "sequester_topic": "converted",
    "shamir_recovery_topic": "converted",
    "realm_topic": "converted",
    "sequester_service": "converted",
    "human": "converted",
    "user_": "converted",
    "device": "converted",
    "profile": "converted",
    "shamir_recovery_setup": "converted",
    "shamir_recovery_share": "converted",
    "invitation": "converted",
    "greeting_session": "converted",
    "greeting_attempt": "converted",
    "greeting_step": "converted",
    "realm": "converted",
    "realm_user_role": "converted",
    "realm_user_change": "derived",
    "realm_archiving": "converted",
    "realm_name": "converted",
    "realm_keys_bundle": "converted",
    "realm_keys_bundle_access": "converted",
    "realm_sequester_keys_bundle_access": "converted",
    "vlob_atom": "converted",
    "realm_vlob_update": "converted",
    "block": "converted",
    "block_data": "moved",
    "account": "converted",
    "account_create_validation_code": "converted",
    "account_delete_validation_code": "converted",
    "account_recover_validation_code": "converted",
    "vault": "converted",
    "vault_authentication_method": "converted",
    "vault_item": "converted",
    "totp_opaque_key": "converted",
    "async_enrollment": "converted",
    "pki_x509_certificate": "converted",
}

# Our tables filled from each converted official table (progress lines name these).
CONVERTED_INTO: Final[dict[str, tuple[str, ...]]] = {
    "organization": ("organization",),
    "common_topic": ("topic_common",),
    "sequester_topic": ("topic_sequester",),
    "shamir_recovery_topic": ("topic_shamir_recovery",),
    "realm_topic": ("topic_realm",),
    "sequester_service": ("sequester_service", "certificate"),
    "human": ("human",),
    "user_": ("user_", "certificate"),
    "device": ("device", "certificate"),
    "profile": ("user_profile_update", "certificate"),
    "shamir_recovery_setup": ("shamir_recovery_setup", "certificate"),
    "shamir_recovery_share": ("shamir_recovery_share", "certificate"),
    "invitation": ("invitation",),
    "greeting_session": ("greeting_session",),
    "greeting_attempt": ("greeting_attempt",),
    "greeting_step": ("greeting_step",),
    "realm": ("realm",),
    "realm_user_role": ("realm_user_role", "realm_member", "certificate"),
    "realm_archiving": ("realm_archiving", "certificate"),
    "realm_name": ("realm_name", "certificate"),
    "realm_keys_bundle": ("realm_keys_bundle", "certificate"),
    "realm_keys_bundle_access": ("realm_keys_bundle_access",),
    "realm_sequester_keys_bundle_access": ("realm_sequester_keys_bundle_access",),
    "vlob_atom": ("vlob_atom",),
    "realm_vlob_update": ("realm_vlob_update",),
    "block": ("block",),
    "account": ("account",),
    "vault": ("account_vault",),
    "vault_item": ("account_vault_item",),
    "vault_authentication_method": ("account_auth_method",),
    "account_create_validation_code": ("account_validation_code",),
    "account_recover_validation_code": ("account_validation_code",),
    "account_delete_validation_code": ("account_validation_code",),
    "totp_opaque_key": ("user_totp_opaque_key",),
    "async_enrollment": ("async_enrollment",),
    "pki_x509_certificate": ("async_enrollment",),  # the chains, as arrays
}

# Where each kind of certificate sits in the official schema: (table, column, timestamp column).
CERTIFICATE_COLUMNS: Final[dict[str, tuple[str, str, str]]] = {
    "user_certificate": ("user_", "user_certificate", "created_on"),  # + redacted_user_certificate
    "device_certificate": ("device", "device_certificate", "created_on"),  # + redacted_...
    "revoked_user_certificate": ("user_", "revoked_user_certificate", "revoked_on"),
    "user_update_certificate": ("profile", "profile_certificate", "certified_on"),
    "realm_role_certificate": ("realm_user_role", "certificate", "certified_on"),
    "realm_name_certificate": ("realm_name", "realm_name_certificate", "certified_on"),
    "realm_key_rotation_certificate": (
        "realm_keys_bundle",
        "realm_key_rotation_certificate",
        "certified_on",
    ),
    "realm_archiving_certificate": ("realm_archiving", "certificate", "certified_on"),
    "shamir_recovery_brief_certificate": (
        "shamir_recovery_setup",
        "brief_certificate",
        "created_on",
    ),
    "shamir_recovery_share_certificate": ("shamir_recovery_share", "share_certificate", "-"),
    "shamir_recovery_deletion_certificate": (
        "shamir_recovery_setup",
        "deletion_certificate",
        "deleted_on",
    ),
    # timestamp: the bootstrap user's (the official bootstrap requires them equal)
    "sequester_authority_certificate": ("organization", "sequester_authority_certificate", "-"),
    "sequester_service_certificate": ("sequester_service", "service_certificate", "created_on"),
    "sequester_revoked_service_certificate": (
        "sequester_service",
        "sequester_revoked_service_certificate",
        "revoked_on",
    ),
}

# The official ENUM types (moved with the tables).
OFFICIAL_ENUM_TYPES: Final[tuple[str, ...]] = (
    "async_enrollment_signature_type",
    "async_enrollment_state",
    "cancelled_greeting_attempt_reason",
    "greeter_or_claimer",
    "invitation_deleted_reason",
    "invitation_type",
    "maintenance_type",
    "password_algorithm",
    "pki_signature_algorithm",
    "realm_archiving_configuration",
    "realm_role",
    "realm_status",
    "sequester_service_type",
    "user_profile",
)

UNSERVED_TABLES: Final[frozenset[str]] = frozenset(
    name for name, how in OFFICIAL_TABLES.items() if how == "unserved"
)

# Columns of ours the official schema does not have, and what the adoption puts there (docs/dev/
# adoption.md, "What is approximated"): none of them is read back by a command.
FILLED_COLUMNS: Final[dict[str, str]] = {
    "device.purpose": "STANDARD (the official server keeps the purpose in the certificate only)",
    "realm.created_by": "author of the realm's first role certificate",
    "realm.deleted_on": "time of the adoption, for a realm the official server deleted",
    "realm_name.key_index": "the realm's key index at the rename (latest rotation before it)",
    "shamir_recovery_setup.created_by / deleted_by": "the user's first device",
    "greeting_attempt.created_on": "first join time, else the invitation's creation",
    "account.created_on / account_vault.created_on": "first authentication method's creation",
}

__all__ = [
    "CERTIFICATE_COLUMNS",
    "CONVERTED_INTO",
    "FILLED_COLUMNS",
    "OFFICIAL_ENUM_TYPES",
    "OFFICIAL_SCHEMA",
    "OFFICIAL_TABLES",
    "UNSERVED_TABLES",
    "Treatment",
]
