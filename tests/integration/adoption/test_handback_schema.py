"""`migrate --to official-3.9` without servers: the schema it recreates equals the one the official
3.9.3 `parsec migrate` makes (skipped without .venv-compat), what the official schema cannot hold
is named by the dry run and refused without --allow-data-loss (nothing changed), an adoption's
old official copy is set aside, and databases that are not ours are refused or left alone."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from adoption_support import (
    CLI,
    COMPAT_BIN,
    RELATIONS,
    cli_env,
    execute,
    migrate,
    need_compat,
    official_migrate,
    query,
)

from parsec_server.storage.adoption import OFFICIAL_MIGRATIONS_3_9

# The catalog of `public`, independent of how it was built: columns in order (dropped ones do
# not count), types, nullability, defaults; constraints; indexes; enum types and their labels.
_CATALOG = {
    "columns": """
        SELECT c.relname, a.attname,
               row_number() OVER (PARTITION BY c.relname ORDER BY a.attnum),
               format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid)
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
          AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, 3""",
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
        WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2""",
    "indexes": """
        SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'
        ORDER BY 1, 2""",
    "enums": """
        SELECT t.typname, array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
        FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
        WHERE t.typnamespace = 'public'::regnamespace GROUP BY 1 ORDER BY 1""",
    "sequences": """
        SELECT sequencename, data_type::text FROM pg_sequences WHERE schemaname = 'public'
        ORDER BY 1""",
}


def _catalog(url: str) -> dict[str, list[tuple[Any, ...]]]:
    return {k: query(url, sql) for k, sql in _CATALOG.items()}


@pytest.fixture
def fresh(pg_cluster: Any) -> Iterator[Any]:
    made: list[str] = []

    def make(template: str | None = None) -> str:
        name = pg_cluster.create_database(template=template)
        made.append(name)
        return str(pg_cluster.url_for(name))

    yield make
    for name in made:
        pg_cluster.drop_database(name)


def test_recreated_schema_equals_the_official_migrate_result(
    db_url: str, fresh: Any, tmp_path: Path
) -> None:
    need_compat()
    reference = fresh()
    official_migrate(reference)
    res = migrate(db_url, "--to", "official-3.9", "--no-backup")
    assert res.returncode == 0, res.stderr
    assert _catalog(db_url) == _catalog(reference)
    assert query(db_url, "SELECT _id, name FROM migration ORDER BY applied") == query(
        reference, "SELECT _id, name FROM migration ORDER BY applied"
    )
    # the official tooling finds nothing to apply
    official = subprocess.run(
        [str(COMPAT_BIN / "parsec"), "migrate", "--db", db_url, "--dry-run"],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(),
    )
    assert official.returncode == 0, official.stderr
    applied = re.findall(r"^(\d{4}_\S+\.sql) \(already applied\)$", official.stdout, re.MULTILINE)
    assert applied == list(OFFICIAL_MIGRATIONS_3_9)
    assert re.search(r"^\d{4}_\S+\.sql ✔", official.stdout, re.MULTILINE) is None


def test_what_the_official_schema_cannot_hold_is_named_and_refused(db_url: str) -> None:
    # Data only parsec-server would store: a feature table and a column the official 3.9.x schema
    # has no place for (as a later migration of ours would add them).
    execute(
        db_url,
        "CREATE TABLE later_feature (id BIGINT PRIMARY KEY, payload BYTEA);"
        " INSERT INTO later_feature VALUES (1, 'a'), (2, 'b'), (3, 'c');"
        " CREATE TABLE later_empty (id BIGINT);"
        " ALTER TABLE organization ADD COLUMN later_flag BOOLEAN NOT NULL DEFAULT FALSE;"
        " ALTER TABLE organization ADD COLUMN later_note TEXT;"
        " INSERT INTO organization (organization_id, created_on, user_profile_outsider_allowed,"
        "   realm_minimum_archiving_period_before_deletion, later_note)"
        "   VALUES ('Org1', now(), TRUE, 0, 'kept by us only');"
        " INSERT INTO topic_common SELECT id, 'epoch' FROM organization;",
    )
    before = query(db_url, RELATIONS)
    dry = migrate(db_url, "--to", "official-3.9", "--dry-run")
    assert dry.returncode == 10, dry.stderr
    warnings = [line for line in dry.stderr.splitlines() if line.startswith("warning:")]
    assert any("table later_feature (3 rows)" in w for w in warnings), dry.stderr
    assert any("column organization.later_note (1 rows)" in w for w in warnings), dry.stderr
    # empty table, column at its default everywhere: nothing lost, not named
    assert "later_empty" not in dry.stderr and "later_flag" not in dry.stderr
    last = dry.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the official 3.9.x schema cannot represent: ")
    assert "--allow-data-loss" in last and "Traceback" not in dry.stderr

    real = migrate(db_url, "--to", "official-3.9", "--no-backup")
    assert real.returncode == 10, real.stderr
    assert real.stderr.strip().splitlines()[-1] == last
    assert query(db_url, RELATIONS) == before  # refused before any change

    forced = migrate(db_url, "--to", "official-3.9", "--no-backup", "--allow-data-loss")
    assert forced.returncode == 0, forced.stderr
    assert "not handed back (--allow-data-loss): table later_feature (3 rows)" in forced.stderr
    # kept, unused, beside our other tables; the organization itself was handed back
    assert query(db_url, "SELECT count(*) FROM parsec_server_handed_back.later_feature") == [(3,)]
    assert query(db_url, "SELECT organization_id FROM public.organization") == [("Org1",)]


def test_an_adoption_old_official_copy_is_set_aside(db_url: str) -> None:
    """Stage 2 keeps the official tables it adopted in schema parsec_official: at the hand-back
    they are out of date (today's data comes from our tables), renamed, never dropped."""
    execute(
        db_url,
        "CREATE SCHEMA parsec_official; CREATE TABLE parsec_official.organization (_id INT);"
        " INSERT INTO parsec_official.organization VALUES (42);",
    )
    dry = migrate(db_url, "--to", "official-3.9", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "parsec_official_superseded" in dry.stderr
    res = migrate(db_url, "--to", "official-3.9", "--no-backup")
    assert res.returncode == 0, res.stderr
    assert "schema `parsec_official_superseded`" in res.stdout
    assert query(db_url, "SELECT _id FROM parsec_official_superseded.organization") == [(42,)]
    assert query(db_url, "SELECT to_regnamespace('parsec_official') IS NULL") == [(True,)]


def test_databases_that_are_not_ours(fresh: Any) -> None:
    empty = fresh()
    res = migrate(empty, "--to", "official-3.9")
    assert res.returncode == 1, res.stderr
    assert "no parsec-server schema" in res.stderr and "Traceback" not in res.stderr

    older = fresh()
    rows = ", ".join(
        f"({n}, '{name[5:-4]}', now())" for n, name in enumerate(OFFICIAL_MIGRATIONS_3_9[:12], 1)
    )
    execute(
        older,
        "CREATE TABLE migration (_id INTEGER PRIMARY KEY, name VARCHAR(256), applied TIMESTAMPTZ);"
        f" INSERT INTO migration VALUES {rows};",
    )
    res = migrate(older, "--to", "official-3.9", "--dry-run")
    assert res.returncode == 17, res.stderr
    assert "an older 3.x release" in res.stderr and "Traceback" not in res.stderr


_ONE_USER = """
INSERT INTO organization (id, organization_id, created_on, user_profile_outsider_allowed,
    realm_minimum_archiving_period_before_deletion) VALUES (1, 'Org1', now(), TRUE, 0);
INSERT INTO topic_common VALUES (1, now());
INSERT INTO human (id, organization, email, label) VALUES (1, 1, 'alice@example.com', 'Alice');
INSERT INTO user_ (id, organization, user_id, human, initial_profile, current_profile, created_on)
    VALUES (1, 1, gen_random_uuid(), 1, 'ADMIN', 'ADMIN', '2026-01-01T00:00:00Z');
INSERT INTO device (id, organization, user_, device_id, device_label, verify_key, created_on)
    VALUES (1, 1, 1, gen_random_uuid(), 'laptop', '\\x03', '2026-01-01T00:00:00Z');
INSERT INTO certificate (organization, topic, certified_on, priority, kind, certificate,
    redacted_certificate) VALUES
    (1, 'common', '2026-01-01T00:00:00Z', 0, 'user_certificate', '\\x01', '\\x02'),
    (1, 'common', '2026-01-01T00:00:00Z', 1, 'device_certificate', '\\x04', '\\x05');
"""


def test_accounts_and_totp_go_back_into_the_official_tables(db_url: str) -> None:
    secret = "aa" * 20
    execute(
        db_url,
        _ONE_USER
        + f"""
        INSERT INTO user_totp (user_, secret, setup_completed) VALUES (1, '\\x{secret}', TRUE);
        INSERT INTO user_totp_opaque_key (user_, opaque_key_id, opaque_key, failed_attempts,
            last_failed_attempt) VALUES (1, gen_random_uuid(), '\\x{"bb" * 32}', 2, now());
        INSERT INTO account (id, email, human_label, created_on)
            VALUES (7, 'zoe@example.com', 'Zoe', now());
        INSERT INTO account_vault (id, account, created_on) VALUES (8, 7, now());
        INSERT INTO account_vault_item VALUES (8, '\\x{"cc" * 32}', '\\x0102');
        INSERT INTO account_auth_method (auth_method_id, vault, created_on, created_by_ip,
            created_by_user_agent, mac_key, vault_key_access, password_algorithm)
            VALUES (gen_random_uuid(), 8, now(), '127.0.0.1', 'agent', '\\x{"dd" * 32}', '\\x09',
            '{{"type": "ARGON2ID", "memlimit_kb": 65536, "opslimit": 3, "parallelism": 1}}');
        INSERT INTO account_validation_code VALUES ('DELETE', 'zoe@example.com', 'ABC123', now(), 1);
        INSERT INTO account_email_sent (sent_on, recipient, client_ip)
            VALUES (now(), 'zoe@example.com', '');
        """,
    )
    res = migrate(db_url, "--to", "official-3.9", "--no-backup")
    assert res.returncode == 0, res.stderr
    assert query(db_url, "SELECT totp_setup_completed, encode(totp_secret, 'hex') FROM user_") == [
        (True, secret)
    ]
    assert query(db_url, "SELECT failed_attempts FROM totp_opaque_key") == [(2,)]
    assert query(db_url, "SELECT _id, email, human_handle_label FROM account") == [
        (7, "zoe@example.com", "Zoe")
    ]
    assert query(db_url, "SELECT vault, encode(data, 'hex') FROM vault_item") == [(8, "0102")]
    assert query(
        db_url,
        "SELECT password_algorithm::text, password_algorithm_argon2id_memlimit_kb,"
        " password_algorithm_argon2id_opslimit, password_algorithm_argon2id_parallelism"
        " FROM vault_authentication_method",
    ) == [("ARGON2ID", 65536, 3, 1)]
    assert query(db_url, "SELECT account, validation_code FROM account_delete_validation_code") == [
        (7, "ABC123")
    ]


def test_a_pending_totp_reset_is_named(db_url: str) -> None:
    execute(
        db_url,
        _ONE_USER
        + f"INSERT INTO user_totp (user_, reset_token_sha256) VALUES (1, '\\x{'ee' * 32}');",
    )
    dry = migrate(db_url, "--to", "official-3.9", "--dry-run")
    assert dry.returncode == 10, dry.stderr
    assert "pending TOTP resets (1 rows)" in dry.stderr


def test_a_running_server_holding_its_tables_is_refused(db_url: str) -> None:
    async def go() -> tuple[int | None, str]:
        conn = await asyncpg.connect(db_url)  # as a server in the middle of a vlob write
        try:
            await conn.execute("BEGIN; LOCK TABLE vlob_atom IN ROW EXCLUSIVE MODE")
            proc = await asyncio.create_subprocess_exec(
                *CLI,
                "migrate",
                "--db",
                db_url,
                "--to",
                "official-3.9",
                "--no-backup",
                "--lock-timeout",
                "1s",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=cli_env(),
            )
            _, err = await proc.communicate()
            await conn.execute("ROLLBACK")
            return proc.returncode, err.decode()
        finally:
            await conn.close()

    before = query(db_url, RELATIONS)
    code, err = asyncio.run(go())
    assert code == 1, err
    assert "stop every parsec-server process" in err and "Traceback" not in err
    assert query(db_url, RELATIONS) == before


def test_async_enrollments_go_back_with_their_x509_chains(db_url: str) -> None:
    leaf1, leaf2, issuer = "'\\x0a01'", "'\\x0a02'", "'\\x0b00'"
    execute(
        db_url,
        _ONE_USER
        + f"""
        INSERT INTO async_enrollment (id, organization, enrollment_id, submitted_on,
            submit_payload, requested_email, submit_signature_type, submit_pki_signature,
            submit_pki_algorithm, submit_pki_x509_chain)
        VALUES
            (5, 1, gen_random_uuid(), now(), '\\x01', 'bob@example.com', 'PKI', '\\x02',
             'RSASSA_PSS_SHA256', ARRAY[{leaf1}, {issuer}]::bytea[]),
            (6, 1, gen_random_uuid(), now(), '\\x01', 'carl@example.com', 'PKI', '\\x02',
             'RSASSA_PSS_SHA256', ARRAY[{leaf2}, {issuer}]::bytea[]);
        UPDATE async_enrollment SET state = 'ACCEPTED', accepted_on = now(),
            accept_payload = '\\x03', accept_signature_type = 'OPEN_BAO',
            accept_openbao_signature = 'sig', accept_openbao_entity_id = 'entity'
        WHERE id = 6;
        """,
    )
    res = migrate(db_url, "--to", "official-3.9", "--no-backup")
    assert res.returncode == 0, res.stderr
    certs = query(
        db_url,
        "SELECT encode(der_content, 'hex'), encode(parent, 'hex') = encode(sha256('\\x0b00'),"
        " 'hex') FROM pki_x509_certificate ORDER BY 1",
    )
    assert certs == [("0a01", True), ("0a02", True), ("0b00", None)]
    rows = query(
        db_url,
        "SELECT _id, state::text, submit_payload_signature_type::text,"
        " encode(c.der_content, 'hex'), accept_payload_signature_type::text,"
        " accept_payload_signature_openbao_author_entity_id"
        " FROM async_enrollment e JOIN pki_x509_certificate c"
        " ON c.sha256_fingerprint = e.submit_payload_signature_pki_author_x509_certificate"
        " ORDER BY _id",
    )
    assert rows == [
        (5, "SUBMITTED", "PKI", "0a01", None, None),
        (6, "ACCEPTED", "PKI", "0a02", "OPENBAO", "entity"),
    ]
