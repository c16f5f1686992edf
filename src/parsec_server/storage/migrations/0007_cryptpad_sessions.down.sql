-- 0007_cryptpad_sessions.down.sql
-- Reverts 0007: drops the CryptPad sessions. Clients then open new sessions (new keys) for the
-- documents being edited: the participants of a session open before the rollback lose it.
-- data-loss: yes       (the stored session keys; the documents themselves are untouched)
-- transaction: on
-- lock_timeout: 2s

DROP TABLE cryptpad_session;
