-- 0009_realm_member_by_user.down.sql
-- Reverts 0009: the index on (user_) alone again. Indexes only: no row changes.
-- data-loss: no        (indexes only)
-- transaction: off        (CREATE / DROP INDEX CONCURRENTLY cannot run in a transaction)

CREATE INDEX CONCURRENTLY IF NOT EXISTS realm_member_user ON realm_member (user_);

DROP INDEX CONCURRENTLY IF EXISTS realm_member_user_realm;
