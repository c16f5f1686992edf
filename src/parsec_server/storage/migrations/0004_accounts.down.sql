-- 0004_accounts.down.sql
-- Reverts 0004_accounts: drops every account table. The accounts, their vaults (encrypted device
-- keys users stored server-side), authentication methods and pending validation codes are lost:
-- back up first (parsec-server backup) if accounts were used.
-- data-loss: yes
-- transaction: on
-- lock_timeout: 2s

DROP TABLE account_email_sent;
DROP TABLE account_validation_code;
DROP TABLE account_auth_method;
DROP TABLE account_vault_item;
DROP TABLE account_vault;
DROP TABLE account;
