-- 0006_async_enrollment.down.sql
-- Reverts 0006_async_enrollment: drops the asynchronous enrollment requests. The users and devices
-- that accepted requests created stay (they are ordinary users); pending, rejected and cancelled
-- requests and the accept payloads are lost, so a requester still waiting has to submit again.
-- data-loss: yes
-- transaction: on
-- lock_timeout: 2s

DROP TABLE async_enrollment;
