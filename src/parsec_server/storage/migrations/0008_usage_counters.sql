-- 0008_usage_counters.sql
-- Why: organization_info (every client asks it) summed the sizes of every vlob version and block of
-- the organization at each call: its cost grew with the organization's data (issue 17, "flat
-- cost"), ~100x from the small to the large benchmark database. The totals are now kept as they
-- change: `realm.vlob_bytes`, added to by the vlob write statement in the realm row UPDATE it
-- already makes (no extra row, no extra lock), and `realm_block_usage`, one row per realm and slot
-- (the slot is the writing backend's pid modulo 16, so concurrent block writes of one realm seldom
-- wait for each other's row), added to by block_create. organization_info then reads one row per
-- realm (and slot) of the organization. Both are filled here from the existing rows (index-only
-- scans of the 0002 covering indexes: ~0.3 s per million vlob versions on 2 cores).
-- compat: breaking        (0007 servers would write without adding to the totals: they drift)
-- transaction: on
-- lock_timeout: 2s

ALTER TABLE realm ADD COLUMN vlob_bytes BIGINT NOT NULL DEFAULT 0;

UPDATE realm SET vlob_bytes = s.total
FROM (SELECT realm, sum(size)::bigint AS total FROM vlob_atom GROUP BY realm) AS s
WHERE s.realm = realm.id;

CREATE TABLE realm_block_usage (
    realm BIGINT NOT NULL REFERENCES realm (id),
    slot SMALLINT NOT NULL CHECK (slot >= 0),
    bytes BIGINT NOT NULL,
    PRIMARY KEY (realm, slot)
);

INSERT INTO realm_block_usage (realm, slot, bytes)
SELECT realm, 0, sum(size)::bigint FROM block GROUP BY realm;
