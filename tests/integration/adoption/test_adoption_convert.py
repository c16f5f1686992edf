"""The adoption's conversion on databases made by the official 3.9.3 `parsec migrate`: the schema it
leaves is exactly a fresh parsec-server database's (the official tables aside, in
`parsec_official`), and a conversion that fails is rolled back whole (exit 18, one line)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from adoption_support import RELATIONS, execute, migrate, query

from parsec_server.storage.migrations.reference import dump_schema

# An organization with one ADMIN user and its device, as the official server stores them
# (the rows the tests below add their data to).
_ORG_USER_DEVICE = """
    INSERT INTO organization (organization_id, is_expired, user_profile_outsider_allowed,
        _created_on, realm_minimum_archiving_period_before_deletion)
    VALUES ('Org', false, true, now(), 0);
    INSERT INTO human (organization, email, label) SELECT _id, 'a@x.com', 'A' FROM organization;
    INSERT INTO user_ (organization, user_id, user_certificate, created_on, human,
        redacted_user_certificate, initial_profile, current_profile)
    SELECT organization, gen_random_uuid(), '\\x01', now(), _id, '\\x02', 'ADMIN', 'ADMIN'
    FROM human;
    INSERT INTO device (organization, user_, device_id, device_label, verify_key,
        device_certificate, created_on, redacted_device_certificate)
    SELECT organization, _id, gen_random_uuid(), 'd', '\\x03', '\\x04', now(), '\\x05'
    FROM user_;
"""


def test_the_adopted_schema_is_a_fresh_install_s(official_url: str, db_url: str) -> None:
    res = migrate(official_url, "--no-backup")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "--no-backup: NO BACKUP" in res.stderr
    # what `migrate verify` compares: public only, the official tables aside
    assert asyncio.run(dump_schema(official_url)) == asyncio.run(dump_schema(db_url))
    official = {t for s, t, k in query(official_url, RELATIONS) if s == "parsec_official"}
    assert {"migration", "organization", "vlob_atom", "account", "vault_item"} <= official
    assert "block_data" not in official
    assert query(official_url, "SELECT count(*) FROM parsec_official.migration") == [(24,)]


def test_a_failing_conversion_changes_nothing(official_url: str, tmp_path: Path) -> None:
    # an invitation token that is no hexadecimal access token: the invitation step fails
    execute(
        official_url,
        """
        INSERT INTO organization (organization_id, is_expired, user_profile_outsider_allowed,
            _created_on, realm_minimum_archiving_period_before_deletion)
        VALUES ('Broken', false, true, now(), 0);
        INSERT INTO invitation (organization, token, type, user_invitation_claimer_email,
            created_on, created_by_service_label)
        SELECT _id, 'not-hex', 'USER', 'a@example.com', now(), 'svc' FROM organization;
        """,
    )
    before = query(official_url, RELATIONS)
    res = migrate(official_url, "--backup-dir", str(tmp_path / "backups"))
    assert res.returncode == 18, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    (line,) = [x for x in res.stderr.splitlines() if x.startswith("error: ")]
    assert line.startswith("error: converting invitation into invitation failed: ")
    assert line.endswith("rolled back, nothing was changed")
    assert query(official_url, RELATIONS) == before
    assert len(list((tmp_path / "backups").iterdir())) == 1  # taken before the conversion


def test_accounts_and_totp_are_converted(official_url: str) -> None:
    """Official accounts (vault, items, password method, validation codes) and TOTP (a completed
    setup, a pending reset, an opaque key) answer through our storage functions after adoption."""
    from parsec_server.storage import account as account_storage
    from parsec_server.storage import totp as totp_storage

    reset_token = bytes(range(16))
    execute(
        official_url,
        f"""
        INSERT INTO organization (organization_id, is_expired, user_profile_outsider_allowed,
            _created_on, realm_minimum_archiving_period_before_deletion)
        VALUES ('Org', false, true, now(), 0);
        INSERT INTO human (organization, email, label)
        SELECT _id, e, e FROM organization, unnest(ARRAY['a@x.com', 'b@x.com']) AS e;
        INSERT INTO user_ (organization, user_id, user_certificate, created_on, human,
            redacted_user_certificate, initial_profile, current_profile, totp_setup_completed,
            totp_secret, totp_reset_token)
        SELECT h.organization, gen_random_uuid(), '\\x01', now(), h._id, '\\x02', 'ADMIN',
            'ADMIN', h.email = 'a@x.com', decode(repeat('ab', 20), 'hex'),
            CASE WHEN h.email = 'b@x.com' THEN '{reset_token.hex()}' END
        FROM human h;
        INSERT INTO totp_opaque_key (user_, opaque_key_id, opaque_key, failed_attempts)
        SELECT _id, gen_random_uuid(), decode(repeat('cd', 32), 'hex'), 2 FROM user_
        WHERE totp_setup_completed;
        INSERT INTO account (email, human_handle_label) VALUES ('zed@x.com', 'Zed');
        INSERT INTO vault (account) SELECT _id FROM account;
        INSERT INTO vault_item (vault, fingerprint, data)
        SELECT _id, decode(repeat('ef', 32), 'hex'), '\\x99' FROM vault;
        INSERT INTO vault_authentication_method (auth_method_id, vault, created_on, created_by_ip,
            created_by_user_agent, mac_key, vault_key_access, password_algorithm,
            password_algorithm_argon2id_opslimit, password_algorithm_argon2id_memlimit_kb,
            password_algorithm_argon2id_parallelism)
        SELECT gen_random_uuid(), _id, now() - interval '1 day', '10.0.0.1', 'client/1',
            decode(repeat('12', 32), 'hex'), '\\x34', 'ARGON2ID', 3, 65536, 2
        FROM vault;
        INSERT INTO account_create_validation_code (email, validation_code, created_at)
        VALUES ('new@x.com', 'ABCDEF', now());
        INSERT INTO account_delete_validation_code (account, validation_code, created_at,
            failed_attempts)
        SELECT _id, 'XYZXYZ', now(), 1 FROM account;
        """,
    )
    res = migrate(official_url, "--no-backup")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "  account <- account: 1 rows" in res.stdout

    async def check() -> None:
        conn = await asyncpg.connect(official_url)
        try:
            algorithm = await account_storage.password_algorithm(conn, "zed@x.com")
            assert algorithm == {
                "type": "ARGON2ID",
                "memlimit_kb": 65536,
                "opslimit": 3,
                "parallelism": 2,
            }
            codes = await conn.fetch(
                "SELECT purpose, email, code, failed_attempts FROM account_validation_code"
                " ORDER BY purpose"
            )
            assert [tuple(r) for r in codes] == [
                ("CREATE", "new@x.com", "ABCDEF", 0),
                ("DELETE", "zed@x.com", "XYZXYZ", 1),
            ]
            row = await conn.fetchrow(
                "SELECT u.organization, u.user_id FROM user_ u JOIN human h ON h.id = u.human"
                " WHERE h.email = 'b@x.com'"
            )
            async with conn.transaction():
                setup = await totp_storage.lock_setup_with_token(
                    conn, row["organization"], row["user_id"], reset_token
                )
                assert setup is not None and setup.secret == bytes.fromhex("ab" * 20)
                wrong = await totp_storage.lock_setup_with_token(
                    conn, row["organization"], row["user_id"], bytes(16)
                )
                assert wrong is None
            keys = await conn.fetch(
                "SELECT t.setup_completed, k.failed_attempts, k.last_failed_attempt IS NOT NULL"
                " FROM user_totp t JOIN user_totp_opaque_key k ON k.user_ = t.user_"
            )
            assert [tuple(r) for r in keys] == [(True, 2, True)]
        finally:
            await conn.close()

    asyncio.run(check())


def test_a_block_id_in_two_realms_is_refused_with_the_fix(official_url: str) -> None:
    execute(
        official_url,
        _ORG_USER_DEVICE
        + """
        INSERT INTO realm (organization, realm_id, key_index, created_on)
        SELECT _id, gen_random_uuid(), 1, now() FROM organization, generate_series(1, 2);
        INSERT INTO block (block_id, realm, author, size, created_on, key_index)
        SELECT '11111111-1111-1111-1111-111111111111', r._id, d._id, 1, now(), 1
        FROM realm r, device d;
        """,
    )
    before = query(official_url, RELATIONS)
    res = migrate(official_url, "--no-backup")
    assert res.returncode == 18, res.stdout + res.stderr
    (line,) = [x for x in res.stderr.splitlines() if x.startswith("error: ")]
    assert "1 block id(s) are registered in more than one realm" in line
    assert "(2 block rows)" in line and "Block ids in two realms" in line
    assert query(official_url, RELATIONS) == before


def test_a_long_step_reports_heartbeats(official_url: str) -> None:
    """--heartbeat: a table whose copy lasts says so while it runs (stderr), then its line."""
    execute(
        official_url,
        _ORG_USER_DEVICE
        + """
        INSERT INTO realm (organization, realm_id, key_index, created_on)
        SELECT _id, gen_random_uuid(), 1, now() FROM organization;
        INSERT INTO realm_user_role (realm, user_, role, certificate, certified_by, certified_on)
        SELECT r._id, d.user_, 'OWNER', '\\x06', d._id, now() FROM realm r, device d;
        INSERT INTO vlob_atom (realm, key_index, vlob_id, version, blob, size, author, created_on)
        SELECT r._id, 1, gen_random_uuid(), 1, decode(repeat(md5(g::text), 64), 'hex'), 1024,
            d._id, now()
        FROM realm r, device d, generate_series(1, 60000) g;
        INSERT INTO realm_vlob_update (realm, index, vlob_atom)
        SELECT realm, row_number() OVER (ORDER BY _id), _id FROM vlob_atom;
        """,
    )
    res = migrate(official_url, "--no-backup", "--heartbeat", "0.1")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "  … vlob_atom <- vlob_atom still running (" in res.stderr, res.stderr
    assert "  vlob_atom <- vlob_atom: 60000 rows (" in res.stdout
    assert query(official_url, "SELECT vlob_checkpoint FROM realm") == [(60000,)]


def test_async_enrollments_keep_their_x509_chains(official_url: str) -> None:
    """The official server links an enrollment's author certificate to its issuers through
    pki_x509_certificate.parent; ours keeps the chain as an array, leaf first."""
    execute(
        official_url,
        """
        INSERT INTO organization (organization_id, is_expired, user_profile_outsider_allowed,
            _created_on, realm_minimum_archiving_period_before_deletion)
        VALUES ('Org', false, true, now(), 0);
        INSERT INTO pki_x509_certificate (sha256_fingerprint, parent, der_content)
        VALUES ('\\xbb', NULL, '\\x0b'), ('\\xaa', '\\xbb', '\\x0a');
        INSERT INTO async_enrollment (organization, enrollment_id, submitted_on, submit_payload,
            submit_payload_requested_human_handle_email, submit_payload_signature_type,
            submit_payload_signature_pki_signature, submit_payload_signature_pki_algorithm,
            submit_payload_signature_pki_author_x509_certificate)
        SELECT _id, gen_random_uuid(), now(), '\\x01', 'pki@x.com', 'PKI', '\\x02',
            'RSASSA_PSS_SHA256', '\\xaa'
        FROM organization;
        INSERT INTO async_enrollment (organization, enrollment_id, submitted_on, submit_payload,
            submit_payload_requested_human_handle_email, submit_payload_signature_type,
            submit_payload_signature_openbao_signature,
            submit_payload_signature_openbao_author_entity_id, state, accepted_on,
            accept_payload, accept_payload_signature_type,
            accept_payload_signature_openbao_signature,
            accept_payload_signature_openbao_author_entity_id)
        SELECT _id, gen_random_uuid(), now(), '\\x03', 'bao@x.com', 'OPENBAO', 'sig', 'ent',
            'ACCEPTED', now(), '\\x04', 'OPENBAO', 'sig2', 'ent2'
        FROM organization;
        """,
    )
    res = migrate(official_url, "--no-backup")
    assert res.returncode == 0, res.stdout + res.stderr
    rows = query(
        official_url,
        "SELECT requested_email, state, submit_signature_type, submit_pki_algorithm,"
        " submit_pki_x509_chain, accept_signature_type FROM async_enrollment ORDER BY id",
    )
    assert rows == [
        ("pki@x.com", "SUBMITTED", "PKI", "RSASSA_PSS_SHA256", [b"\x0a", b"\x0b"], None),
        ("bao@x.com", "ACCEPTED", "OPEN_BAO", None, None, "OPEN_BAO"),
    ]


def test_drop_official_is_explicit(official_url: str) -> None:
    res = migrate(official_url, "drop-official")
    assert res.returncode == 15, res.stdout + res.stderr  # not adopted: not ours
    assert "not parsec-server's" in res.stderr
    assert migrate(official_url, "--no-backup").returncode == 0
    res = migrate(official_url, "drop-official")
    assert res.returncode == 15, res.stdout + res.stderr
    assert "schema `parsec_official` holds 38 tables" in res.stderr and "--yes" in res.stderr
    assert query(official_url, "SELECT to_regnamespace('parsec_official') IS NOT NULL") == [(True,)]
    res = migrate(official_url, "drop-official", "--yes")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("Dropped schema `parsec_official` (38 tables, ")
    assert query(official_url, "SELECT to_regnamespace('parsec_official') IS NULL") == [(True,)]
    assert query(
        official_url, "SELECT count(*) FROM schema_migration_event WHERE kind = 'drop_official'"
    ) == [(1,)]
    res = migrate(official_url, "drop-official", "--yes")
    assert res.returncode == 0 and res.stdout.startswith("Nothing to drop")
