-- 0003_block_organization.down.sql
-- Reverts 0003: block.organization is derived from the block's realm; dropping it (and its unique
-- index with it) loses no data. Block ids are then again unique per realm only.
-- data-loss: no
-- transaction: on
-- lock_timeout: 2s

ALTER TABLE block DROP COLUMN organization;
