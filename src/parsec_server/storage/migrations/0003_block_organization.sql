-- 0003_block_organization.sql
-- Why: a block id is unique per organization, not only per realm (issue 11, "blocks cross realms").
-- Every blockstore keys block data by (organization, block id) (block_data, S3 `<org>/<block id>`),
-- so a second realm registering an existing id could overwrite or read the first realm's data. The
-- unique index (organization, block_id) lets block_create refuse such an id (block_already_exists),
-- also when two creates race.
-- A database in which the hole was used (one block id in two realms of one organization) is refused
-- with a message naming the count and the fix (docs/upgrade.md, "Block ids in two realms").
-- One transaction: ADD COLUMN holds the ACCESS EXCLUSIVE lock of `block` to the end, which is what
-- makes the SET NOT NULL and the plain CREATE INDEX below safe; `compat: breaking` means the servers
-- are stopped anyway. Measured: 1.4 s per 100k blocks on 2 cores (docs/upgrade.md).
-- compat: breaking        (0002 servers insert blocks without an organization, and are the hole)
-- transaction: on
-- lock_timeout: 2s

ALTER TABLE block ADD COLUMN organization BIGINT;

UPDATE block SET organization = realm.organization FROM realm WHERE realm.id = block.realm;

DO $$
DECLARE
    ids BIGINT;
    rows_ BIGINT;
BEGIN
    SELECT count(*), coalesce(sum(n), 0) INTO ids, rows_ FROM (
        SELECT count(*) AS n FROM block GROUP BY organization, block_id HAVING count(*) > 1
    ) AS dup;
    IF ids > 0 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'unique_violation',
            MESSAGE = format(
                '%s block id(s) are registered in more than one realm of their organization '
                '(%s block rows): each has data of one realm only. Keep the newest row of each id '
                '(its data are the last written) and delete the others, as docs/upgrade.md shows '
                '("Block ids in two realms"), then run migrate again', ids, rows_);
    END IF;
END
$$;

-- lint: allow set-not-null
ALTER TABLE block ALTER COLUMN organization SET NOT NULL;

-- lint: allow index-not-concurrent
CREATE UNIQUE INDEX block_organization_block_id ON block (organization, block_id);
