-- 0002_usage_size_indexes.down.sql
-- Reverts 0002: the indexes only speed up statistics; dropping them loses no data.
-- data-loss: no
-- transaction: off

DROP INDEX CONCURRENTLY IF EXISTS block_realm_size;

DROP INDEX CONCURRENTLY IF EXISTS vlob_atom_realm_size;
