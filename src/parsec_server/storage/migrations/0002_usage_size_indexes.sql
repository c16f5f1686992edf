-- 0002_usage_size_indexes.sql
-- Why: organization_info and the administration stats sum vlob and block sizes per realm. Covering
-- indexes make those sums index-only scans instead of reading every row (and detoasting nothing).
-- Built CONCURRENTLY: writes to vlob_atom and block go on while they build. An interrupted run leaves an
-- INVALID index; the engine drops and rebuilds it on the next run.
-- compat: expand          (0001 servers ignore the new indexes)
-- transaction: off        (CREATE INDEX CONCURRENTLY cannot run in a transaction)

CREATE INDEX CONCURRENTLY IF NOT EXISTS vlob_atom_realm_size ON vlob_atom (realm) INCLUDE (size);

CREATE INDEX CONCURRENTLY IF NOT EXISTS block_realm_size ON block (realm) INCLUDE (size);
