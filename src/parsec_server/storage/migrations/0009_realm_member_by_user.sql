-- 0009_realm_member_by_user.sql
-- Why: every realm-scoped command reads the author's role with `realm_member WHERE realm = ? AND
-- user_ = ?`. The pool's generic plans used the index on (user_) alone, with the realm as a filter
-- (with about one realm per user in the statistics it costs the same as the primary key), so the
-- lookup read every membership of the author: a request cost more the more realms its author was
-- in (issue 17; measured at bench/scale.py's large size with the author added to 50, 200 and 900
-- realms, docs/dev/performance.md "What grew at xlarge"). An index on (user_, realm) in place of
-- the one on (user_) makes either plan an exact lookup, and still serves the statements that list
-- a user's realms (user_ alone, its leading column) and the foreign key to user_.
-- Built CONCURRENTLY: membership writes go on meanwhile. An interrupted run leaves an INVALID
-- index, which the engine drops and rebuilds on the next run; the old index is dropped only once
-- the new one is built.
-- compat: expand          (no statement names an index: 0008 servers plan with whichever exists)
-- transaction: off        (CREATE / DROP INDEX CONCURRENTLY cannot run in a transaction)

CREATE INDEX CONCURRENTLY IF NOT EXISTS realm_member_user_realm ON realm_member (user_, realm);

DROP INDEX CONCURRENTLY IF EXISTS realm_member_user;
