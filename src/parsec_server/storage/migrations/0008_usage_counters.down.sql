-- 0008_usage_counters.down.sql
-- Reverts 0008: organization_info sums the vlob and block sizes again (0007 servers). The totals
-- are derived from the vlob and block rows, which stay: 0008 computes them again when reapplied.
-- data-loss: no        (derived totals only)
-- transaction: on
-- lock_timeout: 2s

DROP TABLE realm_block_usage;

ALTER TABLE realm DROP COLUMN vlob_bytes;
