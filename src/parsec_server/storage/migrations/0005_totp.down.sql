-- 0005_totp.down.sql
-- Reverts 0005_totp: drops the TOTP tables. Users lose their TOTP set-up (secrets), every opaque
-- key (devices protected by TOTP can no longer fetch them) and pending reset tokens.
-- data-loss: yes
-- transaction: on
-- lock_timeout: 2s

DROP TABLE user_totp_opaque_key;

DROP TABLE user_totp;
