-- 0001_initial.down.sql
-- Reverts 0001_initial: drops every table of the data model (the engine's own schema_migration*
-- tables stay).
-- data-loss: yes
-- transaction: on

DROP TABLE
    certificate,
    block_data,
    block,
    realm_vlob_update,
    vlob_atom,
    realm_sequester_keys_bundle_access,
    realm_keys_bundle_access,
    realm_keys_bundle,
    realm_name,
    realm_archiving,
    realm_user_role,
    realm_member,
    topic_realm,
    realm,
    greeting_step,
    greeting_attempt,
    greeting_session,
    invitation,
    shamir_recovery_share,
    shamir_recovery_setup,
    user_profile_update,
    device,
    user_,
    human,
    sequester_service,
    topic_shamir_recovery,
    topic_sequester,
    topic_common,
    organization;
